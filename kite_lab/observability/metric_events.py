"""Event handlers: each bus event the metrics care about -> the metric updates it makes.

Why the bus: the call path (pipeline, breakers, agents, the HTTP middleware) only emits
events; this module turns them into counter, gauge and histogram updates. A metric can
be added or renamed without touching the code that makes the calls, and a broken metric
can never fail a call (the bus isolates subscribers).

Every label value goes through the ``LabelPolicy`` (closed sets), never straight from
the event. The handlers keep one piece of state: per-agent run counts for the success
rate gauge, shared by every bus attached to the same catalogue.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kite_lab.observability.metric_catalogue import MetricCatalogue, breaker_state_value

if TYPE_CHECKING:
    from kite_lab.core.events import Event, EventBus, Subscription
    from kite_lab.observability.metric_labels import LabelPolicy

__all__ = ["MetricEventHandlers"]

Handler = Callable[["LabelPolicy", dict[str, Any], str], None]


class MetricEventHandlers:
    """Updates a ``MetricCatalogue`` from events; ``attach`` subscribes it to a bus."""

    def __init__(self, metrics: MetricCatalogue) -> None:
        self.metrics = metrics
        self._lock = threading.Lock()
        self._agent_counts: dict[str, list[int]] = {}
        self._handlers: dict[str, Handler] = {
            "llm:response": self._on_llm_response,
            "llm:error": self._on_llm_error,
            "cache:hit": self._on_cache,
            "cache:miss": self._on_cache,
            "breaker:state": self._on_breaker_state,
            "breaker:failure": self._on_breaker_failure,
            "breaker:rejected": self._on_breaker_rejected,
            "agent:end": self._on_agent_end,
            "ratelimit:rejected": self._on_rate_limited,
            "http:start": self._on_http_start,
            "http:request": self._on_http_request,
            "map:row": self._on_map_row,
            "map:done": self._on_map_done,
        }

    def attach(self, bus: EventBus, policy: LabelPolicy) -> Subscription:
        """Feed the metrics from ``bus``; ``subscription.unsubscribe()`` stops it."""

        def on_event(event: Event) -> None:
            self.handle(policy, event.name, event.data)

        return bus.subscribe("*", on_event)

    def handle(self, policy: LabelPolicy, name: str, data: dict[str, Any]) -> None:
        """Apply one event (unknown event names are ignored)."""
        handler = self._handlers.get(name)
        if handler is not None:
            handler(policy, data, name)
        elif name.startswith("killswitch:"):
            self._on_kill_switch(policy, data, name)
        elif name.startswith("idempotency:"):
            self._on_idempotency(policy, data, name)

    @staticmethod
    def _llm_labels(policy: LabelPolicy, data: Mapping[str, Any]) -> tuple[str, str]:
        provider = policy.provider(data.get("provider"))
        return provider, policy.model(provider, data.get("model"))

    def _on_llm_response(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        m = self.metrics
        provider, model = self._llm_labels(policy, data)
        if data.get("cached"):
            m.llm_calls.child(provider, model, "cached").inc()
            return
        m.llm_calls.child(provider, model, "success").inc()
        m.llm_latency.child(provider, model).observe(float(data.get("latency_s") or 0.0))
        for kind in ("prompt", "completion"):
            tokens = data.get(f"{kind}_tokens") or 0
            if tokens:
                m.llm_tokens.child(provider, model, kind).inc(tokens)
        cost = data.get("cost_usd")
        if cost:
            m.llm_cost.child(provider, model).inc(float(cost))

    def _on_llm_error(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        m = self.metrics
        provider, model = self._llm_labels(policy, data)
        m.llm_calls.child(provider, model, "error").inc()
        m.llm_errors.child(provider, policy.error(data.get("error"))).inc()
        if data.get("latency_s") is not None:
            m.llm_latency.child(provider, model).observe(float(data["latency_s"]))

    def _on_cache(self, policy: LabelPolicy, data: dict[str, Any], name: str) -> None:
        backend = policy.cache_backend(data.get("backend"))
        m = self.metrics
        (m.cache_hits if name == "cache:hit" else m.cache_misses).child(backend).inc()

    def _on_breaker_state(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        try:
            value = breaker_state_value(data.get("new"))
        except ValueError:
            return
        breaker = policy.provider(data.get("name"))
        self.metrics.circuit_breaker_state.labels(breaker=breaker).set(value)

    def _on_breaker_failure(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.metrics.circuit_breaker_failures.child(policy.provider(data.get("name"))).inc()

    def _on_breaker_rejected(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.metrics.circuit_breaker_rejections.child(policy.provider(data.get("name"))).inc()

    def _on_agent_end(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        m = self.metrics
        agent = policy.agent(data.get("agent"))
        success = bool(data.get("success"))
        m.agent_calls.labels(agent=agent, outcome="success" if success else "failure").inc()
        duration = data.get("latency_s", data.get("duration_s"))
        if isinstance(duration, int | float):
            m.agent_duration.labels(agent=agent).observe(float(duration))
        with self._lock:
            counts = self._agent_counts.setdefault(agent, [0, 0])
            counts[0] += 1
            counts[1] += int(success)
            rate = counts[1] / counts[0]
        m.agent_success_rate.labels(agent=agent).set(rate)

    def _on_rate_limited(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.metrics.rate_limit_rejections.child(policy.route(data.get("route"))).inc()

    def _on_http_start(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.metrics.http_in_flight.child().inc()

    def _on_http_request(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        m = self.metrics
        m.http_in_flight.child().dec()
        method, route = policy.method(data.get("method")), policy.route(data.get("route"))
        m.http_requests.child(method, route, policy.status(data.get("status"))).inc()
        m.http_latency.child(method, route).observe(float(data.get("duration_s") or 0))

    def _on_map_row(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.metrics.map_rows.labels(outcome=policy.map_outcome(data.get("outcome"))).inc()

    def _on_map_done(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        # rows restored from a checkpoint and rows the budget stopped get no map:row each
        for outcome in ("resumed", "budget"):
            count = data.get(outcome if outcome == "resumed" else "skipped")
            if isinstance(count, int) and count > 0:
                self.metrics.map_rows.labels(outcome=outcome).inc(count)

    def _on_kill_switch(self, policy: LabelPolicy, data: dict[str, Any], name: str) -> None:
        if "active" in data:
            active = bool(data["active"])
        else:
            active = name.endswith((":activated", ":activate", ":on"))
        self.metrics.kill_switch_active.set(1.0 if active else 0.0)

    def _on_idempotency(self, policy: LabelPolicy, data: dict[str, Any], name: str) -> None:
        outcome = data.get("outcome") or name.partition(":")[2]
        self.metrics.idempotency.labels(outcome=policy.idempotency_outcome(outcome)).inc()
