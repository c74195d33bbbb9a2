"""The short offline tour printed by ``kite-lab demo`` when the notebook extra is absent.

It uses the embedded defaults only: the local SmolLM2 model, no key, no network.
"""

from __future__ import annotations

from kite_lab.kite import Kite

__all__ = ["run_tour"]


def run_tour() -> int:
    ai = Kite(config={"llm_provider": "local"})
    question = "What is the capital of France? Answer in one sentence."
    print(f"kite_lab tour — provider: {ai.provider_name}, model: {ai.resolve()[1]}\n")

    completion = ai.generate(question, temperature=0, max_tokens=48)
    print(f"Q: {question}\nA: {completion.text.strip()}")
    print(
        f"   [{completion.provider}/{completion.model}: {completion.usage.prompt_tokens} prompt + "
        f"{completion.usage.completion_tokens} completion tokens, {completion.latency_s:.2f} s, "
        f"cost ${completion.cost_usd or 0:.4f}]\n"
    )

    print("Streamed: ", end="", flush=True)
    for piece in ai.stream("Name three primary colors.", temperature=0, max_tokens=48):
        print(piece, end="", flush=True)
    print("\n")
    print(f"circuit breaker: {ai.circuit_breaker.state.value}")
    ai.close()
    return 0
