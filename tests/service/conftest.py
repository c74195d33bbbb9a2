"""Fixtures for the service tests: in-process apps and real ``kite-lab serve`` processes.

Real processes run on 127.0.0.1 ephemeral ports with the fake provider server (in this
test process) as their OpenAI endpoint; their stderr (JSON logs) goes to a file the test
can read. Every process started here is stopped at teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

KITE_BIN = str(Path(sys.executable).with_name("kite-lab"))
FAKE_KEY = "sk-test-FAKEKEY0123456789abcdef"
SERVICE_KEY = "svc-key-0123456789-abcdefghij"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need_binary(path: str, package: str) -> str:
    """The binary's path; skip (or fail under KITE_REQUIRE_SERVICES=1) when missing."""
    found = shutil.which(path) or (path if os.path.exists(path) else None)
    if found:
        return found
    message = f"{path} not found (apt-get install {package})"
    if os.environ.get("KITE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} and KITE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _health_status(response: httpx.Response) -> str | None:
    try:
        return str(response.json().get("status"))
    except ValueError:  # not the service's JSON (a proxy page): it is up
        return None


class ServiceProcess:
    """``kite-lab serve`` in a subprocess."""

    def __init__(
        self,
        env: dict[str, str],
        cwd: Path,
        *,
        app: str | None = None,
        workers: int = 1,
        name: str = "kite",
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"{name}-{self.port}.log"
        args = [
            KITE_BIN,
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        if app:
            args += ["--app", app]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 60.0) -> ServiceProcess:
        """Until /health answers with anything but "starting" (unhealthy counts: it's up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"service exited {self.proc.returncode}:\n{self.log()}")
            try:
                response = httpx.get(self.url + "/health", timeout=1.0)
                if _health_status(response) != "starting":
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"service not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return int(self.proc.returncode)


@pytest.fixture
def service_env(fake_llm: Any, tmp_path: Path) -> dict[str, str]:
    """Environment of a service process using the fake provider (no Redis/Postgres)."""
    env = dict(os.environ)
    env.update(
        LLM_PROVIDER="openai",
        LLM_MODEL="gpt-4o-mini",
        OPENAI_API_KEY=FAKE_KEY,
        OPENAI_BASE_URL=fake_llm.openai_base_url,
        KITE_HOME=str(tmp_path / "kite_home"),
        KITE_RATE_LIMIT="off",
        KITE_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """``start_service(env, app=None, workers=1)`` -> a ready ServiceProcess."""
    started: list[ServiceProcess] = []

    def start(
        env: dict[str, str],
        *,
        app: str | None = None,
        workers: int = 1,
        name: str = "kite",
        wait: bool = True,
    ) -> ServiceProcess:
        service = ServiceProcess(env, tmp_path, app=app, workers=workers, name=name)
        started.append(service)
        return service.wait_ready() if wait else service

    yield start
    for service in started:
        service.stop(signal.SIGKILL if service.proc.poll() is None else signal.SIGTERM, 10)


@pytest.fixture
def make_kite(fake_llm: Any, tmp_path: Path) -> Callable[..., Any]:
    """A Kite on the fake provider; ``make_kite(kite_rate_limit="3/minute", ...)``."""
    from kite_lab import Kite

    def make(**overrides: Any) -> Kite:
        config = {
            "llm_provider": "openai",
            "llm_model": "gpt-4o-mini",
            "openai_api_key": FAKE_KEY,
            "openai_base_url": fake_llm.openai_base_url,
            "kite_home": str(tmp_path / "kite_home"),
            "kite_rate_limit": "off",
        }
        config.update(overrides)
        return Kite(config=config, env_file=None)

    return make


@pytest.fixture
def asgi_client() -> Callable[..., Any]:
    """``async with asgi_client(app) as client`` runs the app's lifespan too."""
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def client(app: Any, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app, client=kwargs.pop("peer", ("127.0.0.1", 50000)))
        async with app.router.lifespan_context(app):
            state = getattr(app.state, "kite_service", None)
            if state is not None:  # as a client of `kite-lab serve` would: wait for ready
                await state.readiness.wait()
            async with httpx.AsyncClient(
                transport=transport, base_url="http://kite.test", timeout=30, **kwargs
            ) as c:
                yield c

    return client
