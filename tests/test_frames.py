"""kite_lab.frames: typed pandas DataFrames of a Kite's events and stores, checked by VALUE.

Every frame helper is checked column by column against events (or stored rows) whose
values are known, so a column that is realigned, dropped or mistyped fails here, not only
a column name or a dtype. Two sources: synthetic events with fixed times, and a real Kite
whose OpenAI provider is the fake server (real SDK, real HTTP, injected latency).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from frame_events import T0, synthetic_events

from kite_lab import frames
from kite_lab.core.errors import ServerError
from kite_lab.core.events import Event, EventBus
from kite_lab.testing import Fault, Reply

FAKE_KEY = "sk-test-frames-fake-key-0123456789"


def values(column: pd.Series) -> list[Any]:
    """A column as plain Python values, ``None`` for any missing value (NA, NaN, NaT)."""
    return [None if pd.isna(v) else v for v in column.astype(object)]


def times(*offsets: int) -> list[pd.Timestamp]:
    return [pd.Timestamp(T0 + o, unit="s", tz="UTC") for o in offsets]


@pytest.fixture
def fake_kite(fake_llm: Any) -> Iterator[Any]:
    """A Kite whose OpenAI provider is the fake server (memory cache, no .env)."""
    from kite_lab.kite import Kite

    ai = Kite(config={"llm_provider": "openai", "openai_api_key": FAKE_KEY,
                      "openai_base_url": fake_llm.openai_base_url, "cache_backend": "memory"},
              env_file=None)
    try:
        yield ai
    finally:
        ai.close()


# -- calls ------------------------------------------------------------------------------


def test_calls_df_every_column_by_value() -> None:
    df = frames.calls_df(synthetic_events())
    assert isinstance(df.index, pd.DatetimeIndex) and str(df.index.tz) == "UTC"
    assert df.index.name == "time" and list(df.index) == times(0, 2, 4, 5, 6)
    assert list(df.columns) == list(frames.CALL_COLUMNS)
    assert {c: str(t) for c, t in df.dtypes.items()} == frames.CALL_COLUMNS
    assert values(df["provider"]) == ["openai", "openai", "local", "openai", "openai"]
    assert values(df["model"]) == ["gpt-4o-mini", "gpt-4o-mini", "smol", "gpt-4o-mini",
                                   "gpt-4o-mini"]
    assert values(df["prompt_tokens"]) == [10, None, 3, 1, 1]  # a failed call: no tokens
    assert values(df["completion_tokens"]) == [5, None, 4, 1, 1]
    assert values(df["total_tokens"]) == [15, None, 7, 2, 2]
    # unknown cost stays unknown (r3), a failure has none (r2), a cache hit costs 0 (r5)
    assert values(df["cost_usd"]) == [0.001, None, None, 0.002, 0.0]
    assert values(df["latency_s"]) == [0.2, 0.1, 0.5, 0.3, 0.0]  # was all NaN (issue 13)
    assert values(df["cached"]) == [False, False, False, False, True]
    assert values(df["breaker_state"]) == ["closed", "closed", "closed", "open", "open"]
    assert values(df["error"]) == [None, "ServerError", None, None, None]
    assert values(df["request_id"]) == ["r1", "r2", "r3", "r4", "r5"]


def test_calls_df_from_an_event_bus_with_equal_times() -> None:
    """Rows emitted in the same instant (a duplicate index) keep their own values."""
    bus = EventBus()
    for i in range(3):
        bus.emit("llm:response", provider="p", model="m", request_id=f"r{i}",
                 prompt_tokens=i, completion_tokens=2 * i, cost_usd=i / 10, latency_s=1.5 + i,
                 cached=False)
    events = [Event(e.name, e.data, time=T0) for e in bus.history()]
    for source in (bus, events):
        df = frames.calls_df(source)
        assert values(df["latency_s"]) == [1.5, 2.5, 3.5]
        assert values(df["total_tokens"]) == [0, 3, 6]
        assert values(df["cost_usd"]) == [0.0, 0.1, 0.2]


def test_calls_df_of_a_real_kite_has_the_known_latency_tokens_and_cost(
        fake_kite: Any, fake_llm: Any) -> None:
    fake_kite.generate("warm up", cache=False)  # the SDK's first-use import is not latency
    fake_kite.event_bus.clear_history()
    fake_llm.enqueue(Reply(text="slow", prompt_tokens=7, completion_tokens=3, latency=0.3),
                     Reply(text="fast", prompt_tokens=2, completion_tokens=1),
                     Fault(status=500))
    first = fake_kite.generate("one", cache=False)
    second = fake_kite.generate("two", cache=False)
    with pytest.raises(ServerError):
        fake_kite.generate("three", cache=False)
    df = frames.calls_df(fake_kite, persisted=False)  # the history cleared above, not the log
    assert len(df) == 3
    assert values(df["provider"]) == ["openai"] * 3
    assert values(df["model"]) == [first.model] * 3
    assert values(df["prompt_tokens"]) == [7, 2, None]
    assert values(df["completion_tokens"]) == [3, 1, None]
    assert values(df["total_tokens"]) == [10, 3, None]
    assert values(df["cost_usd"]) == [first.cost_usd, second.cost_usd, None]
    assert first.cost_usd is not None and first.cost_usd > 0
    latency = values(df["latency_s"])
    assert all(v is not None for v in latency)  # measured for failures too
    assert latency[0] == pytest.approx(first.latency_s) and 0.3 <= latency[0] < 1.8
    assert latency[1] == pytest.approx(second.latency_s) and latency[1] < latency[0]
    assert values(df["error"]) == [None, None, "ServerError"]
    assert values(df["cached"]) == [False] * 3
    assert values(df["breaker_state"]) == ["closed"] * 3
    assert all(isinstance(r, str) and len(r) == 32 for r in values(df["request_id"]))
    assert df.index.is_monotonic_increasing


def test_a_cache_hit_row_costs_nothing(fake_kite: Any, fake_llm: Any) -> None:
    fake_llm.enqueue(Reply(text="x", prompt_tokens=4, completion_tokens=2, latency=0.05))
    paid = fake_kite.generate("same", temperature=0)
    hit = fake_kite.generate("same", temperature=0)
    assert hit.cached and len(fake_llm.requests) == 1
    df = frames.calls_df(fake_kite)
    assert values(df["cached"]) == [False, True]
    assert values(df["cost_usd"]) == [paid.cost_usd, 0.0]
    assert values(df["latency_s"])[1] == 0.0 and values(df["latency_s"])[0] >= 0.05
    assert values(df["total_tokens"]) == [6, 6]


# -- aggregates -------------------------------------------------------------------------


def test_metrics_df_every_column_by_value() -> None:
    df = frames.metrics_df(synthetic_events())
    assert list(df.columns) == ["provider", "model", "calls", "errors", "error_rate", "cached",
                                "prompt_tokens", "completion_tokens", "cost_usd",
                                "latency_mean_s", "latency_p50_s", "latency_p95_s"]
    rows = df.set_index("model")
    gpt, smol = rows.loc["gpt-4o-mini"], rows.loc["smol"]
    assert (gpt["provider"], smol["provider"]) == ("openai", "local")
    assert (gpt["calls"], gpt["errors"], gpt["cached"]) == (4, 1, 1)
    assert (smol["calls"], smol["errors"], smol["cached"]) == (1, 0, 0)
    assert gpt["error_rate"] == 0.25 and smol["error_rate"] == 0.0
    assert (gpt["prompt_tokens"], gpt["completion_tokens"]) == (12, 7)
    assert (smol["prompt_tokens"], smol["completion_tokens"]) == (3, 4)
    assert gpt["cost_usd"] == pytest.approx(0.003) and pd.isna(smol["cost_usd"])
    # latencies 0.2, 0.1, 0.3, 0.0 (the failed call's time counts, the hit's lookup too)
    assert gpt["latency_mean_s"] == pytest.approx(0.15)
    assert gpt["latency_p50_s"] == pytest.approx(0.15)
    assert gpt["latency_p95_s"] == pytest.approx(0.285)
    assert smol[["latency_mean_s", "latency_p50_s", "latency_p95_s"]].tolist() == [0.5] * 3


def test_cost_df_every_column_by_value() -> None:
    df = frames.cost_df(synthetic_events())
    assert list(df.columns) == ["provider", "model", "calls", "prompt_tokens",
                                "completion_tokens", "cost_usd", "unpriced_calls"]
    rows = df.set_index("model")
    gpt, smol = rows.loc["gpt-4o-mini"], rows.loc["smol"]
    assert gpt["provider"] == "openai" and smol["provider"] == "local"
    assert (gpt["calls"], gpt["prompt_tokens"], gpt["completion_tokens"]) == (3, 12, 7)
    assert gpt["cost_usd"] == pytest.approx(0.003) and gpt["unpriced_calls"] == 0
    assert (smol["calls"], smol["prompt_tokens"], smol["completion_tokens"]) == (1, 3, 4)
    assert pd.isna(smol["cost_usd"]) and smol["unpriced_calls"] == 1


def test_empty_frames_keep_their_columns() -> None:
    empty = EventBus()
    assert list(frames.calls_df(empty).columns) == list(frames.calls_df(synthetic_events()))
    assert frames.metrics_df(empty).empty and "latency_p95_s" in frames.metrics_df(empty)
    assert list(frames.cost_df(empty).columns) == list(frames.cost_df(synthetic_events()))
    assert frames.runs_df(empty).empty and frames.breaker_events_df(empty).empty
    assert list(frames.runs_df(empty).columns) == list(frames.RUN_COLUMNS)
    assert list(frames.breaker_events_df(empty).columns) == list(frames.BREAKER_EVENT_COLUMNS)


# -- breakers and runs ------------------------------------------------------------------


def test_breaker_events_df_every_column_by_value() -> None:
    df = frames.breaker_events_df(synthetic_events())
    assert list(df.index) == times(1, 3)
    assert values(df["breaker"]) == ["openai", "openai"]
    assert values(df["kind"]) == ["failure", "state"]
    assert values(df["old"]) == [None, "closed"]
    assert values(df["new"]) == [None, "open"]
    assert values(df["reason"]) == [None, "threshold"]
    assert values(df["error"]) == ["ServerError", None]


def test_runs_df_every_column_by_value() -> None:
    df = frames.runs_df(synthetic_events())
    assert list(df.index) == times(7, 8)
    assert {c: str(t) for c, t in df.dtypes.items()} == frames.RUN_COLUMNS
    assert values(df["agent"]) == ["bot", "bot"]
    assert values(df["run_id"]) == ["a", "b"]
    assert values(df["success"]) == [True, False]
    assert values(df["iterations"]) == [2, 1]
    assert values(df["tool_calls"]) == [1, 0]
    assert values(df["prompt_tokens"]) == [5, 1]
    assert values(df["completion_tokens"]) == [6, 0]
    assert values(df["cost_usd"]) == [0.01, None]
    assert values(df["latency_s"]) == [1.0, 0.5]
    assert values(df["error"]) == [None, "x"]


def test_breakers_df_is_the_breakers_stats(fake_kite: Any, fake_llm: Any) -> None:
    assert list(frames.breakers_df(fake_kite).columns)[:2] == ["name", "state"]
    fake_llm.enqueue(Reply(text="ok"), Fault(status=500))
    fake_kite.generate("one")
    with pytest.raises(ServerError):
        fake_kite.generate("two")
    df = frames.breakers_df(fake_kite)
    stats = fake_kite.circuit_breaker.get_stats()
    assert list(df.columns) == list(stats)
    row = df.iloc[0]
    assert (row["name"], row["state"]) == ("openai", "closed")
    assert (row["total_calls"], row["successful_calls"], row["failed_calls"]) == (2, 1, 1)
    assert (row["rejected_calls"], row["consecutive_failures"]) == (0, 1)
    assert row["success_rate"] == 0.5 and row["backend"] == stats["backend"]


# -- stores -----------------------------------------------------------------------------


def test_history_and_sessions_by_value(fake_kite: Any) -> None:
    store = fake_kite.session_memory
    first = store.add_message("s", "user", "hi", metadata={"k": 1})
    second = store.add_message("s", "assistant", "hello")
    store.add_message("t", "user", "other")
    history = frames.history_df(fake_kite, "s")
    assert values(history["role"]) == ["user", "assistant"]
    assert values(history["content"]) == ["hi", "hello"]
    assert list(history["metadata"]) == [{"k": 1}, {}]
    stamps = [pd.Timestamp(m.created_at, unit="s", tz="UTC") for m in (first, second)]
    assert isinstance(history.index, pd.DatetimeIndex) and list(history.index) == stamps
    assert values(frames.history_df(fake_kite, "s", limit=1)["content"]) == ["hello"]

    sessions = frames.sessions_df(fake_kite)
    infos = store.list_sessions()
    assert values(sessions["session_id"]) == [i.session_id for i in infos] == ["t", "s"]
    assert values(sessions["messages"]) == [1, 2]
    assert values(sessions["tokens"]) == [i.tokens for i in infos]
    assert list(sessions["created_at"]) == [pd.Timestamp(i.created_at, unit="s", tz="UTC")
                                            for i in infos]
    assert list(sessions["updated_at"]) == [pd.Timestamp(i.updated_at, unit="s", tz="UTC")
                                            for i in infos]
    assert str(sessions["messages"].dtype) == "Int64"


def test_sessions_df_of_no_session_keeps_its_columns(fake_kite: Any) -> None:
    df = frames.sessions_df(fake_kite)
    assert df.empty and list(df.columns) == list(frames.SESSION_COLUMNS)


def test_frames_on_postgres_sessions(fake_llm: Any, postgres_url: str) -> None:
    from kite_lab.kite import Kite

    ai = Kite(config={"postgres_url": postgres_url, "llm_provider": "openai",
                      "openai_api_key": "sk-x-123456", "openai_base_url": fake_llm.openai_base_url},
              env_file=None)
    try:
        ai.session_memory.add_message("pg", "user", "stored in postgres")
        assert frames.history_df(ai, "pg")["content"].tolist() == ["stored in postgres"]
        sessions = frames.sessions_df(ai)
        assert sessions["session_id"].tolist() == ["pg"] and sessions["messages"].iloc[0] == 1
    finally:
        ai.close()


class _Memory:
    """A vector memory answering with fixed hits (search_df takes a memory or a Kite)."""

    def __init__(self, hits: list[Any]) -> None:
        self.hits = hits

    def search(self, query: str, top_k: int = 5) -> list[Any]:
        return self.hits[:top_k]


def test_search_df_every_column_by_value() -> None:
    from kite_lab.memory.vector import Hit

    hits = [Hit("d1", "d1#0", "alpha", 0.9, {"src": "a"}), Hit("d2", "d2#3", "beta", 0.5)]
    df = frames.search_df(_Memory(hits), "q", top_k=5)
    assert values(df["doc_id"]) == ["d1", "d2"]
    assert values(df["chunk_id"]) == ["d1#0", "d2#3"]
    assert values(df["score"]) == [0.9, 0.5]
    assert values(df["text"]) == ["alpha", "beta"]
    assert list(df["metadata"]) == [{"src": "a"}, {}]
    assert values(frames.search_df(_Memory(hits), "q", top_k=1)["doc_id"]) == ["d1"]


def test_frames_from_a_real_kite(fake_kite: Any, fake_llm: Any) -> None:
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
