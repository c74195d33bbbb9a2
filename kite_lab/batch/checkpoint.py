"""Where finished rows of ``ai.map`` are kept, so a rerun after a crash calls only the rest.

The contract is two calls: ``load(keys)`` -> the records of those keys already done, and
``save(records)`` -> returns only once the records are committed. A row counts as done
(progress, events, the result) only after its ``save`` returned, so a ``kill -9`` loses
at most the rows in flight, and no row is ever paid twice.

Stores: SQLite for a path (the default: a file next to the notebook), Postgres for a
``postgresql://`` URL (shared, e.g. by Ray workers); ``checkpoint_open`` picks one.
Both keep one table, ``kite_map_rows_v1`` (key, record JSON); the key is the row key
(``plan``), so runs with other prompts, models or versions never find each other's rows.

``CheckpointWriter`` commits in groups: each finished row waits for the next commit,
which takes every row finished meanwhile, so 128 concurrent rows cost a few commits a
second, not 128.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["TABLE", "CheckpointStore", "CheckpointWriter"]

#: the one table both stores use (bump the suffix if the record's meaning ever changes)
TABLE = "kite_map_rows_v1"


@runtime_checkable
class CheckpointStore(Protocol):
    """Finished rows by row key."""

    #: where the rows are, safe to show (no password)
    description: str

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The records of those ``keys`` that are stored (others are absent)."""
        ...

    async def save(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Store ``(key, record)`` pairs; committed when this returns. Existing keys are
        kept as they are (a row is never answered twice)."""
        ...

    async def aclose(self) -> None: ...


class CheckpointWriter:
    """Group commit: ``await commit(key, record)`` returns once the record is stored."""

    def __init__(self, store: CheckpointStore, batch: int = 512) -> None:
        self._store, self._batch = store, batch
        self._queue: list[tuple[str, dict[str, Any], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def commit(self, key: str, record: dict[str, Any]) -> None:
        """Queue the record and wait until it is committed. Cancelling the waiter does not
        take the record back: it is committed anyway (its row was paid for)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((key, record, future))
        self._wake.set()
        await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group, self._queue = self._queue[: self._batch], self._queue[self._batch :]
                try:
                    await self._store.save([(key, record) for key, record, _ in group])
                except BaseException as exc:
                    for _, _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for _, _, future in group:
                    if not future.done():
                        future.set_result(None)
            if self._closed:
                return

    async def aclose(self) -> None:
        """Commit what is queued, then stop (safe to call while being cancelled)."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await asyncio.shield(self._task)
