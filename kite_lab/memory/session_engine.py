"""The session store's database plumbing: URLs, engines, dialects, transactions, errors.

Why apart from the store: ``sessions.SessionStore`` says what a session store does
(append, read a window, list, delete) in dialect-free SQLAlchemy Core; everything that
differs between SQLite and Postgres, or between a healthy and a broken database, is here:

- the URL: POSTGRES_URL rewritten for psycopg 3, else a SQLite file under KITE_HOME;
- SQLite runs in WAL with ``synchronous=FULL`` (committed = on disk, also after a power
  cut); writers start with ``BEGIN IMMEDIATE`` and wait on the busy timeout, so
  concurrent writers (threads or processes) queue instead of failing with "database is
  locked"; Postgres gets a pre-pinged pool and a connect timeout;
- the session upsert, the one dialect-specific statement;
- nothing connects until first use, and the schema is migrated then
  (``session_models.migrate``);
- SQLAlchemy errors become ``StoreUnavailable`` (Postgres unreachable: names host and
  port, never the password) or ``StoreError``, with every secret redacted.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kite_lab.core.config import mask_url
from kite_lab.core.errors import ConfigError, StoreError, StoreUnavailable, redact

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

    from kite_lab.core.config import KiteSettings

__all__ = ["SessionDatabase", "append_statements", "database_url"]

_SQLITE_FILE = "sessions.db"
_BUSY_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 5


# -- URLs ----------------------------------------------------------------------------


def database_url(settings: KiteSettings) -> str:
    """The SQLAlchemy URL: POSTGRES_URL (on psycopg 3) or the SQLite file under KITE_HOME."""
    if settings.postgres_url:
        return _psycopg_url(settings.postgres_url)
    path = Path(settings.kite_home).expanduser().absolute() / _SQLITE_FILE
    return f"sqlite:///{path}"


def _psycopg_url(url: str) -> str:
    for scheme in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    if url.startswith("postgresql+psycopg://"):
        return url
    raise ConfigError(
        f"POSTGRES_URL {mask_url(url)!r} is not a PostgreSQL URL: use "
        "postgresql://user:password@host:5432/database"
    )


def _describe(url: Any) -> str:
    """Where a URL points, without credentials: 'PostgreSQL at host:5432/db' or the file."""
    if url.get_backend_name() == "sqlite":
        return f"SQLite at {url.database}"
    return f"PostgreSQL at {url.host or 'localhost'}:{url.port or 5432}/{url.database or ''}"


# -- the database --------------------------------------------------------------------


class SessionDatabase:
    """One session database: lazy engines, migrated on first use, errors translated."""

    def __init__(self, url: str, *, secrets: Iterable[str] = ()) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            self.url: URL = make_url(url)
        except ArgumentError:
            raise ConfigError(f"invalid database URL {mask_url(url)!r}") from None
        self.backend = self.url.get_backend_name()
        self.where = _describe(self.url)
        self._secrets = [s for s in secrets if s]
        if self.url.password:
            self._secrets.append(str(self.url.password))
        self._engine: Engine | None = None
        self._write_engine: Engine | None = None
        self._ready = False
        self._lock = threading.Lock()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on exit."""
        with self.errors():
            _, writer = self._engines()
        with self.errors(), writer.begin() as conn:
            yield conn

    @contextmanager
    def read(self, migrate: bool = True) -> Iterator[Connection]:
        """A connection for reads; ``migrate=False`` leaves a missing schema missing."""
        with self.errors():
            reader, _ = self._engines(migrate)
        with self.errors(), reader.connect() as conn:
            yield conn

    @contextmanager
    def errors(self) -> Iterator[None]:
        """SQLAlchemy errors -> StoreUnavailable / StoreError, secrets redacted."""
        from sqlalchemy import exc as sa_exc

        try:
            yield
        except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
            reason = redact(_first_line(exc), self._secrets)
            if self.backend == "sqlite":
                raise StoreError(f"session store {self.where} failed: {reason}") from None
            raise StoreUnavailable(
                f"cannot reach the session database: {self.where} ({reason}); check that the "
                "server is running and POSTGRES_URL is right, or unset POSTGRES_URL to use "
                "the embedded SQLite store"
            ) from None
        except sa_exc.SQLAlchemyError as exc:
            reason = redact(_first_line(exc), self._secrets)
            raise StoreError(f"session store {self.where} failed: {reason}") from None

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = self._write_engine = None
            self._ready = False

    def _engines(self, migrate: bool = True) -> tuple[Engine, Engine]:
        if self._engine is None or self._write_engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create_engine()
                    self._write_engine = self._engine.execution_options(kite_write=True)
        assert self._engine is not None and self._write_engine is not None
        if migrate and not self._ready:
            self._migrate()
        return self._engine, self._write_engine

    def _create_engine(self) -> Engine:
        import sqlalchemy as sa

        if self.backend == "sqlite":
            Path(self.url.database or "").parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                self.url,
                connect_args={"timeout": _BUSY_TIMEOUT_S, "check_same_thread": False},
            )
            sa.event.listen(engine, "connect", _sqlite_connect)
            sa.event.listen(engine, "begin", _sqlite_begin)
            return engine
        return sa.create_engine(
            self.url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            connect_args={"connect_timeout": _CONNECT_TIMEOUT_S},
        )

    def _migrate(self) -> None:
        from kite_lab.memory.session_models import migrate

        with self._lock:
            if self._ready:
                return
            assert self._write_engine is not None
            with self._write_engine.begin() as conn:
                try:
                    migrate(conn)
                except RuntimeError as exc:
                    raise StoreError(f"{self.where}: {exc}") from None
            self._ready = True


@functools.cache
def append_statements(backend: str) -> tuple[Any, Any]:
    """Built once per backend: the session upsert and the message insert (values bound later)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from kite_lab.memory.session_models import MESSAGES, SESSIONS

    dialect: Any = postgresql if backend == "postgresql" else sqlite
    upsert = dialect.insert(SESSIONS)
    upsert = upsert.on_conflict_do_update(
        index_elements=["session_id"], set_={"updated_at": upsert.excluded.updated_at}
    )
    return upsert, MESSAGES.insert()


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" hook below starts transactions
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # committed = on disk, also after a power cut
    cursor.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # Writers take the write lock up front (IMMEDIATE), so they queue on the busy timeout
    # instead of failing with "database is locked" when a read lock would need upgrading.
    # Reads are single statements: in autocommit mode each one sees a consistent snapshot.
    if conn.get_execution_options().get("kite_write", False):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(orig).__name__
