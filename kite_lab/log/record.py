"""One row of the call log, and the questions asked of it.

Why one flat row for calls, agent runs, tool calls and map rows: a run is read as a tree
(``run_id`` / ``parent_id``) of rows of different ``kind`` that share their accounting
columns (tokens, cost, latency, error), so one table and one query language serve
``calls_df``, ``kite-lab logs`` and the trace view alike.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

__all__ = ["COLUMNS", "CallRecord", "LogQuery", "parse_time"]


@dataclass(slots=True)
class CallRecord:
    """A logged LLM call (``kind="llm"``), agent run, tool call or map row."""

    ts: float
    kind: str = "llm"
    request_id: str | None = None
    #: the agent run (or map) this row belongs to; an agent row's own id
    run_id: str | None = None
    #: what started this row: the run of a call or tool, the outer run of a nested run
    parent_id: str | None = None
    #: agent / tool / map name
    name: str | None = None
    provider: str | None = None
    model: str | None = None
    params: str | None = None
    #: JSON of the messages (secrets redacted), or ``sha256:...`` when prompts are off
    messages: str | None = None
    #: the request's canonical key (the response-cache key rules)
    prompt_hash: str | None = None
    answer: str | None = None
    tool_calls: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    cached: bool = False
    replayed: bool = False
    stream: bool = False
    error: str | None = None
    error_message: str | None = None
    breaker_state: str | None = None
    cell_id: str | None = None
    script: str | None = None

    def as_row(self) -> tuple[Any, ...]:
        """The values in ``COLUMNS`` order; flags as 0/1 (INTEGER in both dialects)."""
        return tuple(int(v) if isinstance(v, bool) else v
                     for v in (getattr(self, name) for name in COLUMNS))

    @classmethod
    def from_row(cls, row: tuple[Any, ...] | list[Any]) -> CallRecord:
        data = dict(zip(COLUMNS, row, strict=True))
        for flag in ("cached", "replayed", "stream"):
            data[flag] = bool(data[flag])
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(CallRecord))


@dataclass(slots=True)
class LogQuery:
    """Which rows: a time window, a model, a run, a kind, a text search, a limit."""

    since: float | None = None
    until: float | None = None
    model: str | None = None
    run_id: str | None = None
    kind: str | None = None
    search: str | None = None
    limit: int | None = None
    newest_first: bool = False


_AGO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|w|week)s?\s*$", re.I)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400,
           "day": 86400, "w": 604800, "week": 604800}


def parse_time(value: Any, *, now: float | None = None) -> float | None:
    """Epoch seconds from ``None``, a number, a datetime/Timestamp, an ISO date or an age
    like ``"1h"`` / ``"30m"`` / ``"2d"`` (that long ago)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("a time must be a number, a datetime or a string like '1h'")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        match = _AGO.match(value)
        if match:
            number, unit = float(match.group(1)), match.group(2).lower()
            return (time.time() if now is None else now) - number * _UNIT_S[unit]
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            from kite_lab.core.errors import InvalidInput

            raise InvalidInput(
                f"cannot read {value!r} as a time: use an age like '30m', '1h', '2d' "
                "or an ISO date like '2026-01-31T12:00'"
            ) from None
        return parsed.timestamp()
    timestamp = getattr(value, "timestamp", None)  # pandas.Timestamp, numpy datetime...
    if callable(timestamp):
        return float(timestamp())
    raise TypeError(f"cannot use {type(value).__name__} as a time")
