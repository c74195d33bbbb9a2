"""Fixtures of the safety tests: stores of both kinds, a fake clock, worker processes and a
private Redis that a test may kill."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kite_lab.backends.clock import FakeClock
from kite_lab.core.events import EventBus

WORKERS = Path(__file__).resolve().parent / "safety_workers.py"


@pytest.fixture(autouse=True)
async def _close_this_loops_redis_clients() -> Any:
    """Each async test has its own loop: close its Redis connections before it ends."""
    yield
    from kite_lab.backends.redis_client import aclose_redis_clients

    await aclose_redis_clients()


def drop_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN + UNLINK): tests leave nothing behind."""
    import redis

    from kite_lab.memory.cache_stores import glob_escape

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=glob_escape(prefix) + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start:start + 1000])
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_prefix: str, redis_url: str) -> Iterator[str]:
    """The shared conftest's unique prefix, and every key under it dropped afterwards."""
    yield redis_prefix
    drop_keys(redis_url, redis_prefix)


@pytest.fixture
def shared_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix for worker processes, removed with all its keys afterwards."""
    prefix = f"kitetest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    drop_keys(redis_url, prefix)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test against the memory store and the Redis store (real Redis)."""
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return str(request.param)


def run_workers(
    mode: str, params: dict[str, Any], processes: int, *, timeout: float = 120.0,
    cwd: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]]:
    """Start ``processes`` worker scripts at once; return each one's JSON findings."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKERS), mode, json.dumps({**params, "processes": processes})],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        )
        for _ in range(processes)
    ]
    results = []
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, f"worker {mode} failed:\n{err[-3000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.fixture
def workers(tmp_path: Path) -> Callable[..., list[dict[str, Any]]]:
    def start(mode: str, params: dict[str, Any], processes: int = 4, **kw: Any) -> list[Any]:
        return run_workers(mode, params, processes, cwd=tmp_path, **kw)

    return start


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of our own on a free port, to kill and restart mid-test."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("private redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()
