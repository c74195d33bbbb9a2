"""Foundation figures: import cost, and the pipeline's overhead over the raw SDKs.

- import kite_lab + Kite() over bare `python -c pass` (goal <= 50 ms)
- ai.complete through the whole pipeline vs the raw openai SDK call, both against the
  fake server (goal <= 1.05x); the same with the anthropic SDK.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figure, paired_ratios, parse_args, report, summarize  # noqa: E402


def _startup(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def import_cost(repeat: int) -> Figure:
    diffs = []
    for _ in range(repeat):  # interleaved, so load on the machine hits both alike
        bare = _startup("pass")
        ours = _startup("from kite_lab import Kite; Kite()")
        diffs.append((ours - bare) * 1000)
    return summarize(
        "import kite_lab + Kite() over bare python", diffs, "ms",
        goal="<= 50 ms", baseline="python -c pass (same run, interleaved)",
    )


def pipeline_vs_sdk(number: int, repeat: int) -> list[Figure]:
    import anthropic
    import openai

    from kite_lab import Kite
    from kite_lab.testing import FakeLLMServer

    figures = []
    with FakeLLMServer() as server:
        config = {
            "openai_api_key": "sk-bench", "openai_base_url": server.openai_base_url,
            "anthropic_api_key": "sk-ant-bench", "anthropic_base_url": server.anthropic_base_url,
            "cache_backend": "none",
        }
        raw_openai = openai.OpenAI(api_key="sk-bench", base_url=server.openai_base_url, max_retries=0)
        raw_anthropic = anthropic.Anthropic(
            api_key="sk-ant-bench", base_url=server.anthropic_base_url, max_retries=0
        )
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        cases = {
            "openai": lambda: raw_openai.chat.completions.create(model="gpt-4o-mini", messages=messages),
            "anthropic": lambda: raw_anthropic.messages.create(
                model="claude-3-5-haiku-20241022", messages=messages, max_tokens=64
            ),
        }
        models = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022"}
        for provider, raw_call in cases.items():
            ai = Kite(config={**config, "llm_provider": provider, "llm_model": models[provider]})
            ours = lambda ai=ai: ai.complete("What is the capital of France?", max_tokens=64)  # noqa: E731
            ours(), raw_call()  # warm both: clients, connections, imports
            ratios, ours_s, base_s = paired_ratios(ours, raw_call, number=number, repeat=repeat)
            figures.append(summarize(
                f"ai.complete via pipeline / raw {provider} SDK (fake server)", ratios, "x",
                goal="<= 1.05x", baseline=f"{provider} SDK sync call, same server, same run",
                extra={"ours_ms": statistics.median(ours_s) * 1000,
                       "raw_ms": statistics.median(base_s) * 1000},
            ))
            ai.close()
    return figures


def main() -> None:
    args = parse_args(__doc__ or "")
    figures = [import_cost(repeat=3 if args.quick else 15)]
    figures += pipeline_vs_sdk(number=5 if args.quick else 200, repeat=2 if args.quick else 7)
    report(figures)


if __name__ == "__main__":
    main()
