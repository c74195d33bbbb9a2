"""ai.evaluate: what scoring adds over the same calls through ai.map alone, and the
similarity scorer's throughput.

Figures (each a ratio against a baseline in the same run, interleaved, median of repeats):
- eval of N rows x 3 targets x 2 scorers (exact_match + contains), fake upstream 50 ms,
  wall time / the same 3 x N calls through ``ai.amap`` alone (goal <= 1.1x);
- similarity scorer (fastembed, offline): rows/s over N (output, expected) pairs.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import fake_server_process, parse_args, report, summarize  # noqa: E402


def main() -> None:
    args = parse_args(__doc__ or "")
    rows, repeat, pairs = (40, 2, 64) if args.quick else (1000, 3, 2000)
    import tempfile

    from kite_lab import Kite
    from kite_lab.evals import Prompt
    from kite_lab.evals.scorers import contains, exact_match, similarity

    data = [{"question": f"question number {i}", "answer": f"question number {i}"}
            for i in range(rows)]
    templates = ["{question}", "Answer: {question}", "Q: {question}"]
    home = tempfile.mkdtemp(prefix="bench-evals-")
    with fake_server_process(latency=0.05) as url:
        ai = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-bench",
                          "openai_base_url": url + "/v1", "kite_home": home,
                          "cache_backend": "none", "kite_call_log": "none"})

        async def through_map() -> float:
            start = time.perf_counter()
            for template in templates:
                await ai.amap(data, template, model="openai/gpt-4o-mini", concurrency=128,
                              output="out", progress=False, cache=False)
            return time.perf_counter() - start

        async def through_eval() -> float:
            start = time.perf_counter()
            await ai.aevaluate(
                data, [Prompt(t, model="openai/gpt-4o-mini", cache=False) for t in templates],
                [exact_match("answer"), contains("answer")], concurrency=128, progress=False)
            return time.perf_counter() - start

        async def paired() -> tuple[list[float], list[float], list[float]]:
            ratios, evals, maps = [], [], []
            await through_map()  # warm: SDK, pools, first-use imports
            for rep in range(repeat):
                if rep % 2:
                    e = await through_eval()
                    m = await through_map()
                else:
                    m = await through_map()
                    e = await through_eval()
                ratios.append(e / m)
                evals.append(e)
                maps.append(m)
            return ratios, evals, maps

        ratios, evals, maps = asyncio.run(paired())
        ai.close()

    scorer = similarity("answer", 0.8)
    outputs = [f"the answer is {i}" for i in range(pairs)]
    expected = [{"answer": f"answer {i}"} for i in range(pairs)]
    ai = Kite(config={"llm_provider": "local", "kite_home": home})
    asyncio.run(scorer.ascore_many(ai, outputs[:8], expected[:8]))  # load the model
    speeds = []
    for _ in range(repeat):
        start = time.perf_counter()
        asyncio.run(scorer.ascore_many(ai, outputs, expected))
        speeds.append(pairs / (time.perf_counter() - start))

    report([
        summarize(f"eval {rows} rows x 3 targets x 2 scorers / the same calls via ai.map "
                  "(50 ms upstream)", ratios, "x", goal="<= 1.1x",
                  baseline=f"ai.amap over the same rows and templates: median "
                           f"{sorted(maps)[len(maps) // 2]:.2f} s",
                  extra={"eval_s": evals, "map_s": maps}),
        summarize(f"similarity scorer throughput ({pairs} pairs, fastembed MiniLM)", speeds,
                  "rows/s", goal="report"),
    ])


if __name__ == "__main__":
    main()
