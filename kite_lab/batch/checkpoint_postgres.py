"""The Postgres checkpoint: shared by every process of a map (Ray workers, several kernels).

psycopg 3 (already a kite_lab dependency) with plain SQL: one table, one index, nothing
an ORM would add. ``INSERT ... ON CONFLICT DO NOTHING`` makes two workers finishing the
same key harmless. The URL's password never appears in a message (``mask_url``).
"""

from __future__ import annotations

from typing import Any

from kite_lab.core.config import mask_url
from kite_lab.core.errors import StoreUnavailable

from .checkpoint import ThreadedStore

__all__ = ["PostgresCheckpoint"]


class PostgresCheckpoint(ThreadedStore):
    placeholder = "%s"

    def __init__(self, url: str) -> None:
        super().__init__()
        # SQLAlchemy-style driver suffixes name the same database
        self.url = "postgresql" + url[url.index(":"):]
        self.description = mask_url(self.url)

    def _connect(self) -> Any:
        import psycopg

        try:
            conn = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.OperationalError as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreUnavailable(
                f"cannot reach the Postgres checkpoint {self.description}: {reason}"
            ) from None
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS kite_map_rows ("
                "row_key TEXT PRIMARY KEY, record TEXT NOT NULL, "
                "created_at DOUBLE PRECISION NOT NULL)"
            )
            conn.commit()
        except psycopg.errors.UniqueViolation:  # another worker created it at the same time
            conn.rollback()
        return conn

    def __repr__(self) -> str:
        return f"PostgresCheckpoint({self.description!r})"
