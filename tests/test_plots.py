"""kite_lab.plots: plotly figures drawn from the frames, with the traces and points they show."""

from __future__ import annotations

import plotly.graph_objects as go
import pytest
from frame_events import synthetic_events

from kite_lab import frames, plots
from kite_lab.core.events import EventBus


def test_empty_sources_give_empty_figures() -> None:
    empty = EventBus()
    for figure in (plots.latency_histogram(empty), plots.calls_over_time(empty),
                   plots.cost_over_time(empty), plots.breaker_timeline(empty),
                   plots.agent_success_rate(empty)):
        assert isinstance(figure, go.Figure) and len(figure.data) == 0


def test_plots_have_traces() -> None:
    bus = synthetic_events()
    histogram = plots.latency_histogram(bus)  # cached and failed calls are excluded
    assert {t.name: len(t.x) for t in histogram.data} == {"local/smol": 1,
                                                           "openai/gpt-4o-mini": 2}
    assert {t.name for t in plots.calls_over_time(bus).data} == {"openai/gpt-4o-mini",
                                                                 "local/smol"}
    assert len(plots.cost_over_time(bus).data) == 2
    timeline = plots.breaker_timeline(bus)
    assert {t.name for t in timeline.data} == {"openai state", "openai failure"}
    rate = plots.agent_success_rate(bus).data[0]
    assert list(rate.y) == [1.0, 0.5]
    assert isinstance(plots.latency_histogram(frames.calls_df(bus)), go.Figure)  # a frame too


def test_latency_histogram_plots_the_latencies() -> None:
    """The values drawn are the calls' latencies (all NaN before the calls_df fix)."""
    traces = {t.name: sorted(t.x) for t in plots.latency_histogram(synthetic_events()).data}
    assert traces == {"local/smol": [0.5], "openai/gpt-4o-mini": [0.2, 0.3]}


def test_calls_and_cost_over_time_by_value() -> None:
    bus = synthetic_events()  # all within one minute of T0
    calls = {t.name: list(t.y) for t in plots.calls_over_time(bus, freq="1min").data}
    assert calls == {"local/smol": [1], "openai/gpt-4o-mini": [4]}
    per_second = plots.cost_over_time(bus, freq="1s", cumulative=False).data
    gpt = next(t for t in per_second if t.name == "openai/gpt-4o-mini")
    # seconds 0 (r1), 2 (r2 failed), 4 (only smol), 5 (r4), 6 (r5, a cache hit)
    assert list(gpt.y) == pytest.approx([0.001, 0.0, 0.0, 0.002, 0.0])
    cumulative = plots.cost_over_time(bus, freq="1s").data
    gpt = next(t for t in cumulative if t.name == "openai/gpt-4o-mini")
    assert list(gpt.y)[-1] == pytest.approx(0.003)


def test_breaker_timeline_by_value() -> None:
    timeline = {t.name: t for t in plots.breaker_timeline(synthetic_events()).data}
    state = timeline["openai state"]
    assert list(state.y) == [0, 2]  # closed, then open
    failure = timeline["openai failure"]
    assert len(failure.x) == 1 and list(failure.text) == ["ServerError"]
