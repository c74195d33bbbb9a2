"""pandas DataFrames of what a Kite did: calls, metrics, costs, sessions, searches, breakers.

    from kite_lab.frames import calls_df
    calls_df(ai).groupby("model")["cost_usd"].sum()

Why from the event bus: every LLM call, breaker transition and agent run is already an
event (``kite_lab.core.events``), so a frame is a view of ``ai.event_bus.history()`` --
the same in a notebook, in a script, and whatever the backends (memory, Redis, Postgres).
Sessions and searches read their stores through the public async API. Nothing here needs
IPython; pandas loads on the first call, so importing this module stays cheap.

Frames are plain DataFrames with typed columns (nullable ``Int64``/``boolean``/``string``,
``float64`` with NaN for an unknown cost, never a guess) and a UTC ``DatetimeIndex``
named ``time`` where rows are moments. Columns are fixed even when there are no rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from kite_lab.core.runner import run_sync

if TYPE_CHECKING:
    import pandas as pd

    from kite_lab.core.events import Event

__all__ = [
    "breaker_events_df",
    "breakers_df",
    "calls_df",
    "cost_df",
    "events_of",
    "history_df",
    "maps_df",
    "metrics_df",
    "runs_df",
    "search_df",
    "sessions_df",
]

CALL_COLUMNS = {
    "provider": "string", "model": "string", "prompt_tokens": "Int64",
    "completion_tokens": "Int64", "total_tokens": "Int64", "cost_usd": "float64",
    "latency_s": "float64", "cached": "boolean", "breaker_state": "string",
    "error": "string", "request_id": "string",
}


def events_of(source: Any, pattern: str = "*") -> list[Event]:
    """Events matching ``pattern`` from a Kite, an EventBus, or an iterable of Events."""
    import fnmatch

    bus = getattr(source, "event_bus", source)
    events = bus.history() if hasattr(bus, "history") else source
    if not isinstance(events, Iterable):
        raise TypeError(f"expected a Kite, an EventBus or Events, not {type(source).__name__}")
    if pattern == "*":
        return list(events)
    if pattern.endswith(":*") and not any(ch in pattern[:-1] for ch in "*?["):
        prefix = pattern[:-1]  # "llm:*" -> a cheap prefix test instead of fnmatch
        return [e for e in events if e.name.startswith(prefix)]
    if not any(ch in pattern for ch in "*?["):
        return [e for e in events if e.name == pattern]
    return [e for e in events if fnmatch.fnmatchcase(e.name, pattern)]


def _frame(columns: Mapping[str, list[Any]], dtypes: Mapping[str, str],
           times: list[float] | None = None) -> pd.DataFrame:
    import pandas as pd

    data = {}
    for name, dtype in dtypes.items():
        values = columns.get(name, [])
        if dtype == "float64":  # NaN for "unknown"; numpy would refuse None
            values = [_num(v) for v in values]
        data[name] = pd.array(values, dtype=dtype)
    index = None
    if times is not None:
        index = pd.DatetimeIndex(pd.to_datetime(times, unit="s", utc=True), name="time")
    return pd.DataFrame(data, index=index)


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


# -- LLM calls -------------------------------------------------------------------------


def calls_df(source: Any, since: Any = None, until: Any = None, model: str | None = None,
             run_id: str | None = None, persisted: bool = True) -> pd.DataFrame:
    """One row per LLM call: time, provider, model, tokens, cost, latency, cached,
    breaker state at the time of the call, error class (or <NA>).

    A cache hit has cost 0 and the latency of the lookup; failed calls have no tokens and a
    NaN cost; an unpriced model has a NaN cost (unknown, never guessed).

    From a Kite with a call log (the default, ``persisted=True``) the rows come from the
    log: every kernel's and process's calls, plus ``run_id``, ``parent_id``, ``replayed``
    and ``stream`` columns. ``persisted=False`` (or an EventBus / a list of Events) reads
    this process's bounded event history. ``since``/``until``: epoch seconds, datetimes or
    ages like ``"1h"``; ``model`` and ``run_id`` keep only those calls."""
    log = getattr(source, "call_log", None) if persisted else None
    if log is not None and hasattr(log, "store"):
        from kite_lab.log.frame import calls_frame

        log.flush()
        return calls_frame(log.store, since=since, until=until, model=model, run_id=run_id)
    frame = _calls_from_events(source)
    if since is None and until is None and model is None and run_id is None:
        return frame
    return _filtered(frame, source, since, until, model, run_id)


def _filtered(frame: pd.DataFrame, source: Any, since: Any, until: Any, model: str | None,
              run_id: str | None) -> pd.DataFrame:
    import numpy as np

    from kite_lab.log.record import parse_time

    keep = np.ones(len(frame), dtype=bool)
    seconds = frame.index.asi8 / 1e9
    if since is not None:
        keep &= seconds >= parse_time(since)
    if until is not None:
        keep &= seconds < parse_time(until)
    if model is not None:
        keep &= (frame["model"] == model).fillna(False).to_numpy(dtype=bool)
    if run_id is not None:
        runs = {e.data.get("request_id"): e.data.get("run_id")
                for e in events_of(source, "llm:*")}
        keep &= frame["request_id"].map(lambda r: runs.get(r) == run_id).to_numpy(dtype=bool)
    return frame[keep]


def _calls_from_events(source: Any) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    llm, moves = [], []
    for event in events_of(source):  # one pass; columns are then built vectorized
        if event.name == "llm:response" or event.name == "llm:error":
            llm.append(event)
        elif event.name == "breaker:state":
            moves.append(event)
    if not llm:
        return _frame({}, CALL_COLUMNS, [])
    # Every column below is an array, never a Series: a Series keeps the RangeIndex of
    # ``raw`` and DataFrame() would realign it onto the time index (all NaN).
    keys = ["provider", "model", "prompt_tokens", "completion_tokens", "cost_usd",
            "latency_s", "error", "request_id"]
    raw = pd.DataFrame.from_records([e.data for e in llm], columns=keys)
    count = len(llm)
    times = np.fromiter((e.time for e in llm), dtype="float64", count=count)
    ok = np.fromiter((e.name == "llm:response" for e in llm), dtype=bool, count=count)
    cached = np.fromiter((e.data.get("cached") is True for e in llm), dtype=bool,
                         count=count) & ok
    prompt = pd.array(raw["prompt_tokens"].to_numpy(), dtype="Int64")
    answer = pd.array(raw["completion_tokens"].to_numpy(), dtype="Int64")
    total = prompt.fillna(0) + answer.fillna(0)
    for tokens in (prompt, answer, total):
        tokens[~ok] = pd.NA  # a failed call billed nothing we know of
    cost = _floats(raw["cost_usd"])
    cost[cached] = 0.0  # a cache hit's event repeats the original call's price
    cost[~ok] = np.nan
    providers = raw["provider"].to_numpy()
    error = pd.array(raw["error"].to_numpy(), dtype="string")
    error[ok] = pd.NA
    return pd.DataFrame({
        "provider": pd.array(providers, dtype="string"),
        "model": pd.array(raw["model"].to_numpy(), dtype="string"),
        "prompt_tokens": prompt,
        "completion_tokens": answer,
        "total_tokens": total,
        "cost_usd": cost,
        "latency_s": _floats(raw["latency_s"]),
        "cached": pd.array(cached, dtype="boolean"),
        "breaker_state": pd.array(_states_at(moves, providers, times), dtype="string"),
        "error": error,
        "request_id": pd.array(raw["request_id"].to_numpy(), dtype="string"),
    }, index=pd.DatetimeIndex(pd.to_datetime(times, unit="s", utc=True), name="time"))


def _floats(column: Any) -> Any:
    """A float64 numpy array (NaN for None or anything not a number) of a column."""
    import pandas as pd

    return pd.to_numeric(column, errors="coerce").to_numpy(
        dtype="float64", na_value=float("nan"), copy=True)


def _states_at(moves: list[Event], providers: Any, times: Any) -> Any:
    """Each call's breaker state just before it ended (from breaker:state transitions)."""
    import numpy as np

    states = np.full(len(times), "closed", dtype=object)
    by_name: dict[Any, list[Event]] = {}
    for move in moves:
        by_name.setdefault(move.data.get("name"), []).append(move)
    for name, group in by_name.items():
        mask = providers == name
        if not mask.any():
            continue
        at = np.array([m.time for m in group], dtype="float64")
        order = np.argsort(at, kind="stable")
        labels = np.array(["closed", *(group[i].data.get("new") for i in order)], dtype=object)
        states[mask] = labels[np.searchsorted(at[order], times[mask], side="right")]
    return states


def metrics_df(source: Any) -> pd.DataFrame:
    """Per provider/model: calls, errors, error rate, cache hits, tokens, cost, latency."""
    import pandas as pd

    calls = calls_df(source)
    columns = ["provider", "model", "calls", "errors", "error_rate", "cached", "prompt_tokens",
               "completion_tokens", "cost_usd", "latency_mean_s", "latency_p50_s",
               "latency_p95_s"]
    if calls.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in columns}).astype(
            {"provider": "string", "model": "string", "calls": "Int64", "errors": "Int64",
             "cached": "Int64", "prompt_tokens": "Int64", "completion_tokens": "Int64"})
    frame = calls.reset_index().assign(failed=calls["error"].notna().to_numpy())
    grouped = frame.groupby(["provider", "model"], dropna=False, observed=True)
    out = grouped.agg(
        calls=("request_id", "size"),
        errors=("failed", "sum"),
        cached=("cached", "sum"),
        prompt_tokens=("prompt_tokens", "sum"),
        completion_tokens=("completion_tokens", "sum"),
        cost_usd=("cost_usd", lambda s: s.sum(min_count=1)),
        latency_mean_s=("latency_s", "mean"),
        latency_p50_s=("latency_s", lambda s: s.quantile(0.5)),
        latency_p95_s=("latency_s", lambda s: s.quantile(0.95)),
    ).reset_index()
    out["error_rate"] = out["errors"] / out["calls"]
    out = out.astype({"calls": "Int64", "errors": "Int64", "cached": "Int64",
                      "prompt_tokens": "Int64", "completion_tokens": "Int64"})
    return out[columns]


def cost_df(source: Any) -> pd.DataFrame:
    """Per provider/model: calls, tokens, cost (NaN if no call was priced), unpriced calls."""
    calls = calls_df(source)
    ok = calls[calls["error"].isna()]
    frame = ok.reset_index().assign(unpriced=ok["cost_usd"].isna().to_numpy())
    grouped = frame.groupby(["provider", "model"], dropna=False, observed=True)
    out = grouped.agg(
        calls=("request_id", "size"),
        prompt_tokens=("prompt_tokens", "sum"),
        completion_tokens=("completion_tokens", "sum"),
        cost_usd=("cost_usd", lambda s: s.sum(min_count=1)),
        unpriced_calls=("unpriced", "sum"),
    ).reset_index()
    return out.astype({"calls": "Int64", "prompt_tokens": "Int64",
                       "completion_tokens": "Int64", "unpriced_calls": "Int64"})


# -- breakers --------------------------------------------------------------------------

BREAKER_EVENT_COLUMNS = {"breaker": "string", "kind": "string", "old": "string",
                         "new": "string", "reason": "string", "error": "string"}


def breaker_events_df(source: Any) -> pd.DataFrame:
    """Breaker transitions, counted failures and rejected calls, in time order."""
    cols: dict[str, list[Any]] = {name: [] for name in BREAKER_EVENT_COLUMNS}
    times: list[float] = []
    for event in events_of(source, "breaker:*"):
        d = event.data
        times.append(event.time)
        cols["breaker"].append(d.get("name"))
        cols["kind"].append(event.name.partition(":")[2])
        cols["old"].append(d.get("old"))
        cols["new"].append(d.get("new"))
        cols["reason"].append(d.get("reason"))
        cols["error"].append(d.get("error"))
    return _frame(cols, BREAKER_EVENT_COLUMNS, times)


#: the keys of ``CircuitBreaker.get_stats()`` (a Redis store may add its own after these)
BREAKER_COLUMNS = ["name", "state", "total_calls", "successful_calls", "failed_calls",
                   "rejected_calls", "success_rate", "consecutive_failures", "open_until",
                   "last_failure", "half_open_permits_in_use", "backend"]


def breakers_df(ai: Any) -> pd.DataFrame:
    """The current stats of every breaker built so far (one row each)."""
    import pandas as pd

    from kite_lab.core.errors import KiteError

    try:
        breakers = ai.breakers
    except KiteError:
        breakers = {}
    rows = [breaker.get_stats() for breaker in breakers.values()]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=BREAKER_COLUMNS)


# -- agents ----------------------------------------------------------------------------

RUN_COLUMNS = {"agent": "string", "run_id": "string", "success": "boolean",
               "iterations": "Int64", "tool_calls": "Int64", "prompt_tokens": "Int64",
               "completion_tokens": "Int64", "cost_usd": "float64", "latency_s": "float64",
               "error": "string"}


def runs_df(source: Any) -> pd.DataFrame:
    """One row per finished agent run (an Agent: its runs; a Kite: every agent's)."""
    name = None
    if hasattr(source, "kite") and hasattr(source, "guard"):  # an Agent
        name, source = source.name, source.kite
    cols: dict[str, list[Any]] = {c: [] for c in RUN_COLUMNS}
    times: list[float] = []
    for event in events_of(source, "agent:end"):
        d = event.data
        if name is not None and d.get("agent") != name:
            continue
        times.append(event.time)
        for column in RUN_COLUMNS:
            value = d.get(column)
            cols[column].append(value)
    return _frame(cols, RUN_COLUMNS, times)


# -- batch runs ------------------------------------------------------------------------

MAP_COLUMNS = {"map_run": "string", "status": "string", "rows": "Int64", "success": "Int64",
               "cached": "Int64", "error": "Int64", "resumed": "Int64", "skipped": "Int64",
               "spent_usd": "float64", "elapsed_s": "float64", "provider": "string",
               "model": "string", "engine": "string"}


def maps_df(source: Any) -> pd.DataFrame:
    """One row per finished ``ai.map`` run: status, rows by outcome (success, cached,
    error; resumed from the checkpoint; skipped by the budget), spend, time, model."""
    started = {e.data.get("map_run"): e.data for e in events_of(source, "map:start")}
    cols: dict[str, list[Any]] = {c: [] for c in MAP_COLUMNS}
    times: list[float] = []
    for event in events_of(source, "map:done"):
        data = {**started.get(event.data.get("map_run"), {}), **event.data}
        times.append(event.time)
        for column in MAP_COLUMNS:
            value = data.get(column)
            if value is None and MAP_COLUMNS[column] == "Int64" and column != "rows":
                value = 0  # an outcome no row had
            cols[column].append(value)
    return _frame(cols, MAP_COLUMNS, times)


# -- memory ----------------------------------------------------------------------------


def history_df(ai: Any, session_id: str, limit: int | None = None) -> pd.DataFrame:
    """The messages of one session, oldest first: role, content, metadata."""
    store = ai.session_memory
    messages = run_sync(store.aget_history(session_id, max_messages=limit))
    rows = [_as_dict(m) for m in messages]
    dtypes = {"role": "string", "content": "string", "metadata": "object"}
    cols = {c: [row.get(c) for row in rows] for c in dtypes}
    times = [_epoch(row.get("created_at") or row.get("timestamp")) for row in rows]
    if any(t is None for t in times):
        return _frame(cols, dtypes)
    return _frame(cols, dtypes, times)  # type: ignore[arg-type]


SESSION_COLUMNS = {"session_id": "string", "messages": "Int64", "tokens": "Int64",
                   "created_at": "float64", "updated_at": "float64"}


def sessions_df(ai: Any) -> pd.DataFrame:
    """Every stored session: message and token counts, created and last-used times (UTC),
    most recently used first."""
    import pandas as pd

    sessions = run_sync(ai.session_memory.alist_sessions())
    rows = [_as_dict(s) if not isinstance(s, str) else {"session_id": s} for s in sessions]
    cols = {c: [row.get(c) for row in rows] for c in SESSION_COLUMNS}
    frame = _frame(cols, SESSION_COLUMNS)
    for column in ("created_at", "updated_at"):
        frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame


def search_df(ai: Any, query: str, top_k: int = 5) -> pd.DataFrame:
    """Vector memory hits for ``query``: doc_id, chunk_id, score, text, metadata."""
    memory = getattr(ai, "vector_memory", ai)
    hits = memory.search(query, top_k=top_k)
    dtypes = {"doc_id": "string", "chunk_id": "string", "score": "float64", "text": "string",
              "metadata": "object"}
    cols = {c: [getattr(hit, c) for hit in hits] for c in dtypes}
    return _frame(cols, dtypes)


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    to_dict = getattr(item, "to_dict", None) or getattr(item, "model_dump", None)
    if callable(to_dict):
        return dict(to_dict())
    return dict(vars(item))


def _epoch(value: Any) -> float | None:
    from datetime import datetime

    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None
