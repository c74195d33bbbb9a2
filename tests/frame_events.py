"""Events with known values and fixed times, shared by tests/test_frames.py and test_plots.py
(a unique module name: conftest.py is not importable by name)."""

from __future__ import annotations

from kite_lab.core.events import Event

T0 = 1_700_000_000


def synthetic_events() -> list[Event]:
    """Events as a Kite's bus records them (frames accept a list of Events too)."""
    spec = [
        ("llm:response", dict(provider="openai", model="gpt-4o-mini", request_id="r1",
                              prompt_tokens=10, completion_tokens=5, cost_usd=0.001,
                              latency_s=0.2, cached=False)),
        ("breaker:failure", dict(name="openai", error="ServerError")),
        ("llm:error", dict(provider="openai", model="gpt-4o-mini", request_id="r2",
                           error="ServerError", latency_s=0.1)),
        ("breaker:state", dict(name="openai", old="closed", new="open", reason="threshold")),
        ("llm:response", dict(provider="local", model="smol", request_id="r3", prompt_tokens=3,
                              completion_tokens=4, cost_usd=None, latency_s=0.5, cached=False)),
        ("llm:response", dict(provider="openai", model="gpt-4o-mini", request_id="r4",
                              prompt_tokens=1, completion_tokens=1, cost_usd=0.002,
                              latency_s=0.3, cached=False)),
        ("llm:response", dict(provider="openai", model="gpt-4o-mini", request_id="r5",
                              prompt_tokens=1, completion_tokens=1, cost_usd=0.002,
                              latency_s=0.0, cached=True)),
        ("agent:end", dict(agent="bot", run_id="a", success=True, iterations=2, tool_calls=1,
                           prompt_tokens=5, completion_tokens=6, cost_usd=0.01, latency_s=1.0,
                           error=None)),
        ("agent:end", dict(agent="bot", run_id="b", success=False, iterations=1, tool_calls=0,
                           prompt_tokens=1, completion_tokens=0, cost_usd=None, latency_s=0.5,
                           error="x")),
    ]
    return [Event(name, data, time=T0 + i) for i, (name, data) in enumerate(spec)]
