"""100 concurrent agent runs against the raw async SDK, cold (fresh process) and warm.

Each repetition starts two fresh processes, in alternating order: one makes 100 concurrent
``chat.completions.create`` calls with the raw ``openai.AsyncOpenAI`` client (the
baseline), the other 100 concurrent ``agent.run`` calls (one model call each) on a
``Kite``. Both talk to the same FakeLLMServer (its own process, 0.5 s latency) and time
their first batch (cold: the first calls of the process) and a second one (warm). The
setup each would do before calling (``import openai`` + the client; ``Kite(...)`` +
``create_agent``) is outside the timed region, alike for both.

Figures are ratios agent / raw SDK per repetition, median over repetitions; goal <= 1.2.
``--quick``: 5 runs, 50 ms latency, one repetition; asserts nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import parse_args, report, server_process, summarize  # noqa: E402

SERVER = """
import sys
from kite_lab.testing import FakeLLMServer, Reply

with FakeLLMServer() as server:
    server.latency = float(sys.argv[1])
    server.set_handler(lambda request: Reply(text="done", prompt_tokens=20, completion_tokens=2))
    print(server.base_url, flush=True)
    sys.stdin.read()
"""

# One fresh process per measurement: prints {"cold": s, "warm": s}.
CLIENT = """
import asyncio, json, sys, time
mode, url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "raw":
    import openai
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url + "/v1", max_retries=0,
                                timeout=60.0)
    async def one(i):
        await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"task {i}"}])
else:
    from kite_lab import Kite
    ai = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-bench",
                      "openai_base_url": url + "/v1", "cache_backend": "none",
                      "breaker_backend": "memory"}, env_file=None)
    agent = ai.create_agent("bench")
    async def one(i):
        result = await agent.run(f"task {i}")
        assert result.success, result.error
async def batch():
    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.perf_counter() - started
async def main():
    cold = await batch()
    warm = await batch()
    print(json.dumps({"cold": cold, "warm": warm}))
asyncio.run(main())
"""


def measure(mode: str, url: str, runs: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, mode, url, str(runs)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    args = parse_args(__doc__ or "")
    runs, latency, repeat = (5, 0.05, 1) if args.quick else (100, 0.5, 5)
    ratios: dict[str, list[float]] = {"cold": [], "warm": []}
    seconds: dict[str, list[float]] = {"agent cold": [], "sdk cold": []}
    with server_process(SERVER, str(latency)) as url:
        for rep in range(repeat):
            order = ("raw", "kite") if rep % 2 == 0 else ("kite", "raw")
            got = {mode: measure(mode, url, runs) for mode in order}
            for phase in ("cold", "warm"):
                ratios[phase].append(got["kite"][phase] / got["raw"][phase])
            seconds["agent cold"].append(got["kite"]["cold"])
            seconds["sdk cold"].append(got["raw"]["cold"])
    baseline = f"raw openai.AsyncOpenAI, {runs} concurrent calls, {latency:g} s latency"
    figures = [
        summarize(
            f"{runs} concurrent agent runs, {phase} / raw SDK",
            ratios[phase],
            "x",
            goal="<= 1.2",
            baseline=baseline,
        )
        for phase in ("cold", "warm")
    ]
    figures += [
        summarize(f"{name} ({runs} calls)", values, "s", baseline="ideal: the latency")
        for name, values in seconds.items()
    ]
    report(figures)


if __name__ == "__main__":
    main()
