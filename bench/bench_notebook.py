"""Benchmarks of the notebook layer (issue: Notebook layer, "Figures").

1. ``%load_ext kite_lab``: time to load the extension in a fresh process, against the time
   to start the bare IPython shell it loads into (goal: <= 100 ms).
2. ``%%kite`` overhead: one ``%%kite --no-stream -f text`` cell against one
   ``ai.complete`` call, same prompt, same fake provider server (real SDK, real HTTP).
3. Frames over 100k calls: ``calls_df`` on 100k recorded calls against building a plain
   DataFrame from the same event dicts.

Each figure is the median of several repetitions, printed with min/max and as a ratio to
its baseline measured in the same run. ``--quick`` uses tiny sizes and asserts nothing.
The last line is ``BENCH_JSON [...]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

LOAD_EXT_PROBE = r"""
import time
t0 = time.perf_counter()
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
c = Config(); c.HistoryManager.enabled = False
ip = InteractiveShell.instance(config=c)
t1 = time.perf_counter()
ip.run_line_magic("load_ext", "kite_lab")
t2 = time.perf_counter()
print(f"{(t1 - t0) * 1000:.3f} {(t2 - t1) * 1000:.3f}")
"""


def _stats(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def bench_load_ext(reps: int) -> dict[str, Any]:
    bare, load = [], []
    for _ in range(reps):
        out = subprocess.run([sys.executable, "-c", LOAD_EXT_PROBE], capture_output=True,
                             text=True, check=True, cwd="/")
        shell_ms, ext_ms = map(float, out.stdout.split())
        bare.append(shell_ms)
        load.append(ext_ms)
    value, lo, hi = _stats(load)
    return {"name": "load_ext_ms", "goal": "<= 100 ms over a bare shell", "value": value,
            "unit": "ms", "baseline": statistics.median(bare), "min": lo, "max": hi}


def _per_call(func: Callable[[], Any], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        func()
    return (time.perf_counter() - started) / calls * 1000


def bench_cell_overhead(reps: int, calls: int) -> dict[str, Any]:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    from traitlets.config import Config

    from kite_lab import Kite
    from kite_lab.notebook import use
    from kite_lab.testing import FakeLLMServer

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    shell.run_line_magic("load_ext", "kite_lab")
    with FakeLLMServer() as server:
        ai = use(Kite(config={"llm_provider": "openai", "openai_api_key": "sk-bench-0000000",
                              "openai_base_url": server.openai_base_url,
                              "cache_backend": "none"}, env_file=None))
        prompt = "Say something short about kites."
        ai.complete(prompt)  # warm up the SDK client and the loop

        def magic() -> None:
            with capture_output():
                result = shell.run_cell(f"%%kite --no-stream -f text\n{prompt}")
            result.raise_error()

        direct, cells = [], []
        for _ in range(reps):
            direct.append(_per_call(lambda: ai.complete(prompt), calls))
            cells.append(_per_call(magic, calls))
        ai.close()
    value, lo, hi = _stats(cells)
    return {"name": "kite_cell_ms_per_call", "goal": "small overhead over ai.complete",
            "value": value, "unit": "ms", "baseline": statistics.median(direct),
            "min": lo, "max": hi}


def _events(n: int) -> list[Any]:
    from kite_lab.core.events import Event

    events, t = [], 1_700_000_000.0
    for i in range(n):
        t += 0.01
        if i % 50 == 49:
            events.append(Event("llm:error", {"provider": "openai", "model": "gpt-4o-mini",
                                              "request_id": f"r{i}", "error": "ServerError",
                                              "latency_s": 0.1}, time=t))
        else:
            events.append(Event("llm:response", {
                "provider": "openai", "model": "gpt-4o" if i % 3 else "gpt-4o-mini",
                "request_id": f"r{i}", "prompt_tokens": 10 + i % 7, "completion_tokens": 20,
                "cost_usd": 0.0001, "latency_s": 0.2 + (i % 10) / 100, "cached": i % 11 == 0},
                time=t))
        if i % 1000 == 999:
            events.append(Event("breaker:state", {"name": "openai", "old": "closed",
                                                  "new": "open", "reason": "x"}, time=t))
            events.append(Event("breaker:state", {"name": "openai", "old": "open",
                                                  "new": "closed", "reason": "y"}, time=t + 0.001))
    return events


def bench_frames(reps: int, n: int) -> dict[str, Any]:
    import pandas as pd

    from kite_lab.frames import calls_df

    events = _events(n)

    def plain() -> Any:
        rows = [e.data for e in events if e.name.startswith("llm:")]
        return pd.DataFrame.from_records(rows)

    ours, base = [], []
    for _ in range(reps):
        base.append(_per_call(plain, 1))
        ours.append(_per_call(lambda: calls_df(events), 1))
    value, lo, hi = _stats(ours)
    return {"name": f"calls_df_{n}_calls_ms", "goal": "interactive (well under 1 s at 100k)",
            "value": value, "unit": "ms", "baseline": statistics.median(base),
            "min": lo, "max": hi}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds, no asserts")
    args = parser.parse_args(argv)
    quick = args.quick
    results = [
        bench_load_ext(reps=2 if quick else 7),
        bench_cell_overhead(reps=2 if quick else 5, calls=3 if quick else 30),
        bench_frames(reps=2 if quick else 5, n=2_000 if quick else 100_000),
    ]
    for r in results:
        ratio = r["value"] / r["baseline"] if r["baseline"] else float("nan")
        print(f"{r['name']}: {r['value']:.2f} {r['unit']} (median; min {r['min']:.2f}, "
              f"max {r['max']:.2f}) vs baseline {r['baseline']:.2f} {r['unit']} "
              f"-> ratio {ratio:.2f}x   [goal: {r['goal']}]")
    print("BENCH_JSON " + json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
