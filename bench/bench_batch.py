"""ai.map: throughput against a raw-SDK semaphore loop, the aiohttp transport, re-running a
finished map, kill -9 half way, Ray against asyncio, and memory over many rows.

Every figure is a ratio (or a count) measured in this run against the fake OpenAI server in
its own process (so it does not share our GIL):

- map / raw: rows per second of ``ai.map`` over rows per second of an ``openai.AsyncOpenAI``
  loop under an ``asyncio.Semaphore`` with the same concurrency (goal >= 0.95);
- map(aiohttp) / raw(httpx): the same map with OPENAI_HTTP_BACKEND=aiohttp (goal >= 1.5);
- rerun: seconds to re-run a finished map from its checkpoint, and its upstream calls (0);
- kill -9: a child process mapping with a checkpoint is killed at ~50%, then the map is
  rerun; calls received upstream minus rows, and the requests that were in flight at the
  kill (received, never answered to anyone, so asked again: the only extra calls);
- ray / asyncio: rows per second of engine="ray" (local 2-CPU cluster) over asyncio;
- RSS growth of a child process mapping many rows (goal < 300 MB for 100,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Figure, parse_args, report, summarize  # noqa: E402

KEY = "sk-bench-batch-0000000000"

# The fake server in its own process; "count" on stdin prints the chat requests so far.
SERVER = r"""
import sys
from kite_lab.testing import FakeLLMServer
with FakeLLMServer() as s:
    s.latency = float(sys.argv[1])
    print(s.base_url, flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            n = sum(1 for r in s.requests if r.path.endswith("/chat/completions"))
            print(n, flush=True)
        elif line.strip() == "clear":
            s.clear_requests()
            print("ok", flush=True)
"""

CHILD_MAP = r"""
import sys
from kite_lab import Kite
url, checkpoint, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ai = Kite(config={"llm_provider": "openai", "openai_api_key": KEY, "openai_base_url": url,
                  "cache_backend": "none"}, env_file=None)
ai.map([f"kill {i}" for i in range(n)], "Say {text}", checkpoint=checkpoint,
       concurrency=conc, progress=False)
""".replace("KEY", repr(KEY))

CHILD_RSS = r"""
import sys, threading, time
from kite_lab import Kite

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

url, n, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ai = Kite(config={"llm_provider": "openai", "openai_api_key": KEY, "openai_base_url": url,
                  "cache_backend": "none"}, env_file=None)
ai.map(["warm"], "Say {text}", progress=False)
import pandas as pd
rows = pd.DataFrame({"text": [f"memory row {i}" for i in range(n)]})
before, peak, done = rss(), [0], [False]
def sample():
    while not done[0]:
        peak[0] = max(peak[0], rss())
        time.sleep(0.05)
t = threading.Thread(target=sample, daemon=True); t.start()
start = time.perf_counter()
out = ai.map(rows, "Say {text}", concurrency=conc, checkpoint="rss.sqlite", progress=False)
elapsed = time.perf_counter() - start
done[0] = True; t.join()
assert out["_error"].isna().all(), out["_error"].dropna().head()
print("RSS", before, max(peak[0], rss()), elapsed)
""".replace("KEY", repr(KEY))


class Server:
    """The fake server process: its URL, and its request count on demand."""

    def __init__(self, latency: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(latency)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip() + "/v1"

    def _ask(self, word: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def count(self) -> int:
        return int(self._ask("count"))

    def clear(self) -> None:
        self._ask("clear")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@contextlib.contextmanager
def server(latency: float) -> Iterator[Server]:
    s = Server(latency)
    try:
        yield s
    finally:
        s.close()


def kite(url: str, **extra: Any) -> Any:
    from kite_lab import Kite

    return Kite(config={"llm_provider": "openai", "openai_api_key": KEY,
                        "openai_base_url": url, "cache_backend": "none", **extra},
                env_file=None)


async def raw_loop(url: str, rows: list[str], concurrency: int, aiohttp: bool = False) -> float:
    """Seconds for the plain SDK: AsyncOpenAI + a semaphore, the same prompts."""
    import openai

    http = openai.DefaultAioHttpClient() if aiohttp else None
    client = openai.AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0, http_client=http)
    gate = asyncio.Semaphore(concurrency)

    async def one(text: str) -> str:
        async with gate:
            r = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"Say {text}"}])
            return r.choices[0].message.content or ""

    start = time.perf_counter()
    await asyncio.gather(*(one(t) for t in rows))
    elapsed = time.perf_counter() - start
    await client.close()
    return elapsed


def timed_map(ai: Any, rows: list[str], concurrency: int, **kwargs: Any) -> float:
    start = time.perf_counter()
    out = ai.map(rows, "Say {text}", concurrency=concurrency, progress=False, **kwargs)
    elapsed = time.perf_counter() - start
    assert out["_error"].isna().all(), out["_error"].dropna().head()
    return elapsed


def throughput(n: int, latency: float, concurrency: int, repeat: int) -> list[Figure]:
    ratios, aio_ratios, raw_rps, map_rps, aio_rps, rawaio = [], [], [], [], [], []
    nolog_ratios: list[float] = []
    with server(latency) as s:
        ai, ai_aio = kite(s.url), kite(s.url, openai_http_backend="aiohttp")
        ai_nolog = kite(s.url, kite_call_log="none")
        for warm in (ai, ai_aio, ai_nolog):
            timed_map(warm, ["warm"], 1)
        for rep in range(repeat):
            rows = [f"rep{rep} row {i}" for i in range(n)]
            runs = {
                "raw": lambda rows=rows: asyncio.run(raw_loop(s.url, rows, concurrency)),
                "map": lambda rows=rows: timed_map(ai, [r + " m" for r in rows], concurrency),
                "aio": lambda rows=rows: timed_map(ai_aio, [r + " a" for r in rows],
                                                   concurrency),
                "nolog": lambda rows=rows: timed_map(ai_nolog, [r + " n" for r in rows],
                                                     concurrency),
                "rawaio": lambda rows=rows: asyncio.run(raw_loop(s.url, rows, concurrency,
                                                                 True)),
            }
            order = list(runs) if rep % 2 == 0 else list(reversed(runs))
            took = {name: runs[name]() for name in order}
            raw_rps.append(n / took["raw"])
            map_rps.append(n / took["map"])
            aio_rps.append(n / took["aio"])
            rawaio.append(n / took["rawaio"])
            ratios.append(took["raw"] / took["map"])
            aio_ratios.append(took["raw"] / took["aio"])
            nolog_ratios.append(took["raw"] / took["nolog"])
        for done in (ai, ai_aio, ai_nolog):
            done.close()
    size = f"{n} rows, {latency * 1000:.0f} ms latency, concurrency {concurrency}"
    return [
        summarize("map_vs_raw_sdk_throughput", ratios, "x", goal=">= 0.95",
                  baseline=f"raw AsyncOpenAI + semaphore loop, {size}"),
        summarize("map_vs_raw_sdk_throughput, call log off (KITE_CALL_LOG=none)", nolog_ratios,
                  "x", goal="report: what the call log's ~50 us/row costs a CPU-bound map",
                  baseline=f"raw AsyncOpenAI + semaphore loop, {size}"),
        summarize("map_aiohttp_vs_raw_httpx_throughput", aio_ratios, "x", goal=">= 1.5",
                  baseline=f"raw AsyncOpenAI (httpx) loop, {size}"),
        summarize("raw_sdk_rows_per_s", raw_rps, "rows/s", baseline=size),
        summarize("map_rows_per_s", map_rps, "rows/s", baseline=size),
        summarize("map_aiohttp_rows_per_s", aio_rps, "rows/s", baseline=size),
        summarize("raw_sdk_aiohttp_rows_per_s", rawaio, "rows/s", baseline=size),
    ]


def rerun(n: int, concurrency: int, repeat: int) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp, server(0.0) as s:
        ai = kite(s.url)
        rows = [f"rerun {i}" for i in range(n)]
        cp = str(Path(tmp) / "rerun.sqlite")
        first = timed_map(ai, rows, concurrency, checkpoint=cp)
        s.clear()
        times = [timed_map(ai, rows, concurrency, checkpoint=cp) for _ in range(repeat)]
        calls = s.count()
        ai.close()
    return [
        summarize("rerun_finished_map_seconds", times, "s", goal="< 2 s, 0 calls",
                  baseline=f"{n} rows; the first run took {first:.2f} s",
                  extra={"upstream_calls": calls}),
        Figure("rerun_finished_map_calls", calls, "calls", goal="0", baseline=f"{n} rows"),
    ]


def kill9(n: int, concurrency: int) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp, server(0.05) as s:
        cp = Path(tmp) / "kill.sqlite"
        script = Path(tmp) / "child.py"
        script.write_text(CHILD_MAP)
        child = subprocess.Popen([sys.executable, str(script), s.url, str(cp), str(n),
                                  str(concurrency)])
        deadline = time.monotonic() + 300
        while _stored(cp) < n // 2 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.005)
        received = s.count()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        committed = _stored(cp)
        in_flight = received - committed  # sent, never answered to the dead process
        ai = kite(s.url)
        out = ai.map([f"kill {i}" for i in range(n)], "Say {text}", checkpoint=str(cp),
                     concurrency=concurrency, progress=False)
        total = s.count()
        ai.close()
    assert out["_error"].isna().all() and len(out) == n
    return [
        Figure("kill9_calls_minus_rows", total - n, "calls", goal="== requests in flight at "
               "the kill (answered rows are never asked again)",
               baseline=f"{n} rows, killed at {committed} committed",
               extra={"calls": total, "rows": n, "in_flight_at_kill": in_flight,
                      "calls_minus_in_flight": total - in_flight}),
        Figure("kill9_answered_calls_over_rows", (total - in_flight) / n, "x", goal="1.0",
               baseline=f"{n} rows: calls that reached an answer / rows"),
    ]


def _stored(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM kite_map_rows_v1").fetchone()[0])
    except sqlite3.Error:
        return 0


def ray_vs_asyncio(n: int, latency: float, concurrency: int, repeat: int) -> list[Figure]:
    try:
        import ray
    except ImportError:
        return [Figure("ray_vs_asyncio_throughput", float("nan"), "x",
                       note="ray is not installed (pip install 'kite-lab[ray]')")]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ratios = []
    try:
        with server(latency) as s:
            ai = kite(s.url)
            timed_map(ai, [f"warm {i}" for i in range(64)], 8, engine="ray")
            for rep in range(repeat):
                rows = [f"ray{rep} {i}" for i in range(n)]
                local = timed_map(ai, [r + " l" for r in rows], concurrency)
                on_ray = timed_map(ai, [r + " r" for r in rows], concurrency, engine="ray")
                ratios.append(local / on_ray)
            ai.close()
    finally:
        ray.shutdown()
    return [summarize("ray_vs_asyncio_throughput", ratios, "x", goal="report",
                      baseline=f"asyncio engine, {n} rows, {latency * 1000:.0f} ms latency, "
                               f"concurrency {concurrency}, local 2-CPU Ray cluster")]


def rss_growth(n: int, concurrency: int) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp, server(0.0) as s:
        out = subprocess.run([sys.executable, "-c", CHILD_RSS, s.url, str(n), str(concurrency)],
                             capture_output=True, text=True, cwd=tmp, timeout=1800)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RSS ")]
    assert line, out.stderr[-3000:]
    _, before, peak, elapsed = line[-1].split()
    growth = (int(peak) - int(before)) / 2**20
    return [Figure("map_rss_growth", growth, "MB", goal="< 300 MB for 100,000 rows",
                   baseline=f"{n} rows with a SQLite checkpoint, took {float(elapsed):.1f} s")]


def main() -> None:
    args = parse_args(__doc__ or "")
    quick = args.quick
    figures: list[Figure] = []
    if quick:
        figures += throughput(200, 0.02, 32, 1)
        figures += rerun(300, 32, 2)
        figures += kill9(200, 16)
        figures += ray_vs_asyncio(100, 0.02, 32, 1) if os.environ.get("BENCH_RAY") else []
        figures += rss_growth(500, 32)
    else:
        figures += throughput(10_000, 0.1, 128, 3)
        figures += rerun(10_000, 128, 3)
        figures += kill9(2_000, 64)
        figures += ray_vs_asyncio(2_000, 0.1, 128, 3)
        figures += rss_growth(100_000, 128)
    report(figures)


if __name__ == "__main__":
    main()
