"""Rows of the call log as a pandas DataFrame (``frames.calls_df(ai)`` reads it).

Why the query is shaped like this: a log holds millions of rows and nearly all the time
goes into turning SQLite values into Python objects. So the few-valued text columns
(provider, model, breaker state, error class) come back as one small integer code per
row and are decoded with one numpy ``take``, the three flags as one small integer, and
the rows are read in insertion order (a table scan) and sorted by time in numpy only if
several writers interleaved. Every column is then one typed array (nullable
``Int64``/``boolean``/``string``, ``float64`` with NaN for an unknown cost), indexed by
a UTC ``DatetimeIndex`` named ``time``: the in-memory ``calls_df`` columns plus the run
links.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .record import LogQuery, parse_time

if TYPE_CHECKING:
    import pandas as pd

    from .store import CallLogStore

__all__ = ["LOG_CALL_COLUMNS", "calls_frame"]

#: the in-memory calls_df columns, then the links the log adds
LOG_CALL_COLUMNS = {
    "provider": "string", "model": "string", "prompt_tokens": "Int64",
    "completion_tokens": "Int64", "total_tokens": "Int64", "cost_usd": "float64",
    "latency_s": "float64", "cached": "boolean", "breaker_state": "string",
    "error": "string", "request_id": "string", "run_id": "string", "parent_id": "string",
    "replayed": "boolean", "stream": "boolean",
}
_PLAIN = ("ts", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s", "request_id",
          "run_id", "parent_id")
_CODED = ("provider", "model", "breaker_state", "error")
_BASE = 256  # each coded column's code fits a byte of the combined code


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _code_expression(column: str, values: list[Any]) -> str:
    """``CASE column WHEN 'a' THEN 0 ... ELSE n END`` (n, past the values: NULL)."""
    cases = " ".join(f"WHEN {_literal(v)} THEN {i}" for i, v in enumerate(values)
                     if v is not None)
    return f"(CASE {column} {cases} ELSE {len(values)} END)" if cases else str(len(values))


def calls_frame(store: CallLogStore, since: Any = None, until: Any = None,
                model: str | None = None, run_id: str | None = None) -> pd.DataFrame:
    """One row per logged LLM call, oldest first, filtered by time, model and run."""
    import numpy as np
    import pandas as pd

    query = LogQuery(since=parse_time(since), until=parse_time(until), model=model,
                     run_id=run_id, kind="llm")
    combos = store.distinct_rows(_CODED, query, limit=4096)
    labels = {name: sorted({c[i] for c in combos}, key=lambda v: (v is None, str(v)))
              for i, name in enumerate(_CODED)}
    coded = len(combos) < 4096 and all(len(v) < _BASE - 1 for v in labels.values())
    if coded:
        code = " + ".join(f"{_BASE ** i} * {_code_expression(name, labels[name])}"
                          for i, name in enumerate(_CODED))
        extra = [code]
    else:
        extra = list(_CODED)
    flags = "(cached + 2 * replayed + 4 * stream)"
    rows = store.select(query, [*_PLAIN, flags, *extra], by_time=False)
    width = len(_PLAIN) + 1 + len(extra)
    table = np.array(rows, dtype=object) if rows else np.empty((0, width), dtype=object)
    times = table[:, 0].astype("float64")
    if len(times) > 1 and not np.all(times[1:] >= times[:-1]):
        order = np.argsort(times, kind="stable")
        table, times = table[order], times[order]
    raw = {name: table[:, i] for i, name in enumerate(_PLAIN)}
    bits = table[:, len(_PLAIN)].astype("int64")
    if coded:
        codes = table[:, len(_PLAIN) + 1].astype("int64")
        for i, name in enumerate(_CODED):
            lookup = np.array([*labels[name], None], dtype=object)
            raw[name] = lookup[(codes // _BASE ** i) % _BASE]
    else:
        for i, name in enumerate(_CODED):
            raw[name] = table[:, len(_PLAIN) + 1 + i]

    def ints(name: str) -> Any:
        return pd.array(raw[name], dtype="Int64")

    def strings(name: str) -> Any:
        return pd.array(raw[name], dtype="string")

    def flag(bit: int) -> Any:
        return pd.array((bits & bit) > 0, dtype="boolean")

    prompt, answer = ints("prompt_tokens"), ints("completion_tokens")
    data = {
        "provider": strings("provider"), "model": strings("model"),
        "prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer,
        "cost_usd": raw["cost_usd"].astype("float64"),  # None -> NaN
        "latency_s": raw["latency_s"].astype("float64"),
        "cached": flag(1), "breaker_state": strings("breaker_state"),
        "error": strings("error"), "request_id": strings("request_id"),
        "run_id": strings("run_id"), "parent_id": strings("parent_id"),
        "replayed": flag(2), "stream": flag(4),
    }
    index = pd.DatetimeIndex(pd.to_datetime(times, unit="s", utc=True), name="time")
    return pd.DataFrame(data, index=index)
