"""The SQLite checkpoint: one file, WAL journal, a commit per group of finished rows.

Why WAL with ``synchronous=NORMAL``: a committed transaction survives the process being
killed (``kill -9``, a dead kernel); only a power loss may drop the last commits, and
those rows are then simply asked again. Calls run in a worker thread so a commit never
blocks the event loop the map's calls run on.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kite_lab.batch.checkpoint import TABLE
from kite_lab.core.errors import StoreError

__all__ = ["SQLiteCheckpoint"]

_CHUNK = 500  # keys per SELECT ... IN (...): below SQLite's variable limit


class SQLiteCheckpoint:
    """Finished rows in a SQLite file (created with its folder on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.description = f"sqlite:{self.path}"
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=10000")
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {TABLE} "
                    "(key TEXT PRIMARY KEY, record TEXT NOT NULL, created REAL NOT NULL)"
                )
            except (sqlite3.DatabaseError, OSError) as exc:
                raise StoreError(
                    f"cannot use {self.path} as an ai.map checkpoint ({exc}); pass another "
                    "path, or delete the file to start over"
                ) from None
            self._conn = conn
        return self._conn

    def _load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            conn = self._connect()
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT key, record FROM {TABLE} WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, record in rows:
                    found[key] = json.loads(record)
        return found

    def _save(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        now = time.time()
        rows = [(key, json.dumps(record, ensure_ascii=False), now) for key, record in records]
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(
                    f"INSERT OR IGNORE INTO {TABLE} (key, record, created) VALUES (?, ?, ?)",
                    rows,
                )
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"cannot write the checkpoint {self.path}: {exc}") from None

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        try:
            return await asyncio.to_thread(self._load, keys)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the checkpoint {self.path}: {exc}") from None

    async def save(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        await asyncio.to_thread(self._save, records)

    async def aclose(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def count(self) -> int:
        """Rows stored (all runs)."""
        with self._lock:
            return int(self._connect().execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])
