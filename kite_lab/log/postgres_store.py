"""The call log in Postgres (``KITE_CALL_LOG=postgres`` with ``POSTGRES_URL``).

Why Postgres as well as SQLite: several service replicas, or a team's kernels, then
share one log, and ``kite-lab logs`` on any machine reads all of it. Same rows, same
migrations, same queries as the SQLite file; only the dialect differs here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kite_lab.core.config import mask_url
from kite_lab.core.errors import CallLogError, redact

from .schema import POSTGRES
from .store import CallLogStore

__all__ = ["PostgresCallLog"]

_CONNECT_TIMEOUT_S = 5
_LOCK_ID = 0x6B697465  # "kite": serializes first opens (migrations) across processes


class PostgresCallLog(CallLogStore):
    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        super().__init__()
        if not url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            from kite_lab.core.errors import ConfigError

            raise ConfigError(f"POSTGRES_URL {mask_url(url)!r} is not a PostgreSQL URL: use "
                              "postgresql://user:password@host:5432/database")
        self.url = url.replace("postgresql+psycopg://", "postgresql://", 1)

    def describe(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or ''}"
        return f"the call log in PostgreSQL at {where}"

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)

    def _user_tables(self, cur: Any) -> list[str]:
        cur.execute("SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = current_schema()")
        return [row[0] for row in cur.fetchall()]

    def _lock_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[Any]:
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    def _day(self) -> str:
        return "to_char(to_timestamp(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def _translate(self, exc: Exception) -> CallLogError | None:
        import psycopg

        if not isinstance(exc, psycopg.Error):
            return None
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = redact(lines[0] if lines else type(exc).__name__, _password(self.url))
        if isinstance(exc, psycopg.OperationalError):
            return CallLogError(
                f"cannot reach {self.describe()} ({reason}); check that the server is running "
                "and POSTGRES_URL is right, or use KITE_CALL_LOG=sqlite (or none)"
            )
        return CallLogError(f"{self.describe()} failed: {reason}; "
                            "set KITE_CALL_LOG=none to turn it off")


def _password(url: str) -> list[str]:
    from urllib.parse import urlsplit

    password = urlsplit(url).password
    return [password] if password else []
