"""The process's Prometheus metrics: the catalogue, fed from event buses, exposed once.

``KiteMetrics`` puts the parts together: the metric declarations (``metric_catalogue``),
the event handlers that update them (``metric_events``, through ``attach``), closed label
sets (``metric_labels``) and the exposition, single- or multi-process
(``multiprocess``). The deployment guide's API is the same objects:
``from kite_lab.monitoring import metrics`` then ``metrics.llm_calls.inc()``
(``guide_metric``).

Why once per process: prometheus_client refuses to register a name twice on one
registry, and every ``Kite`` in a process (the service's, a notebook's) must count into
the same series; ``get_metrics()`` creates the instance on first use, which is also when
prometheus_client is imported.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from kite_lab.observability import multiprocess
from kite_lab.observability.metric_catalogue import MetricCatalogue
from kite_lab.observability.metric_events import MetricEventHandlers

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from kite_lab.core.events import EventBus, Subscription
    from kite_lab.observability.metric_labels import LabelPolicy

__all__ = ["KiteMetrics", "get_metrics"]


class KiteMetrics(MetricCatalogue):
    """Every kite_lab metric, registered once per process (see ``get_metrics``)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        from prometheus_client import CollectorRegistry
        from prometheus_client import ProcessCollector as _ProcessCollector

        own = registry is None
        super().__init__(CollectorRegistry() if registry is None else registry)
        self._handlers = MetricEventHandlers(self)
        self._multiprocess = multiprocess.multiprocess_enabled()
        if not self._multiprocess and own:
            _ProcessCollector(registry=self.registry)
        self.registry.register(multiprocess.MemoryCollector())

    def render(self) -> tuple[bytes, str]:
        """The exposition text of every metric (all workers in multiprocess mode)."""
        return multiprocess.render(self.registry, self._multiprocess)

    def mark_process_dead(self, pid: int | None = None) -> None:
        """Drop this worker's live gauges (in-flight requests) from the multiprocess files."""
        if self._multiprocess:
            multiprocess.mark_process_dead(pid)

    def attach(self, bus: EventBus, policy: LabelPolicy) -> Subscription:
        """Feed these metrics from ``bus``; ``subscription.unsubscribe()`` stops it."""
        return self._handlers.attach(bus, policy)


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
