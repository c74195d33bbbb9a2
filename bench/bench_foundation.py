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
from _common import (  # noqa: E402
    Figure,
    fake_server_process,
    paired_ratios,
    parse_args,
    report,
    summarize,
)


def _startup(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def import_cost(repeat: int) -> list[Figure]:
    """Median extra startup of ``import kite_lab`` (and + ``Kite()``) over ``python -c pass``.

    Interleaved (bare, import, import + Kite(), bare, ...) so load on the machine hits
    each alike; the median is robust to the outliers a loaded 2-core machine produces.
    """
    plain: list[float] = []
    constructed: list[float] = []
    for _ in range(repeat):
        bare = _startup("pass")
        plain.append((_startup("import kite_lab") - bare) * 1000)
        constructed.append((_startup("from kite_lab import Kite; Kite()") - bare) * 1000)
    baseline = "python -c pass (same run, interleaved)"
    return [
        summarize("import kite_lab over bare python", plain, "ms", goal="<= 50 ms",
                  baseline=baseline),
        summarize("import kite_lab + Kite() over bare python", constructed, "ms",
                  goal="<= 50 ms", baseline=baseline),
    ]


def pipeline_vs_sdk(number: int, repeat: int) -> list[Figure]:
    """Pipeline vs raw SDK, async (the primary path) and sync, server in another process."""
    import anthropic
    import openai

    from kite_lab import Kite
    from kite_lab.core.runner import run_sync

    prompt = "What is the capital of France?"
    messages = [{"role": "user", "content": prompt}]
    models = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022"}
    figures = []
    with fake_server_process() as base_url:
        config = {
            "openai_api_key": "sk-bench",
            "openai_base_url": base_url + "/v1",
            "anthropic_api_key": "sk-ant-bench",
            "anthropic_base_url": base_url,
            "cache_backend": "none",
        }
        sdk_kwargs = {"max_retries": 0}
        raw = {
            "openai": (
                openai.OpenAI(api_key="sk-bench", base_url=base_url + "/v1", **sdk_kwargs),
                openai.AsyncOpenAI(api_key="sk-bench", base_url=base_url + "/v1", **sdk_kwargs),
            ),
            "anthropic": (
                anthropic.Anthropic(api_key="sk-ant-bench", base_url=base_url, **sdk_kwargs),
                anthropic.AsyncAnthropic(api_key="sk-ant-bench", base_url=base_url, **sdk_kwargs),
            ),
        }

        def raw_call(client: object, provider: str) -> object:
            if provider == "openai":
                return client.chat.completions.create(
                    model=models[provider], messages=messages, max_tokens=64
                )
            return client.messages.create(model=models[provider], messages=messages, max_tokens=64)

        for provider in ("openai", "anthropic"):
            ai = Kite(config={**config, "llm_provider": provider, "llm_model": models[provider]})
            sync_client, async_client = raw[provider]

            async def ours_async(n: int, ai: Kite = ai) -> None:
                for _ in range(n):
                    await ai.acomplete(prompt, max_tokens=64)

            async def raw_async(n: int, client: object = async_client, p: str = provider) -> None:
                for _ in range(n):
                    await raw_call(client, p)

            run_sync(ours_async(3)), run_sync(raw_async(3))  # warm clients and connections
            ratios, ours_s, base_s = paired_ratios(
                lambda: run_sync(ours_async(number)),
                lambda: run_sync(raw_async(number)),
                number=1,
                repeat=repeat,
            )
            figures.append(
                summarize(
                    f"await ai.acomplete / raw async {provider} SDK (fake server)",
                    ratios,
                    "x",
                    goal="<= 1.05x",
                    baseline=f"Async {provider} client, same loop, same run",
                    extra={
                        "ours_ms": statistics.median(ours_s) * 1000 / number,
                        "raw_ms": statistics.median(base_s) * 1000 / number,
                    },
                )
            )
            ours_sync = lambda ai=ai: ai.complete(prompt, max_tokens=64)  # noqa: E731
            raw_sync = lambda c=sync_client, p=provider: raw_call(c, p)  # noqa: E731
            ours_sync(), raw_sync()
            ratios, ours_s, base_s = paired_ratios(
                ours_sync, raw_sync, number=number, repeat=repeat
            )
            figures.append(
                summarize(
                    f"ai.complete (sync) / raw sync {provider} SDK (fake server)",
                    ratios,
                    "x",
                    goal="<= 1.05x",
                    baseline=f"sync {provider} client, same run",
                    extra={
                        "ours_ms": statistics.median(ours_s) * 1000,
                        "raw_ms": statistics.median(base_s) * 1000,
                    },
                )
            )
            ai.close()
    return figures


def main() -> None:
    args = parse_args(__doc__ or "")
    figures = import_cost(repeat=3 if args.quick else 21)
    figures += pipeline_vs_sdk(number=5 if args.quick else 200, repeat=2 if args.quick else 15)
    report(figures)


if __name__ == "__main__":
    main()
