"""The persistent call log: every LLM call, agent run, tool call and map row of every
kernel and process, in SQLite (``KITE_HOME/logs.db``) or Postgres (issue 16).

- ``record``: ``CallRecord`` (one row) and ``LogQuery`` (which rows);
- ``schema``: versioned migrations; ``store`` / ``postgres_store``: the databases;
- ``writer``: the background thread that writes in batches, off the call path;
- ``stage``: ``CallLog``, what the pipeline and the event bus feed;
- ``build``: the log a Kite's settings name; ``frame``: rows as a DataFrame;
- ``cli``: ``kite-lab logs``.

Names load their module on first access: importing this package loads nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kite_lab.core.lazy import lazy_exports

if TYPE_CHECKING:
    from kite_lab.log.build import build_call_log, open_store
    from kite_lab.log.record import CallRecord, LogQuery, parse_time
    from kite_lab.log.stage import CallLog, CallLogWarning
    from kite_lab.log.store import CallLogStore, SQLiteCallLog

__all__ = [
    "CallLog",
    "CallLogStore",
    "CallLogWarning",
    "CallRecord",
    "LogQuery",
    "SQLiteCallLog",
    "build_call_log",
    "open_store",
    "parse_time",
]

_HOME = {
    "CallLog": "stage",
    "CallLogStore": "store",
    "CallLogWarning": "stage",
    "CallRecord": "record",
    "LogQuery": "record",
    "SQLiteCallLog": "store",
    "build_call_log": "build",
    "open_store": "build",
    "parse_time": "record",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
