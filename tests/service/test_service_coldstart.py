"""Cold start of ``kite-lab serve``: readiness, SIGTERM during start-up, no imports on the loop.

The slow start is real, not mocked: the served module registers a provider (the OpenAI
provider against the fake server) whose construction takes ``SLOW_START`` seconds, the
way an SDK import and client set-up take seconds on a cold machine. Before the warm-up,
that construction ran on the event loop inside the first request.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.timeout(120)

SLOW_START = 1.5

SLOW_APP = f'''
import time

from kite_lab import Kite
from kite_lab.providers.openai_compat import OpenAIProvider
from kite_lab.providers.registry import register_provider


class SlowStartOpenAI(OpenAIProvider):
    """The OpenAI provider, with the construction time of a cold SDK import."""

    name = "slowstart"

    def __init__(self, settings):
        time.sleep({SLOW_START})
        super().__init__(settings)


register_provider("slowstart", SlowStartOpenAI)
ai = Kite()
'''

# Records every module imported on the event-loop thread (the main thread under
# `kite-lab serve`) while a request is being handled (the request id is set).
IMPORT_AUDIT_APP = """
import os
import sys
import threading

from kite_lab.observability.logging import request_id_var

_out = os.open(os.environ["IMPORT_AUDIT_FILE"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
_main = threading.main_thread()


def _audit(event, args):
    if event == "import" and threading.current_thread() is _main:
        request_id = request_id_var.get()
        if request_id is not None:
            os.write(_out, f"{request_id} {args[0]}\\n".encode())


sys.addaudithook(_audit)

from kite_lab import Kite  # noqa: E402

ai = Kite()
ai.create_agent("helper", "Be concise.")
"""


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    """Until the port accepts a TCP connection (no HTTP request: it builds nothing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"port {port} never opened")


@pytest.fixture
def slow_service_env(service_env, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "slow_start_app.py").write_text(SLOW_APP, encoding="utf-8")
    service_env.update(LLM_PROVIDER="slowstart", KITE_SHUTDOWN_GRACE_SECONDS="20")
    return service_env


def test_health_says_starting_until_the_provider_is_loaded(slow_service_env, start_service):
    service = start_service(slow_service_env, app="slow_start_app", wait=False)
    _wait_for_port(service.port)
    seen: list[tuple[int, dict]] = []
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=service.url, timeout=5) as client:
        while time.monotonic() < deadline:
            response = client.get("/health")
            seen.append((response.status_code, response.json()))
            if response.json()["status"] != "starting":
                break
            time.sleep(0.05)
    first_status, first = seen[0]
    assert first_status == 503 and first["status"] == "starting", seen[0]
    # the guide's fields are there while starting too
    for name in ("circuit_breaker", "llm_provider", "model", "redis", "postgres", "version"):
        assert name in first
    assert first["llm_provider"] == "slowstart" and first["model"] == "gpt-4o-mini"
    assert any("starting" in reason for reason in first["reasons"])
    last_status, last = seen[-1]
    assert last_status == 200 and last["status"] == "healthy", seen[-1]
    assert last["circuit_breaker"] == "closed"
    # 'starting' lasted about as long as the provider took to load, no longer
    assert len(seen) >= 2
    log = service.log()
    assert '"service_ready"' in log


@pytest.mark.parametrize("delay", [0.2, 1.0])
async def test_sigterm_during_cold_start_serves_every_accepted_request(
    slow_service_env, start_service, fake_llm, delay
):
    """Five requests sent as the port opens, SIGTERM ``delay`` s later: five answers."""
    service = start_service(slow_service_env, app="slow_start_app", wait=False)
    await asyncio.to_thread(_wait_for_port, service.port)
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        tasks = [
            asyncio.create_task(client.post("/complete", json={"prompt": f"job {i}"}))
            for i in range(5)
        ]
        await asyncio.sleep(delay)
        service.proc.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*tasks)
    assert [r.status_code for r in results] == [200] * 5, [r.text for r in results]
    assert sorted(r.json()["text"] for r in results) == [f"Echo: job {i}" for i in range(5)]
    assert await asyncio.to_thread(service.proc.wait, 30) == 0
    assert "shutdown_drained" in service.log()


async def test_no_module_is_imported_on_the_event_loop_during_a_request(
    service_env, start_service, fake_llm, tmp_path
):
    """After ready, a first request of every kind imports nothing on the loop thread."""
    audit = tmp_path / "imports.txt"
    (tmp_path / "audited_app.py").write_text(IMPORT_AUDIT_APP, encoding="utf-8")
    service_env.update(IMPORT_AUDIT_FILE=str(audit), KITE_RATE_LIMIT="100/minute")
    service = start_service(service_env, app="audited_app")
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        plain = await client.post("/complete", json={"prompt": "first"})
        chat = await client.post(
            "/chat", json={"messages": [{"role": "user", "content": "hi"}], "session_id": "s1"}
        )
        keyed = await client.post(
            "/complete", json={"prompt": "keyed"}, headers={"Idempotency-Key": "k-1"}
        )
        replayed = await client.post(
            "/complete", json={"prompt": "keyed"}, headers={"Idempotency-Key": "k-1"}
        )
        async with client.stream(
            "POST", "/complete", json={"prompt": "streamed", "stream": True}
        ) as streamed:
            events = [line async for line in streamed.aiter_lines() if line.startswith("event:")]
        agent = await client.post("/agents/helper/run", json={"input": "hello"})
        invalid = await client.post("/chat", json={"messages": []})
        health = await client.get("/health")
        metrics = await client.get("/metrics")
        schema = await client.get("/openapi.json")
    assert [plain.status_code, chat.status_code, keyed.status_code] == [200, 200, 200]
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert events[-1] == "event: done"
    assert agent.status_code == 200 and invalid.status_code == 422
    assert [health.status_code, metrics.status_code, schema.status_code] == [200, 200, 200]
    imported = audit.read_text(encoding="utf-8").split("\n") if audit.exists() else []
    # a codec looked up by name (stdlib, microseconds) is not what this guards against
    imported = [line for line in imported if line and " encodings." not in line]
    assert imported == [], "imported on the event loop during requests:\n" + "\n".join(imported)
    assert '"warmup_problems": []' in service.log()
