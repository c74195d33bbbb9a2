"""The catalogue: every kite_lab metric's name, help text, labels and buckets, in one place.

Why one place: the names and labels below are a contract — the deployment guide, the
Grafana dashboard and users' alert rules refer to them — so they are declared once and
nowhere else. Naming follows Prometheus conventions: ``kite_`` prefix, base units
(seconds, bytes, USD), ``_total`` added to counters by prometheus_client. Every label has
a default (``"other"``, see ``metric_labels``) so the guide's label-less calls work.

Gauges declare how several workers' values combine in multiprocess mode (``livesum``
for in-flight requests, ``mostrecent`` for states, ``max`` for build info).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from kite_lab.observability.guide_metric import GuideMetric
from kite_lab.observability.metric_labels import OTHER

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = [
    "BREAKER_STATE_VALUES",
    "HTTP_LATENCY_BUCKETS",
    "LLM_LATENCY_BUCKETS",
    "MetricCatalogue",
    "breaker_state_value",
]

#: LLM calls can take minutes (long generations, slow local models): buckets reach 300 s.
LLM_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
HTTP_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

#: how a gauge's values from several workers combine (prometheus_client's modes we use)
GaugeMode = Literal["livesum", "mostrecent", "max"]

#: ``kite_circuit_breaker_state`` values (a gauge needs numbers).
BREAKER_STATE_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


def breaker_state_value(state: Any) -> float:
    """``"open"``, ``CircuitState.OPEN`` or a number -> the gauge value."""
    if isinstance(state, int | float) and not isinstance(state, bool):
        return float(state)
    raw = state.value if isinstance(state, enum.Enum) else state
    if isinstance(raw, int | float):
        return float(raw)
    key = str(raw).lower().replace("-", "_")
    if key not in BREAKER_STATE_VALUES:
        raise ValueError(
            f"unknown circuit breaker state {state!r}; use one of {', '.join(BREAKER_STATE_VALUES)}"
        )
    return BREAKER_STATE_VALUES[key]


class MetricCatalogue:
    """Every kite_lab metric, registered on ``registry`` (prometheus_client loads here)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.registry = r = registry

        def counter(name: str, doc: str, **defaults: str) -> GuideMetric:
            return GuideMetric(Counter(name, doc, list(defaults), registry=r), defaults)

        def gauge(
            name: str,
            doc: str,
            mode: GaugeMode,
            convert: Callable[[Any], float] = float,
            **defaults: str,
        ) -> GuideMetric:
            metric = Gauge(name, doc, list(defaults), registry=r, multiprocess_mode=mode)
            return GuideMetric(metric, defaults, convert)

        def histogram(
            name: str, doc: str, buckets: tuple[float, ...], **defaults: str
        ) -> GuideMetric:
            return GuideMetric(
                Histogram(name, doc, list(defaults), registry=r, buckets=buckets), defaults
            )

        llm = {"provider": OTHER, "model": OTHER}
        self.llm_calls = counter(
            "kite_llm_calls",
            "LLM calls by outcome (success, error, cached)",
            **llm,
            outcome="success",
        )
        self.llm_latency = histogram(
            "kite_llm_latency_seconds",
            "LLM call latency (provider calls, not cache hits)",
            LLM_LATENCY_BUCKETS,
            **llm,
        )
        self.llm_errors = counter(
            "kite_llm_errors",
            "failed LLM calls by kite_lab error class",
            provider=OTHER,
            error=OTHER,
        )
        self.llm_tokens = counter(
            "kite_llm_tokens", "tokens billed by the provider", **llm, kind="prompt"
        )
        self.llm_cost = counter(
            "kite_llm_cost_usd", "provider cost in USD (known prices only)", **llm
        )
        self.circuit_breaker_state = gauge(
            "kite_circuit_breaker_state",
            "0 closed, 1 half-open, 2 open",
            "mostrecent",
            breaker_state_value,
            breaker=OTHER,
        )
        self.circuit_breaker_failures = counter(
            "kite_circuit_breaker_failures", "failures counted by a circuit breaker", breaker=OTHER
        )
        self.circuit_breaker_rejections = counter(
            "kite_circuit_breaker_rejected", "calls rejected by an open breaker", breaker=OTHER
        )
        self.agent_calls = counter(
            "kite_agent_calls",
            "agent runs by outcome (success, failure)",
            agent=OTHER,
            outcome="success",
        )
        self.agent_success_rate = gauge(
            "kite_agent_success_rate",
            "successful / all runs of an agent (this process)",
            "mostrecent",
            agent=OTHER,
        )
        self.agent_duration = histogram(
            "kite_agent_duration_seconds", "agent run duration", LLM_LATENCY_BUCKETS, agent=OTHER
        )
        self.cache_hits = counter("kite_cache_hits", "response cache hits", backend=OTHER)
        self.cache_misses = counter("kite_cache_misses", "response cache misses", backend=OTHER)
        self.rate_limit_rejections = counter(
            "kite_rate_limit_rejections", "requests rejected by a kite_lab rate limit", route=OTHER
        )
        self.http_requests = counter(
            "kite_http_requests",
            "HTTP requests by route and status",
            method=OTHER,
            route=OTHER,
            status=OTHER,
        )
        self.http_latency = histogram(
            "kite_http_request_duration_seconds",
            "HTTP request duration",
            HTTP_LATENCY_BUCKETS,
            method=OTHER,
            route=OTHER,
        )
        self.http_in_flight = gauge(
            "kite_http_requests_in_flight", "HTTP requests being served", "livesum"
        )
        self.kill_switch_active = gauge(
            "kite_kill_switch_active", "1 while the kill switch is active", "mostrecent"
        )
        self.idempotency = counter(
            "kite_idempotency_requests", "idempotency outcomes", outcome=OTHER
        )
        self.map_rows = counter(
            "kite_map_rows",
            "ai.map rows by outcome (success, cached, resumed, error, budget)",
            outcome=OTHER,
        )
        self.build_info = gauge("kite_build_info", "kite_lab version", "max", version=OTHER)

        from kite_lab._version import __version__

        self.build_info.labels(version=__version__).set(1)
