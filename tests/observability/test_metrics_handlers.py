"""The metric parts on their own: catalogue, event handlers, label policy, guide shim, files.

The service tests (tests/service/test_service_metrics.py) check the whole through
``/metrics``; these check each part directly, on a private registry, with real
prometheus_client objects and a real EventBus.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from kite_lab.core.events import EventBus
from kite_lab.observability.guide_metric import GuideMetric
from kite_lab.observability.metric_catalogue import (
    BREAKER_STATE_VALUES,
    LLM_LATENCY_BUCKETS,
    MetricCatalogue,
)
from kite_lab.observability.metric_events import MetricEventHandlers
from kite_lab.observability.metric_labels import OTHER, LabelPolicy
from kite_lab.observability.metrics import KiteMetrics
from kite_lab.observability.multiprocess import multiprocess_enabled, wipe_multiprocess_dir

pytestmark = pytest.mark.timeout(60)

#: the names the deployment guide, the dashboard and users' alerts rely on
CONTRACT = {
    "kite_llm_calls": ("provider", "model", "outcome"),
    "kite_llm_latency_seconds": ("provider", "model"),
    "kite_llm_errors": ("provider", "error"),
    "kite_llm_tokens": ("provider", "model", "kind"),
    "kite_llm_cost_usd": ("provider", "model"),
    "kite_circuit_breaker_state": ("breaker",),
    "kite_circuit_breaker_failures": ("breaker",),
    "kite_circuit_breaker_rejected": ("breaker",),
    "kite_agent_calls": ("agent", "outcome"),
    "kite_agent_success_rate": ("agent",),
    "kite_agent_duration_seconds": ("agent",),
    "kite_cache_hits": ("backend",),
    "kite_cache_misses": ("backend",),
    "kite_rate_limit_rejections": ("route",),
    "kite_http_requests": ("method", "route", "status"),
    "kite_http_request_duration_seconds": ("method", "route"),
    "kite_http_requests_in_flight": (),
    "kite_kill_switch_active": (),
    "kite_idempotency_requests": ("outcome",),
    "kite_map_rows": ("outcome",),
    "kite_build_info": ("version",),
}


@pytest.fixture
def catalogue() -> MetricCatalogue:
    return MetricCatalogue(CollectorRegistry())


@pytest.fixture
def policy() -> LabelPolicy:
    return LabelPolicy(providers=["openai"], agents=lambda: ["helper"], routes=["/complete"])


def sample(catalogue: MetricCatalogue, name: str, **labels: str) -> float:
    return catalogue.registry.get_sample_value(name, labels) or 0.0


def test_catalogue_names_and_labels_are_the_contract(catalogue: MetricCatalogue) -> None:
    declared = {
        m.name: tuple(m.defaults) for m in vars(catalogue).values() if isinstance(m, GuideMetric)
    }
    assert declared == CONTRACT
    assert all(v == OTHER for m in vars(catalogue).values() if isinstance(m, GuideMetric)
               for k, v in m.defaults.items() if k not in ("outcome", "kind"))  # fmt: skip
    assert catalogue.llm_latency.metric._upper_bounds[:-1] == list(LLM_LATENCY_BUCKETS)
    assert set(BREAKER_STATE_VALUES) == {"closed", "half_open", "open"}


def test_llm_events(catalogue: MetricCatalogue, policy: LabelPolicy) -> None:
    handlers = MetricEventHandlers(catalogue)
    llm = {"provider": "openai", "model": "gpt-4o-mini"}
    handlers.handle(policy, "llm:response", {**llm, "latency_s": 0.2, "prompt_tokens": 3,
                                             "completion_tokens": 4, "cost_usd": 0.5})  # fmt: skip
    handlers.handle(policy, "llm:response", {**llm, "cached": True})
    handlers.handle(policy, "llm:error", {**llm, "error": "ServerError", "latency_s": 1.0})
    handlers.handle(policy, "llm:error", {**llm, "error": "NotAKiteError"})
    assert sample(catalogue, "kite_llm_calls_total", **llm, outcome="success") == 1
    assert sample(catalogue, "kite_llm_calls_total", **llm, outcome="cached") == 1
    assert sample(catalogue, "kite_llm_calls_total", **llm, outcome="error") == 2
    assert sample(catalogue, "kite_llm_latency_seconds_count", **llm) == 2  # not the hit
    assert sample(catalogue, "kite_llm_tokens_total", **llm, kind="prompt") == 3
    assert sample(catalogue, "kite_llm_tokens_total", **llm, kind="completion") == 4
    assert sample(catalogue, "kite_llm_cost_usd_total", **llm) == 0.5
    assert sample(catalogue, "kite_llm_errors_total", provider="openai", error="ServerError") == 1
    assert sample(catalogue, "kite_llm_errors_total", provider="openai", error=OTHER) == 1


def test_breaker_cache_ratelimit_and_http_events(
    catalogue: MetricCatalogue, policy: LabelPolicy
) -> None:
    handlers = MetricEventHandlers(catalogue)
    handlers.handle(policy, "breaker:state", {"name": "openai", "new": "half-open"})
    handlers.handle(policy, "breaker:state", {"name": "openai", "new": "melted"})  # ignored
    handlers.handle(policy, "breaker:failure", {"name": "openai"})
    handlers.handle(policy, "breaker:rejected", {"name": "sk-not-a-provider"})
    handlers.handle(policy, "cache:hit", {"backend": "memory"})
    handlers.handle(policy, "cache:miss", {"backend": "disk"})
    handlers.handle(policy, "ratelimit:rejected", {"route": "/complete"})
    handlers.handle(policy, "http:start", {})
    handlers.handle(policy, "http:start", {})
    handlers.handle(policy, "http:request", {"method": "POST", "route": "/complete",
                                             "status": 200, "duration_s": 0.1})  # fmt: skip
    handlers.handle(policy, "no:such-event", {"x": 1})
    assert sample(catalogue, "kite_circuit_breaker_state", breaker="openai") == 1
    assert sample(catalogue, "kite_circuit_breaker_failures_total", breaker="openai") == 1
    assert sample(catalogue, "kite_circuit_breaker_rejected_total", breaker=OTHER) == 1
    assert sample(catalogue, "kite_cache_hits_total", backend="memory") == 1
    assert sample(catalogue, "kite_cache_misses_total", backend=OTHER) == 1
    assert sample(catalogue, "kite_rate_limit_rejections_total", route="/complete") == 1
    assert sample(catalogue, "kite_http_requests_in_flight") == 1
    http = {"method": "POST", "route": "/complete"}
    assert sample(catalogue, "kite_http_requests_total", **http, status="200") == 1
    assert sample(catalogue, "kite_http_request_duration_seconds_count", **http) == 1


def test_kill_switch_and_idempotency_events(
    catalogue: MetricCatalogue, policy: LabelPolicy
) -> None:
    handlers = MetricEventHandlers(catalogue)
    handlers.handle(policy, "killswitch:activated", {})
    assert sample(catalogue, "kite_kill_switch_active") == 1
    handlers.handle(policy, "killswitch:state", {"active": False})
    assert sample(catalogue, "kite_kill_switch_active") == 0
    handlers.handle(policy, "killswitch:on", {})
    assert sample(catalogue, "kite_kill_switch_active") == 1
    handlers.handle(policy, "idempotency:replayed", {})
    handlers.handle(policy, "idempotency:event", {"outcome": "conflict"})
    handlers.handle(policy, "idempotency:whatever", {})
    assert sample(catalogue, "kite_idempotency_requests_total", outcome="replayed") == 1
    assert sample(catalogue, "kite_idempotency_requests_total", outcome="conflict") == 1
    assert sample(catalogue, "kite_idempotency_requests_total", outcome=OTHER) == 1


def test_agent_success_rate_is_shared_by_every_attached_bus(policy: LabelPolicy) -> None:
    metrics = KiteMetrics(CollectorRegistry())
    first, second = EventBus(), EventBus()
    subscription = metrics.attach(first, policy)
    metrics.attach(second, policy)
    first.emit("agent:end", agent="helper", success=True, latency_s=0.5)
    second.emit("agent:end", agent="helper", success=False, duration_s=0.25)
    assert sample(metrics, "kite_agent_success_rate", agent="helper") == 0.5
    assert sample(metrics, "kite_agent_calls_total", agent="helper", outcome="failure") == 1
    assert sample(metrics, "kite_agent_duration_seconds_count", agent="helper") == 2
    subscription.unsubscribe()
    first.emit("agent:end", agent="helper", success=True)
    assert sample(metrics, "kite_agent_calls_total", agent="helper", outcome="success") == 1


def test_label_policy_closes_every_set(policy: LabelPolicy) -> None:
    assert policy.provider("openai") == "openai" and policy.provider("sk-abc123") == OTHER
    assert policy.model("openai", "gpt-4o-mini") == "gpt-4o-mini"
    assert policy.model("openai", "my-finetune") == OTHER and policy.model("openai", 3) == OTHER
    assert policy.error("ServerError") == "ServerError" and policy.error("redact") == OTHER
    assert policy.agent("helper") == "helper" and policy.agent("stranger") == OTHER
    assert policy.route("/complete") == "/complete" and policy.route("/../etc") == OTHER
    assert policy.status(404) == "404" and policy.status(99) == OTHER
    assert policy.status(True) == OTHER
    assert policy.method("POST") == "POST" and policy.method("BREW") == OTHER
    assert policy.cache_backend("redis") == "redis" and policy.cache_backend("x") == OTHER
    assert policy.idempotency_outcome("expired") == "expired"
    assert policy.idempotency_outcome("hacked") == OTHER


def test_guide_metric_defaults_and_label_errors(catalogue: MetricCatalogue) -> None:
    catalogue.llm_calls.inc()
    catalogue.llm_calls.labels(provider="openai").inc(2)
    catalogue.llm_calls.labels("anthropic", "claude").inc()
    other = {"provider": OTHER, "model": OTHER, "outcome": "success"}
    assert sample(catalogue, "kite_llm_calls_total", **other) == 1
    assert sample(catalogue, "kite_llm_calls_total", **(other | {"provider": "openai"})) == 2
    assert (
        sample(catalogue, "kite_llm_calls_total", provider="anthropic", model="claude",
               outcome="success") == 1
    )  # fmt: skip
    with pytest.raises(ValueError, match="has labels"):
        catalogue.llm_calls.labels(api_key="sk-secret")
    catalogue.circuit_breaker_state.set("open")
    assert sample(catalogue, "kite_circuit_breaker_state", breaker=OTHER) == 2
    catalogue.kill_switch_active.set(1)
    assert sample(catalogue, "kite_kill_switch_active") == 1
    assert repr(catalogue.llm_errors) == (
        "GuideMetric('kite_llm_errors', labels=['error', 'provider'])"
    )


def test_wipe_multiprocess_dir(tmp_path) -> None:
    target = tmp_path / "metrics"
    assert wipe_multiprocess_dir(target) == 0 and target.is_dir()
    (target / "counter_1.db").write_bytes(b"x")
    (target / "notes.txt").write_text("kept")
    assert wipe_multiprocess_dir(target) == 1
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert multiprocess_enabled() is False  # the test process has no PROMETHEUS_MULTIPROC_DIR
