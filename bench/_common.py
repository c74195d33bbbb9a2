"""Shared helpers for the bench scripts: repetitions, medians and the BENCH_JSON line.

Every figure is a ratio or a paired comparison measured in the same run, because these
machines are shared and noisy; run_all.py collects the BENCH_JSON lines into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    goal: str = ""
    baseline: str = ""
    min: float | None = None
    max: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    return parser.parse_args()


def timed(func: Callable[[], Any], number: int) -> float:
    """Seconds per call of ``func``, over ``number`` calls."""
    start = time.perf_counter()
    for _ in range(number):
        func()
    return (time.perf_counter() - start) / number


def paired_ratios(
    ours: Callable[[], Any], baseline: Callable[[], Any], *, number: int, repeat: int
) -> tuple[list[float], list[float], list[float]]:
    """Interleaved runs of both, in alternating order, so drift hits both alike.

    Returns (ratios ours/baseline, ours seconds/call, baseline seconds/call) per repetition.
    """
    ratios, ours_s, base_s = [], [], []
    for rep in range(repeat):
        if rep % 2:  # alternate which goes first, so warm-up and drift favour neither
            o = timed(ours, number)
            b = timed(baseline, number)
        else:
            b = timed(baseline, number)
            o = timed(ours, number)
        ratios.append(o / b)
        ours_s.append(o)
        base_s.append(b)
    return ratios, ours_s, base_s


def summarize(name: str, values: list[float], unit: str, **kwargs: Any) -> Figure:
    return Figure(
        name=name,
        value=statistics.median(values),
        unit=unit,
        min=min(values),
        max=max(values),
        **kwargs,
    )


def report(figures: list[Figure]) -> None:
    for f in figures:
        spread = f" (min {f.min:.4g}, max {f.max:.4g})" if f.min is not None else ""
        goal = f"  goal: {f.goal}" if f.goal else ""
        print(f"{f.name}: {f.value:.4g} {f.unit}{spread}{goal}")
    print("BENCH_JSON " + json.dumps([asdict(f) for f in figures]))


@contextlib.contextmanager
def server_process(code: str, *args: str) -> Iterator[str]:
    """Run ``code`` (which prints its base URL, then serves until stdin closes) in its own
    process, so the server does not share our GIL; yields the base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: settings a benchmarked service must not inherit from the developer's shell
_SERVICE_ENV_DROPPED = ("REDIS_URL", "POSTGRES_URL", "KITE_API_KEYS", "CACHE_BACKEND",
                        "KITE_FALLBACKS", "KITE_KEY_BUDGETS")


@contextlib.contextmanager
def service_process(upstream: str, factory: str | None = None, *uvicorn_args: str,
                    settings: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """``kite-lab serve`` (``factory`` None) or ``uvicorn --factory FACTORY`` (an app of a
    bench script) in its own process, in front of the OpenAI-compatible ``upstream``;
    yields ``(base_url, pid)`` once ``/health`` says ready, and stops it afterwards."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import httpx

    port = free_port()
    home = tempfile.mkdtemp(prefix="kite-bench-")
    env = dict(os.environ, OPENAI_API_KEY="sk-bench-0123456789abcdef",
               OPENAI_BASE_URL=f"{upstream}/v1", LLM_PROVIDER="openai",
               LLM_MODEL="gpt-4o-mini", KITE_HOME=home, KITE_RATE_LIMIT="off")
    for name in _SERVICE_ENV_DROPPED:
        env.pop(name, None)
    env.update(settings or {})
    if factory is None:
        cmd = [str(Path(sys.executable).with_name("kite-lab")), "serve", "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", factory, "--app-dir",
               str(Path(__file__).parent), "--port", str(port), *uvicorn_args]
    proc = subprocess.Popen(cmd, env=env, cwd=home, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # kite-lab serve answers 503 "starting" until its warm-up is done
            try:
                if httpx.get(url + "/health", timeout=1).status_code != 503:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(cmd[:4])} did not start")
            time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(home, ignore_errors=True)


def fake_server_process(latency: float = 0.0) -> contextlib.AbstractContextManager[str]:
    """A FakeLLMServer with default (echo) replies in its own process; yields base_url."""
    code = (
        "import sys\n"
        "from kite_lab.testing import FakeLLMServer\n"
        "with FakeLLMServer() as s:\n"
        "    s.latency = float(sys.argv[1])\n"
        "    print(s.base_url, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    return server_process(code, str(latency))
