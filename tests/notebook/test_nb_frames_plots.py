"""Frames (typed pandas DataFrames) and plots (plotly figures) from a Kite's events."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import pytest

from kite_lab import frames, plots
from kite_lab.core.errors import ServerError
from kite_lab.core.events import Event, EventBus
from kite_lab.testing import Fault, Reply


def _synthetic_bus() -> list[Event]:
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
    return [Event(name, data, time=1_700_000_000 + i) for i, (name, data) in enumerate(spec)]


def test_calls_df_columns_and_types() -> None:
    df = frames.calls_df(_synthetic_bus())
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert list(df["request_id"]) == ["r1", "r2", "r3", "r4", "r5"]
    assert str(df["prompt_tokens"].dtype) == "Int64" and str(df["cached"].dtype) == "boolean"
    assert df["error"].iloc[1] == "ServerError" and pd.isna(df["error"].iloc[0])
    assert pd.isna(df["cost_usd"].iloc[2])  # unknown cost stays unknown
    assert df["cost_usd"].iloc[4] == 0.0  # a cache hit costs nothing
    assert list(df["breaker_state"]) == ["closed", "closed", "closed", "open", "open"]


def test_empty_frames_keep_their_columns() -> None:
    empty = EventBus()
    assert list(frames.calls_df(empty).columns) == list(frames.calls_df(_synthetic_bus()).columns)
    assert frames.metrics_df(empty).empty and "latency_p95_s" in frames.metrics_df(empty)
    assert frames.runs_df(empty).empty and frames.breaker_events_df(empty).empty
    for figure in (plots.latency_histogram(empty), plots.calls_over_time(empty),
                   plots.cost_over_time(empty), plots.breaker_timeline(empty),
                   plots.agent_success_rate(empty)):
        assert isinstance(figure, go.Figure)


def test_metrics_cost_runs_breakers() -> None:
    bus = _synthetic_bus()
    metrics = frames.metrics_df(bus).set_index("model")
    assert metrics.loc["gpt-4o-mini", "calls"] == 4 and metrics.loc["gpt-4o-mini", "errors"] == 1
    assert metrics.loc["gpt-4o-mini", "cached"] == 1 and metrics.loc["smol", "cached"] == 0
    cost = frames.cost_df(bus).set_index("model")
    assert cost.loc["gpt-4o-mini", "cost_usd"] == pytest.approx(0.003)
    assert pd.isna(cost.loc["smol", "cost_usd"]) and cost.loc["smol", "unpriced_calls"] == 1
    runs = frames.runs_df(bus)
    assert list(runs["success"]) == [True, False] and pd.isna(runs["cost_usd"].iloc[1])
    events = frames.breaker_events_df(bus)
    assert list(events["kind"]) == ["failure", "state"] and events["new"].iloc[1] == "open"


def test_plots_have_traces() -> None:
    bus = _synthetic_bus()
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


def test_frames_from_a_real_kite(fake_kite: Any, fake_llm: Any, tmp_path: Any) -> None:
    fake_llm.enqueue(Reply(text="a", prompt_tokens=2, completion_tokens=3), Fault(status=500))
    fake_kite.complete("one")
    with pytest.raises(ServerError):
        fake_kite.complete("two")
    calls = frames.calls_df(fake_kite)
    assert list(calls["error"].fillna("")) == ["", "ServerError"]
    assert calls["total_tokens"].iloc[0] == 5
    store = fake_kite.session_memory
    store.add_message("s", "user", "hi")
    store.add_message("s", "assistant", "hello")
    history = frames.history_df(fake_kite, "s")
    assert list(history["role"]) == ["user", "assistant"]
    assert isinstance(history.index, pd.DatetimeIndex)
    sessions = frames.sessions_df(fake_kite)
    assert sessions["session_id"].tolist() == ["s"] and sessions["messages"].iloc[0] == 2
    breakers = frames.breakers_df(fake_kite)
    assert breakers["name"].tolist() == ["openai"]


def test_frames_on_postgres_sessions(fake_llm: Any, postgres_url: str) -> None:
    from kite_lab import Kite

    ai = Kite(config={"postgres_url": postgres_url, "llm_provider": "openai",
                      "openai_api_key": "sk-x-123456", "openai_base_url": fake_llm.openai_base_url},
              env_file=None)
    ai.session_memory.add_message("pg", "user", "stored in postgres")
    assert frames.history_df(ai, "pg")["content"].tolist() == ["stored in postgres"]
    assert frames.sessions_df(ai)["session_id"].tolist() == ["pg"]
    ai.close()
