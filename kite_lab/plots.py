"""plotly figures of a Kite's activity: latency, calls and cost over time, breakers, agents.

    from kite_lab.plots import latency_histogram
    latency_histogram(ai).show()

The implementation lives in ``kite_lab.notebook.plots``; this is the public name.
"""

from kite_lab.notebook.plots import (
    agent_success_rate,
    breaker_timeline,
    calls_over_time,
    cost_over_time,
    latency_histogram,
)

__all__ = [
    "agent_success_rate",
    "breaker_timeline",
    "calls_over_time",
    "cost_over_time",
    "latency_histogram",
]
