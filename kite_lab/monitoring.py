"""The deployment guide's metrics API: ``from kite_lab.monitoring import metrics``.

    metrics.llm_calls.inc()
    metrics.llm_latency.observe(duration)
    metrics.llm_errors.inc()
    metrics.circuit_breaker_state.set(state)     # 0/1/2, or "open" / CircuitState.OPEN
    metrics.circuit_breaker_failures.inc()
    metrics.agent_calls.inc()
    metrics.agent_success_rate.set(rate)

These are the same Prometheus metrics the service exposes at ``/metrics`` and that the
event bus feeds, so hand-made increments and automatic ones add up. Calls without labels
count under the default labels (``"other"``); ``.labels(provider="openai")`` picks one.
The module loads prometheus_client only when ``metrics`` is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kite_lab.observability.metrics import KiteMetrics

    metrics: KiteMetrics

__all__ = ["metrics"]


def __getattr__(name: str) -> Any:
    if name == "metrics":
        from kite_lab.observability.metrics import get_metrics

        return get_metrics()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
