"""Observability: Prometheus metrics, JSON-lines logs and traces.

Everything here is fed from ``kite.event_bus`` subscriptions, never called from the call
path, so adding a metric or a log field can never change what a call does or break it.

Modules:
- ``metrics``: ``KiteMetrics`` / ``get_metrics()``, the process's metrics, put together from
  ``metric_catalogue`` (names, labels, buckets: the guide's contract), ``metric_events``
  (event -> metric updates), ``metric_labels`` (closed label sets, so no secret or
  unbounded value becomes a label), ``multiprocess`` (PROMETHEUS_MULTIPROC_DIR) and
  ``guide_metric`` (the guide's label-less ``metrics.llm_calls.inc()``);
- ``logging``: JSON lines with request ids and redaction;
- ``tracing``: every event of a bus to a JSON-lines file;
- ``otel``: OpenTelemetry spans (GenAI conventions) from events, OTLP/HTTP export;
- ``trace_view``: ``TraceView``, the span tree of a run read from the call log.

The names below load their module on first access, so importing this package imports
neither prometheus_client nor anything else heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kite_lab.core.lazy import lazy_exports

if TYPE_CHECKING:
    from kite_lab.observability.guide_metric import GuideMetric
    from kite_lab.observability.logging import (
        JsonFormatter,
        attach_event_logging,
        configure_logging,
        current_request_id,
    )
    from kite_lab.observability.metric_catalogue import breaker_state_value
    from kite_lab.observability.metric_labels import LabelPolicy
    from kite_lab.observability.metrics import KiteMetrics, get_metrics
    from kite_lab.observability.multiprocess import multiprocess_enabled, wipe_multiprocess_dir
    from kite_lab.observability.otel import OtelBridge, enable_otel
    from kite_lab.observability.trace_view import TraceView
    from kite_lab.observability.tracing import Tracer, enable_tracing

__all__ = [
    "GuideMetric",
    "JsonFormatter",
    "KiteMetrics",
    "LabelPolicy",
    "OtelBridge",
    "TraceView",
    "Tracer",
    "attach_event_logging",
    "breaker_state_value",
    "configure_logging",
    "current_request_id",
    "enable_otel",
    "enable_tracing",
    "get_metrics",
    "multiprocess_enabled",
    "wipe_multiprocess_dir",
]


_HOME = {
    "GuideMetric": "guide_metric",
    "JsonFormatter": "logging",
    "KiteMetrics": "metrics",
    "LabelPolicy": "metric_labels",
    "OtelBridge": "otel",
    "TraceView": "trace_view",
    "Tracer": "tracing",
    "attach_event_logging": "logging",
    "breaker_state_value": "metric_catalogue",
    "configure_logging": "logging",
    "current_request_id": "logging",
    "enable_otel": "otel",
    "enable_tracing": "tracing",
    "get_metrics": "metrics",
    "multiprocess_enabled": "multiprocess",
    "wipe_multiprocess_dir": "multiprocess",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
