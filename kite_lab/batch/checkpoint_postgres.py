"""The Postgres checkpoint: finished rows shared by every process of a map (Ray workers).

Why Postgres for Ray: workers on several machines must see one set of finished rows, and
``INSERT ... ON CONFLICT DO NOTHING`` in one transaction per group gives exactly the
SQLite store's guarantees (a row is committed before it counts; a key is never
overwritten). The URL's password never appears in a message (``mask_url``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from kite_lab.batch.checkpoint import TABLE
from kite_lab.core.errors import StoreError, StoreUnavailable

__all__ = ["PostgresCheckpoint"]


def _mask(url: str) -> str:
    from kite_lab.core.config import mask_url

    return mask_url(url)


class PostgresCheckpoint:
    """Finished rows in a Postgres table (created on first use)."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("postgres://", "postgresql://", 1)
        self.description = _mask(self.url)
        self._conn: Any = None
        self._lock: asyncio.Lock | None = None

    async def _connect(self) -> Any:
        if self._conn is None:
            import psycopg

            try:
                conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise StoreUnavailable(
                    f"cannot reach the checkpoint database {self.description}: "
                    f"{_first_line(exc)}"
                ) from None
            for attempt in range(3):  # workers racing to create the table: one wins
                try:
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {TABLE} (key text PRIMARY KEY, "
                        "record jsonb NOT NULL, created timestamptz NOT NULL DEFAULT now())"
                    )
                    break
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateTable):
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.05)
            self._conn = conn
        return self._conn

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()  # one statement at a time on the one connection
        return self._lock

    async def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        import psycopg

        async with self._guard():
            conn = await self._connect()
            try:
                cursor = await conn.execute(
                    f"SELECT key, record FROM {TABLE} WHERE key = ANY(%s)", (list(keys),)
                )
                rows = await cursor.fetchall()
            except psycopg.Error as exc:
                raise StoreError(
                    f"cannot read the checkpoint {self.description}: {_first_line(exc)}"
                ) from None
        return {key: record for key, record in rows}

    async def save(self, records: Sequence[tuple[str, dict[str, Any]]]) -> None:
        import psycopg
        from psycopg.types.json import Jsonb

        async with self._guard():
            conn = await self._connect()
            try:
                async with conn.transaction(), conn.cursor() as cursor:
                    await cursor.executemany(
                        f"INSERT INTO {TABLE} (key, record) VALUES (%s, %s) "
                        "ON CONFLICT (key) DO NOTHING",
                        [(key, Jsonb(record)) for key, record in records],
                    )
            except psycopg.Error as exc:
                raise StoreError(
                    f"cannot write the checkpoint {self.description}: {_first_line(exc)}"
                ) from None

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def count(self) -> int:
        """Rows stored (all runs)."""
        async with self._guard():
            conn = await self._connect()
            cursor = await conn.execute(f"SELECT count(*) FROM {TABLE}")
            row = await cursor.fetchone()
        return int(row[0])


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
