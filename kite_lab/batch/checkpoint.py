"""Checkpoints: where a map commits each finished row, so a rerun skips it.

Why a row counts as done only after its commit returns: after a crash, Ctrl-C or
``kill -9`` a rerun must find every row that was reported done, and nothing else. Rows are
committed in groups (every row that finished while the previous transaction ran goes in
the next one), which keeps one transaction per row's *wait* but not per row's *cost*:
at 1,000 rows/s a commit per row would be the bottleneck.

One table, ``kite_map_rows(row_key, record, created_at)``, holds every map's rows: keys
differ per prompt/model/params, so runs never mix, and a checkpoint written by another
kite_lab version (another ``KEY_VERSION``) is simply not reused. Rows that ended in an
error are not committed: rerunning the map is how they are retried.

``checkpoint=`` accepts a path (SQLite, the default), ``sqlite:///path``, a
``postgresql://`` URL (shared by every worker of a Ray map), or a ``CheckpointStore``.
The stores' blocking drivers (sqlite3, psycopg) run on one private thread per store, so
the event loop never waits on disk and a connection is only ever used by one thread.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from kite_lab.core.config import mask_url
from kite_lab.core.errors import StoreError

__all__ = [
    "CheckpointStore",
    "GroupCommitter",
    "ThreadedStore",
    "is_postgres_url",
    "open_checkpoint",
]

_LOAD_CHUNK = 500  # keys per SELECT ... IN (...)


@runtime_checkable
class CheckpointStore(Protocol):
    """What a map needs from a checkpoint. ``commit`` returns once the rows are durable."""

    description: str

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    async def commit(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> None: ...

    async def aclose(self) -> None: ...


def is_postgres_url(value: Any) -> bool:
    return isinstance(value, str) and value.split(":", 1)[0].lower() in (
        "postgres",
        "postgresql",
        "postgresql+psycopg",
    )


def open_checkpoint(checkpoint: Any) -> CheckpointStore:
    """The store for ``checkpoint=`` (see the module docstring); opens nothing yet."""
    if isinstance(checkpoint, CheckpointStore):
        return checkpoint
    if isinstance(checkpoint, os.PathLike):
        checkpoint = os.fspath(checkpoint)
    if not isinstance(checkpoint, str) or not checkpoint.strip():
        raise TypeError(
            "checkpoint must be a file path (SQLite), a postgresql:// URL or a "
            f"CheckpointStore, not {type(checkpoint).__name__}"
        )
    if is_postgres_url(checkpoint):
        from .checkpoint_postgres import PostgresCheckpoint

        return PostgresCheckpoint(checkpoint)
    if "://" in checkpoint and not checkpoint.startswith("sqlite:///"):
        raise TypeError(
            f"checkpoint URL {mask_url(checkpoint)!r} is not supported: use a file path, "
            "sqlite:///path or postgresql://user@host/db"
        )
    from .checkpoint_sqlite import SQLiteCheckpoint

    return SQLiteCheckpoint(checkpoint.removeprefix("sqlite:///"))


def encode(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def decode(text: Any) -> dict[str, Any] | None:
    """A stored record, or None when it is not one this version can read."""
    try:
        record = json.loads(text) if isinstance(text, str | bytes) else text
    except ValueError:
        return None
    return record if isinstance(record, dict) and "output" in record else None


class ThreadedStore:
    """A store whose blocking driver runs on one private thread (subclasses: SQL dialects)."""

    description = "checkpoint"
    placeholder = "?"  # the driver's parameter style
    upsert = (
        "INSERT INTO kite_map_rows (row_key, record, created_at) VALUES ({p}, {p}, {p}) "
        "ON CONFLICT (row_key) DO NOTHING"
    )

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._conn: Any = None

    # -- subclasses ---------------------------------------------------------------
    def _connect(self) -> Any:  # on the store's thread
        raise NotImplementedError

    def _close_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the thread ---------------------------------------------------------------
    async def _run(self, func: Any, *args: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="kite-map-checkpoint")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, func, *args)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(
                f"checkpoint {self.description}: {type(exc).__name__}: {exc}"
            ) from exc

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        return self._conn

    # -- the contract ---------------------------------------------------------------
    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        return dict(await self._run(self._load_sync, list(keys)))

    async def commit(self, rows: Sequence[tuple[str, dict[str, Any]]]) -> None:
        if rows:
            await self._run(self._commit_sync, list(rows))

    async def aclose(self) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(executor, self._close_connection)
        executor.shutdown(wait=False)

    def _load_sync(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        conn = self._connection()
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), _LOAD_CHUNK):
            chunk = keys[start : start + _LOAD_CHUNK]
            marks = ", ".join([self.placeholder] * len(chunk))
            cursor = conn.execute(
                f"SELECT row_key, record FROM kite_map_rows WHERE row_key IN ({marks})", chunk
            )
            for key, text in cursor.fetchall():
                record = decode(text)
                if record is not None:
                    found[key] = record
        conn.commit()  # end the read transaction (Postgres holds a snapshot otherwise)
        return found

    def _commit_sync(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        conn = self._connection()
        now = time.time()
        sql = self.upsert.format(p=self.placeholder)
        try:
            conn.cursor().executemany(sql, [(key, encode(r), now) for key, r in rows])
            conn.commit()
        except Exception:
            conn.rollback()
            raise


class GroupCommitter:
    """Commit rows as they finish; each ``commit`` call returns once its row is durable."""

    def __init__(self, store: CheckpointStore) -> None:
        self._store = store
        self._pending: list[tuple[str, dict[str, Any], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def commit(self, key: str, record: dict[str, Any]) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((key, record, future))
        self._wake.set()
        await future

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await self._store.commit([(key, record) for key, record, _ in batch])
            except BaseException as exc:
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else StoreError(
                            "checkpoint commit interrupted"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for *_, future in batch:
                if not future.done():
                    future.set_result(None)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
