"""Prometheus metrics: the guide's API, event-bus feeding, closed label sets, multiprocess."""

from __future__ import annotations

import asyncio
import enum
import shutil
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from kite_lab.core.events import EventBus
from kite_lab.observability.metric_catalogue import breaker_state_value
from kite_lab.observability.metric_labels import LabelPolicy
from kite_lab.observability.metrics import KiteMetrics

pytestmark = pytest.mark.timeout(90)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def test_guide_monitoring_api_works_as_documented():
    from kite_lab.monitoring import metrics

    before = metrics.render()[0].decode()
    metrics.llm_calls.inc()
    metrics.llm_latency.observe(0.42)
    metrics.llm_errors.inc()
    metrics.circuit_breaker_state.set(2)
    metrics.circuit_breaker_failures.inc()
    metrics.agent_calls.inc()
    metrics.agent_success_rate.set(0.75)
    after = metrics.render()[0].decode()
    other = {"provider": "other", "model": "other"}
    assert (
        value(after, "kite_llm_calls_total", **other, outcome="success")
        == value(before, "kite_llm_calls_total", **other, outcome="success") + 1
    )
    assert (
        value(after, "kite_llm_latency_seconds_count", **other)
        == value(before, "kite_llm_latency_seconds_count", **other) + 1
    )
    assert value(after, "kite_llm_errors_total", provider="other", error="other") >= 1
    assert value(after, "kite_circuit_breaker_state", breaker="other") == 2
    assert value(after, "kite_circuit_breaker_failures_total", breaker="other") >= 1
    assert value(after, "kite_agent_calls_total", agent="other", outcome="success") >= 1
    assert value(after, "kite_agent_success_rate", agent="other") == 0.75
    # states as text or enum work too; labels can still be chosen
    metrics.circuit_breaker_state.labels(breaker="openai").set("half_open")
    assert value(metrics.render()[0].decode(), "kite_circuit_breaker_state", breaker="openai") == 1


def test_breaker_state_values():
    class State(enum.Enum):
        OPEN = "open"

    assert breaker_state_value("closed") == 0 and breaker_state_value("half-open") == 1
    assert breaker_state_value(State.OPEN) == 2 and breaker_state_value(1.0) == 1
    with pytest.raises(ValueError, match="closed, half_open, open"):
        breaker_state_value("exploded")


def test_events_feed_metrics_with_closed_label_sets():
    metrics = KiteMetrics(CollectorRegistry())
    bus = EventBus()
    policy = LabelPolicy(agents=lambda: ["helper"], routes=["/complete"])
    metrics.attach(bus, policy)
    bus.emit(
        "llm:response",
        provider="openai",
        model="gpt-4o-mini",
        prompt_tokens=5,
        completion_tokens=7,
        cost_usd=0.001,
        latency_s=1.5,
        cached=False,
    )
    bus.emit(
        "llm:response",
        provider="openai",
        model="my-finetune-123",
        prompt_tokens=1,
        completion_tokens=1,
        cost_usd=None,
        latency_s=0.1,
        cached=False,
    )
    bus.emit("llm:response", provider="openai", model="gpt-4o-mini", cached=True, latency_s=0.0)
    bus.emit("llm:error", provider="weird-provider", model="x", error="ServerError", latency_s=2)
    bus.emit("llm:error", provider="openai", model="gpt-4o-mini", error="SomethingNew")
    bus.emit("breaker:state", name="openai", old="closed", new="open", reason="3 failures")
    bus.emit("breaker:failure", name="openai", error="ServerError")
    bus.emit("agent:end", agent="helper", success=True, latency_s=0.5)
    bus.emit("agent:end", agent="helper", success=False, latency_s=0.5)
    bus.emit("agent:end", agent="user-supplied-name", success=True)
    bus.emit("cache:hit", backend="redis")
    bus.emit("cache:miss", backend="memory")
    bus.emit("ratelimit:rejected", route="/complete", limit="1/minute", key="abc")
    bus.emit("http:start", method="POST", route="/complete")
    bus.emit(
        "http:request", method="POST", route="/secret-probe/../etc", status=404, duration_s=0.01
    )
    bus.emit("killswitch:activated", active=True, reason="x")
    text = metrics.render()[0].decode()
    assert (
        value(
            text, "kite_llm_calls_total", provider="openai", model="gpt-4o-mini", outcome="success"
        )
        == 1
    )
    assert (
        value(text, "kite_llm_calls_total", provider="openai", model="other", outcome="success")
        == 1
    )
    assert (
        value(
            text, "kite_llm_calls_total", provider="openai", model="gpt-4o-mini", outcome="cached"
        )
        == 1
    )
    assert value(text, "kite_llm_errors_total", provider="other", error="ServerError") == 1
    assert value(text, "kite_llm_errors_total", provider="openai", error="other") == 1
    assert (
        value(
            text, "kite_llm_tokens_total", provider="openai", model="gpt-4o-mini", kind="completion"
        )
        == 7
    )
    assert value(text, "kite_llm_cost_usd_total", provider="openai", model="gpt-4o-mini") == 0.001
    assert (
        value(
            text,
            "kite_llm_latency_seconds_bucket",
            provider="openai",
            model="gpt-4o-mini",
            le="120.0",
        )
        == 1
    )
    assert value(text, "kite_circuit_breaker_state", breaker="openai") == 2
    assert value(text, "kite_circuit_breaker_failures_total", breaker="openai") == 1
    assert value(text, "kite_agent_calls_total", agent="helper", outcome="failure") == 1
    assert value(text, "kite_agent_calls_total", agent="other", outcome="success") == 1
    assert value(text, "kite_agent_success_rate", agent="helper") == 0.5
    assert value(text, "kite_cache_hits_total", backend="redis") == 1
    assert value(text, "kite_cache_misses_total", backend="memory") == 1
    assert value(text, "kite_rate_limit_rejections_total", route="/complete") == 1
    assert value(text, "kite_http_requests_total", method="POST", route="other", status="404") == 1
    assert value(text, "kite_http_requests_in_flight") == 0
    assert value(text, "kite_kill_switch_active") == 1
    assert value(text, "kite_process_resident_memory_bytes") > 1_000_000
    labels = {v for (_, ls) in samples(text) for _, v in ls}
    assert not {"my-finetune-123", "weird-provider", "SomethingNew", "user-supplied-name"} & labels


def worker_pids(metrics_dir) -> list[int]:
    return sorted({int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("*.db")})


def _served_by(metrics_dir, pid: int) -> float:
    """/complete requests counted in one worker's own metric file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    if not (metrics_dir / f"counter_{pid}.db").exists():
        return 0.0
    alone = metrics_dir.parent / f"only-{pid}"
    alone.mkdir(exist_ok=True)
    shutil.copy(metrics_dir / f"counter_{pid}.db", alone / f"counter_{pid}.db")
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(alone))
    text = generate_latest(registry).decode()
    return value(text, "kite_http_requests_total", method="POST", route="/complete", status="200")


async def test_multiple_workers_share_metrics(service_env, start_service, tmp_path, fake_llm):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over by an earlier run")
    service_env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    service = start_service(service_env, workers=2)
    assert not (metrics_dir / "counter_999999.db").exists()  # wiped at start
    deadline = time.monotonic() + 60
    while len(pids := worker_pids(metrics_dir)) < 2:  # each worker's gauges exist from its start
        assert time.monotonic() < deadline, "the second worker did not start"
        await asyncio.sleep(0.1)
    fake_llm.latency = 0.05
    sent = 0
    while sent < 300:  # concurrent new connections until both workers have served some
        async with httpx.AsyncClient(base_url=service.url, timeout=20) as client:
            batch = [client.post("/complete", json={"prompt": f"p{sent + i}"}) for i in range(20)]
            assert {r.status_code for r in await asyncio.gather(*batch)} == {200}
        sent += 20
        if all(_served_by(metrics_dir, pid) > 0 for pid in pids):
            break
    per_worker = [_served_by(metrics_dir, pid) for pid in pids]
    assert all(n > 0 for n in per_worker), per_worker
    text = httpx.get(service.url + "/metrics", timeout=10).text
    complete = {"method": "POST", "route": "/complete", "status": "200"}
    assert value(text, "kite_http_requests_total", **complete) == sent == sum(per_worker)
    llm = {"provider": "openai", "model": "gpt-4o-mini", "outcome": "success"}
    assert value(text, "kite_llm_calls_total", **llm) == sent
    assert value(text, "kite_process_resident_memory_bytes") > 2 * 20_000_000
    assert service.stop() == 0
