"""Prometheus metrics for kite_lab, fed from ``kite.event_bus``.

Why the bus: the call path (pipeline, breakers, agents, the HTTP middleware) only emits
events; this module turns them into counters, gauges and histograms. A metric can be
added or renamed without touching the code that makes the calls, and a broken metric can
never fail a call (the bus isolates subscribers).

Naming follows Prometheus conventions: ``kite_`` prefix, base units (seconds, bytes, USD),
``_total`` on counters. Every label value comes from a closed set (``LabelPolicy``): an
unknown model, provider, agent, error class or route is reported as ``"other"``, so a
client cannot blow up the number of series, and no secret can ever become a label.

Several uvicorn workers: with ``PROMETHEUS_MULTIPROC_DIR`` set *before* prometheus_client
is imported (``kite-lab serve`` does it and wipes the directory at start), values live in
per-process mmap files and ``render()`` aggregates them; gauges declare how (``livesum``
for in-flight requests, ``mostrecent`` for states).

The guide's API is the same objects: ``from kite_lab.monitoring import metrics`` then
``metrics.llm_calls.inc()``; label-less calls fill every label with its default.
"""

from __future__ import annotations

import enum
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kite_lab.core.events import Event, EventBus, Subscription

__all__ = [
    "BREAKER_STATE_VALUES",
    "GuideMetric",
    "KiteMetrics",
    "LLM_LATENCY_BUCKETS",
    "LabelPolicy",
    "get_metrics",
    "multiprocess_enabled",
    "wipe_multiprocess_dir",
]

OTHER = "other"

#: LLM calls can take minutes (long generations, slow local models): buckets reach 300 s.
LLM_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
HTTP_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

#: ``kite_circuit_breaker_state`` values (a gauge needs numbers).
BREAKER_STATE_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}

_CACHE_BACKENDS = frozenset({"memory", "redis"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_IDEMPOTENCY_OUTCOMES = frozenset(
    {"started", "completed", "replayed", "conflict", "in_progress", "released", "expired", "error"}
)


def multiprocess_enabled() -> bool:
    """Whether prometheus_client stores values in PROMETHEUS_MULTIPROC_DIR files."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def wipe_multiprocess_dir(path: str | os.PathLike[str]) -> int:
    """Create ``path`` if needed and delete the ``*.db`` files of earlier runs."""
    os.makedirs(path, exist_ok=True)
    removed = 0
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.unlink(os.path.join(path, name))
            removed += 1
    return removed


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


class LabelPolicy:
    """Maps raw values from events to closed label sets ("other" for anything unknown)."""

    def __init__(
        self,
        *,
        providers: Iterable[str] | None = None,
        models: Iterable[str] = (),
        agents: Callable[[], Iterable[str]] | None = None,
        routes: Iterable[str] = (),
    ) -> None:
        if providers is None:
            from kite_lab.providers.registry import available_providers

            providers = available_providers()
        self.providers = frozenset(providers)
        self.models = frozenset(_known_models()) | frozenset(models)
        self._agents = agents or (lambda: ())
        self.routes = frozenset(routes)
        from kite_lab.core import errors

        self.errors = frozenset(errors.__all__) - {"redact"}

    def provider(self, value: Any) -> str:
        return value if value in self.providers else OTHER

    def model(self, provider: Any, model: Any) -> str:
        if not isinstance(model, str):
            return OTHER
        if f"{provider}/{model}" in self.models or model in self.models:
            return model
        return OTHER

    def error(self, value: Any) -> str:
        return value if value in self.errors else OTHER

    def agent(self, value: Any) -> str:
        return value if isinstance(value, str) and value in set(self._agents()) else OTHER

    def route(self, value: Any) -> str:
        return value if value in self.routes else OTHER

    @staticmethod
    def status(value: Any) -> str:
        return str(value) if isinstance(value, int) and 100 <= value <= 599 else OTHER

    @staticmethod
    def method(value: Any) -> str:
        return value if value in _METHODS else OTHER


def _known_models() -> set[str]:
    """``provider/model`` ids with a price entry, plus each provider's default model."""
    from kite_lab.providers import pricing, registry

    known = set(pricing.known_models())
    for name in registry.available_providers():
        try:
            known.add(f"{name}/{registry.provider_class(name).default_model}")
        except Exception:  # an uninstallable third-party provider: no default to add
            continue
    return known


class GuideMetric:
    """A labelled metric usable as the guide shows: ``.inc()``, ``.observe(d)``, ``.set(x)``.

    Calls without labels go to the series whose labels all have their default value;
    ``.labels(provider="openai")`` fills the labels not given with their defaults.
    """

    def __init__(
        self,
        metric: Any,
        defaults: Mapping[str, str],
        convert: Callable[[Any], float] = float,
    ) -> None:
        self.metric = metric
        self.defaults = dict(defaults)
        self._convert = convert
        self._default_child: Any = None
        self._names = tuple(self.defaults)
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: Any, **labels: Any) -> Any:
        if values:
            labels = dict(zip(self.defaults, values, strict=False)) | labels
        unknown = set(labels) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"{self.metric._name} has labels {sorted(self.defaults)}, not {sorted(unknown)}"
            )
        child = self.metric
        if self.defaults:
            child = self.metric.labels(**(self.defaults | {k: str(v) for k, v in labels.items()}))
        return child if self._convert is float else _ConvertingChild(child, self._convert)

    def child(self, *values: str) -> Any:
        """The raw child for label values in declaration order (cached: the hot path)."""
        found = self._children.get(values)
        if found is None:
            found = self.metric.labels(*values) if values else self.metric
            self._children[values] = found
        return found

    def _child(self) -> Any:
        if self._default_child is None:
            self._default_child = self.labels()
        return self._default_child

    def inc(self, amount: float = 1.0) -> None:
        self._child().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._child().dec(amount)

    def set(self, value: Any) -> None:
        self._child().set(value)

    def observe(self, value: float) -> None:
        self._child().observe(value)

    @property
    def name(self) -> str:
        return str(self.metric._name)

    def __repr__(self) -> str:
        return f"GuideMetric({self.name!r}, labels={sorted(self.defaults)})"


class _ConvertingChild:
    """A labelled child whose ``set`` accepts what the metric's converter does."""

    __slots__ = ("_child", "_convert")

    def __init__(self, child: Any, convert: Callable[[Any], float]) -> None:
        self._child, self._convert = child, convert

    def set(self, value: Any) -> None:
        self._child.set(self._convert(value))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._child, name)


class KiteMetrics:
    """Every kite_lab metric, registered once per process (see ``get_metrics``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client import ProcessCollector as _ProcessCollector

        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()
        self._agent_counts: dict[str, list[int]] = {}
        r = self.registry

        def counter(name: str, doc: str, **defaults: str) -> GuideMetric:
            return GuideMetric(Counter(name, doc, list(defaults), registry=r), defaults)

        def gauge(
            name: str, doc: str, mode: str, convert: Callable[[Any], float] = float, **defaults: str
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
        self.build_info = gauge("kite_build_info", "kite_lab version", "max", version=OTHER)

        from kite_lab._version import __version__

        self.build_info.labels(version=__version__).set(1)
        self._multiprocess = multiprocess_enabled()
        if not self._multiprocess and registry is None:
            _ProcessCollector(registry=r)
        r.register(_MemoryCollector())

    # -- rendering ---------------------------------------------------------------------
    def render(self) -> tuple[bytes, str]:
        """The exposition text of every metric (all workers in multiprocess mode)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self._multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        registry.register(_MemoryCollector())
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def mark_process_dead(self, pid: int | None = None) -> None:
        """Drop this worker's live gauges (in-flight requests) from the multiprocess files."""
        if self._multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid or os.getpid())

    # -- the event bus -----------------------------------------------------------------
    def attach(self, bus: EventBus, policy: LabelPolicy) -> Subscription:
        """Feed these metrics from ``bus``; ``subscription.unsubscribe()`` stops it."""
        handlers: dict[str, Callable[[LabelPolicy, dict[str, Any], str], None]] = {
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
        }

        def on_event(event: Event) -> None:
            handler = handlers.get(event.name)
            if handler is not None:
                handler(policy, event.data, event.name)
            elif event.name.startswith("killswitch:"):
                self._on_kill_switch(policy, event.data, event.name)
            elif event.name.startswith("idempotency:"):
                self._on_idempotency(policy, event.data, event.name)

        return bus.subscribe("*", on_event)

    @staticmethod
    def _llm_labels(policy: LabelPolicy, data: Mapping[str, Any]) -> tuple[str, str]:
        provider = policy.provider(data.get("provider"))
        return provider, policy.model(provider, data.get("model"))

    def _on_llm_response(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        provider, model = self._llm_labels(policy, data)
        if data.get("cached"):
            self.llm_calls.child(provider, model, "cached").inc()
            return
        self.llm_calls.child(provider, model, "success").inc()
        self.llm_latency.child(provider, model).observe(float(data.get("latency_s") or 0.0))
        for kind in ("prompt", "completion"):
            tokens = data.get(f"{kind}_tokens") or 0
            if tokens:
                self.llm_tokens.child(provider, model, kind).inc(tokens)
        cost = data.get("cost_usd")
        if cost:
            self.llm_cost.child(provider, model).inc(float(cost))

    def _on_llm_error(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        provider, model = self._llm_labels(policy, data)
        self.llm_calls.child(provider, model, "error").inc()
        self.llm_errors.child(provider, policy.error(data.get("error"))).inc()
        if data.get("latency_s") is not None:
            self.llm_latency.child(provider, model).observe(float(data["latency_s"]))

    def _on_cache(self, policy: LabelPolicy, data: dict[str, Any], name: str) -> None:
        backend = data.get("backend")
        backend = backend if backend in _CACHE_BACKENDS else OTHER
        (self.cache_hits if name == "cache:hit" else self.cache_misses).child(backend).inc()

    def _on_breaker_state(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        try:
            value = breaker_state_value(data.get("new"))
        except ValueError:
            return
        self.circuit_breaker_state.labels(breaker=policy.provider(data.get("name"))).set(value)

    def _on_breaker_failure(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.circuit_breaker_failures.child(policy.provider(data.get("name"))).inc()

    def _on_breaker_rejected(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.circuit_breaker_rejections.child(policy.provider(data.get("name"))).inc()

    def _on_agent_end(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        agent = policy.agent(data.get("agent"))
        success = bool(data.get("success"))
        self.agent_calls.labels(agent=agent, outcome="success" if success else "failure").inc()
        duration = data.get("latency_s", data.get("duration_s"))
        if isinstance(duration, int | float):
            self.agent_duration.labels(agent=agent).observe(float(duration))
        with self._lock:
            counts = self._agent_counts.setdefault(agent, [0, 0])
            counts[0] += 1
            counts[1] += int(success)
            rate = counts[1] / counts[0]
        self.agent_success_rate.labels(agent=agent).set(rate)

    def _on_rate_limited(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.rate_limit_rejections.child(policy.route(data.get("route"))).inc()

    def _on_http_start(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.http_in_flight.child().inc()

    def _on_http_request(self, policy: LabelPolicy, data: dict[str, Any], _: str) -> None:
        self.http_in_flight.child().dec()
        method, route = policy.method(data.get("method")), policy.route(data.get("route"))
        self.http_requests.child(method, route, policy.status(data.get("status"))).inc()
        self.http_latency.child(method, route).observe(float(data.get("duration_s") or 0))

    def _on_kill_switch(self, policy: LabelPolicy, data: dict[str, Any], name: str) -> None:
        if "active" in data:
            active = bool(data["active"])
        else:
            active = name.endswith((":activated", ":activate", ":on"))
        self.kill_switch_active.set(1.0 if active else 0.0)

    def _on_idempotency(self, policy: LabelPolicy, data: dict[str, Any], name: str) -> None:
        outcome = data.get("outcome") or name.partition(":")[2]
        self.idempotency.labels(
            outcome=outcome if outcome in _IDEMPOTENCY_OUTCOMES else OTHER
        ).inc()


class _MemoryCollector:
    """``kite_process_resident_memory_bytes``: resident memory of every live worker, summed.

    In multiprocess mode the worker pids come from the metric file names, so the figure
    covers all workers whichever one answers the scrape.
    """

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "kite_process_resident_memory_bytes",
            "resident memory of the service's worker processes",
        )
        family.add_metric([], float(sum(_rss_bytes(pid) for pid in _worker_pids())))
        yield family

    def describe(self) -> list[Any]:
        return []


def _worker_pids() -> set[int]:
    pids = {os.getpid()}
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory and multiprocess_enabled():
        try:
            names = os.listdir(directory)
        except OSError:
            names = []
        for name in names:
            stem = name.rsplit(".", 1)[0]
            tail = stem.rsplit("_", 1)[-1]
            if tail.isdigit():
                pids.add(int(tail))
    return pids


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        if pid != os.getpid():
            return 0
        import resource  # not Linux: peak RSS is the best figure available

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


_metrics: KiteMetrics | None = None
_metrics_lock = threading.Lock()


def get_metrics() -> KiteMetrics:
    """The process-wide metrics (created on first use: prometheus_client loads here)."""
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                _metrics = KiteMetrics()
    return _metrics
