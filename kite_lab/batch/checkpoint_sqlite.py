"""The SQLite checkpoint: one local file, the default for ``checkpoint="labels.sqlite"``.

WAL mode with ``synchronous=NORMAL``: a committed transaction is in the WAL file before
``commit`` returns, so it survives the process being killed (``kill -9``, a kernel
restart); only a power loss can lose the last transactions, which then just run again.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from .checkpoint import ThreadedStore

__all__ = ["SQLiteCheckpoint"]


class SQLiteCheckpoint(ThreadedStore):
    placeholder = "?"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path).expanduser()
        self.description = str(self.path)

    def _connect(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS kite_map_rows ("
            "row_key TEXT PRIMARY KEY, record TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        conn.commit()
        return conn

    def __repr__(self) -> str:
        return f"SQLiteCheckpoint({self.description!r})"
