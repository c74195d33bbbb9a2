"""JSON-lines logs: request ids, the guide's fields, no secrets and no prompts by default."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from conftest import FAKE_KEY, SERVICE_KEY

from kite_lab.core.events import EventBus
from kite_lab.observability.logging import (
    JsonFormatter,
    add_secrets,
    attach_event_logging,
    request_id_var,
)
from kite_lab.testing import Fault

pytestmark = pytest.mark.timeout(60)


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_formatter_adds_request_id_and_redacts():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("kite_lab.test_formatter")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    add_secrets(["hunter2-very-secret"])
    token = request_id_var.set("rid-1")
    try:
        log.info(
            "agent_call",
            extra={"event": "agent_call", "agent": "a", "duration": 0.5, "success": True},
        )
        log.warning("key was hunter2-very-secret and sk-abcdefghijklmnopqrstuvwx")
    finally:
        request_id_var.reset(token)
    first, second = lines(stream.getvalue())
    assert first == first | {
        "event": "agent_call",
        "agent": "a",
        "duration": 0.5,
        "success": True,
        "request_id": "rid-1",
        "level": "info",
    }
    assert "hunter2" not in second["message"] and "sk-abc" not in second["message"]


def test_event_logging_guide_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("kite_lab.test_events")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    bus = EventBus()
    attach_event_logging(bus, logger_name="kite_lab.test_events")
    bus.emit(
        "agent:end",
        agent="helper",
        run_id="r1",
        latency_s=1.25,
        success=False,
        response="a long answer nobody should log",
    )
    bus.emit(
        "http:request",
        method="POST",
        route="/complete",
        status=200,
        duration_s=0.1,
        request_id="abc",
        prompt="secret plan",
    )
    agent, http = lines(stream.getvalue())
    assert (agent["event"], agent["agent"], agent["duration"], agent["success"]) == (
        "agent_call",
        "helper",
        1.25,
        False,
    )
    assert http["event"] == "http_request" and http["request_id"] == "abc" and http["status"] == 200
    assert "secret plan" not in stream.getvalue() and "nobody should" not in stream.getvalue()


def test_process_logs_and_health_never_show_keys_or_prompts(service_env, start_service, fake_llm):
    service_env.update(
        KITE_API_KEYS=SERVICE_KEY,
        KITE_LOG_LEVEL="DEBUG",
        REDIS_URL="redis://:redis-password-123@127.0.0.1:1/0",
    )
    service = start_service(service_env)
    auth = {"Authorization": f"Bearer {SERVICE_KEY}"}
    marker = "PROMPT-MARKER-7f3a"
    with httpx.Client(base_url=service.url, timeout=10, headers=auth) as c:
        ok = c.post("/complete", json={"prompt": f"{marker} please", "temperature": 0.3})
        assert ok.status_code == 200
        request_id = ok.headers["x-request-id"]
        fake_llm.enqueue(Fault(status=401, message=f"Incorrect API key provided: {FAKE_KEY}"))
        assert c.post("/complete", json={"prompt": "x"}).status_code == 502
        assert (
            c.post(
                "/complete", json={"prompt": "x"}, headers={"Authorization": f"Bearer {FAKE_KEY}"}
            ).status_code
            == 401
        )
        health = c.get("/health")
        metrics = c.get("/metrics").text
    assert service.stop() == 0
    log = service.log()
    for secret in (FAKE_KEY, SERVICE_KEY, "redis-password-123"):
        assert secret not in log
        assert secret not in health.text and secret not in metrics
    assert marker not in log
    records = lines(log)
    access = [r for r in records if r["event"] == "http_request"]
    assert any(
        r["request_id"] == request_id and r["route"] == "/complete" and r["status"] == 200
        for r in access
    )
    assert all("request_id" in r for r in access)
    assert any(
        r["event"] == "llm_error" and r.get("error") == "AuthenticationError" for r in records
    )
    assert all(isinstance(r["level"], str) and "time" in r for r in records)


def test_prompts_logged_only_when_enabled(service_env, start_service):
    service_env.update(KITE_LOG_PROMPTS="1")
    service = start_service(service_env)
    with httpx.Client(base_url=service.url, timeout=10) as c:
        assert (
            c.post("/complete", json={"prompt": f"tell {FAKE_KEY} and PROMPT-ON"}).status_code
            == 200
        )
    service.stop()
    log = service.log()
    assert "PROMPT-ON" in log and FAKE_KEY not in log
