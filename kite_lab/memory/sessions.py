"""The session store: conversation history per session id, on SQLite or Postgres.

Why it is built this way:
- One SQLModel schema, two backends: a SQLite file under KITE_HOME (WAL, the embedded
  default) or Postgres when POSTGRES_URL is set. Both pass the same contract tests.
- Every append is one transaction that is durable when the call returns (SQLite
  ``synchronous=FULL``, Postgres' default commit), so a killed process loses no message
  it acknowledged; concurrent writers (threads or processes) queue on the database's
  own locks (``BEGIN IMMEDIATE`` + busy timeout on SQLite) instead of failing.
- The schema is versioned (``session_models.migrate``) and upgraded on first use.
- Nothing connects until first use: a wrong POSTGRES_URL fails then, with an error
  naming host and port and never the password. ``check_database`` serves
  ``kite-lab doctor``.
- The work is blocking I/O, so the async methods run the sync ones in a worker thread.

The message text never goes into events, only ids and lengths.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kite_lab.core.config import mask_url
from kite_lab.core.errors import ConfigError, InvalidInput, StoreError, StoreUnavailable, redact
from kite_lab.core.types import ROLES, Message, ToolCall
from kite_lab.memory._sync import to_thread_twin

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus

__all__ = [
    "SessionInfo",
    "SessionStore",
    "StoredMessage",
    "build_session_store",
    "check_database",
    "database_url",
]

_SQLITE_FILE = "sessions.db"
_BUSY_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 5


@dataclass(slots=True)
class StoredMessage:
    """A message as stored, with its id, token count and time; ``msg["role"]`` works too."""

    id: int
    session_id: str
    role: str
    content: str
    metadata: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0
    created_at: float = 0.0

    def to_message(self) -> Message:
        """The core ``Message`` (name, tool_call_id, tool_calls come from the metadata)."""
        calls = [ToolCall.from_dict(c) for c in self.metadata.get("tool_calls") or ()]
        return Message(
            role=self.role,  # type: ignore[arg-type]
            content=self.content,
            name=self.metadata.get("name"),
            tool_call_id=self.metadata.get("tool_call_id"),
            tool_calls=calls,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "role": self.role,
            "content": self.content,
            "metadata": dict(self.metadata),
            "tokens": self.tokens,
            "created_at": self.created_at,
        }

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


@dataclass(frozen=True, slots=True)
class SessionInfo:
    session_id: str
    messages: int
    tokens: int
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "messages": self.messages,
            "tokens": self.tokens,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


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


# -- the store -----------------------------------------------------------------------


class SessionStore:
    """Messages per session; see the module docstring."""

    def __init__(
        self, url: str, events: EventBus | None = None, *, secrets: Iterable[str] = ()
    ) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            self._url = make_url(url)
        except ArgumentError:
            raise ConfigError(f"invalid database URL {mask_url(url)!r}") from None
        self.backend = self._url.get_backend_name()
        self.where = _describe(self._url)
        self.events = events
        self._secrets = [s for s in secrets if s]
        if self._url.password:
            self._secrets.append(str(self._url.password))
        self._engine: Engine | None = None
        self._write_engine: Engine | None = None
        self._ready = False
        self._lock = threading.Lock()

    # -- writing ----------------------------------------------------------------------
    def add_message(
        self,
        session_id: str,
        role: str,
        content: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        tokens: int | None = None,
    ) -> StoredMessage:
        """Append one message; it is durable when this returns."""
        row = _row(session_id, role, content, metadata, tokens)
        return self._append(session_id, [row])[0]

    def add_messages(
        self, session_id: str, messages: Iterable[Message | Mapping[str, Any]]
    ) -> list[StoredMessage]:
        """Append several messages (``Message`` objects or ``{"role", "content"}`` dicts)."""
        rows = []
        for item in messages:
            message = Message.from_any(item) if not isinstance(item, Message) else item
            extra: dict[str, Any] = (
                dict(item.get("metadata") or {}) if isinstance(item, Mapping) else {}
            )
            if message.name:
                extra["name"] = message.name
            if message.tool_call_id:
                extra["tool_call_id"] = message.tool_call_id
            if message.tool_calls:
                extra["tool_calls"] = [c.to_dict() for c in message.tool_calls]
            rows.append(_row(session_id, message.role, message.content, extra or None, None))
        return self._append(session_id, rows) if rows else []

    def _append(self, session_id: str, rows: list[dict[str, Any]]) -> list[StoredMessage]:
        session_id = _check_session_id(session_id)
        now = time.time()
        upsert, insert = _append_statements(self.backend)
        stored = []
        with self._write() as conn:
            conn.execute(upsert, {"session_id": session_id, "created_at": now, "updated_at": now})
            for row in rows:
                values = {**row, "session_id": session_id, "created_at": now}
                new_id = conn.execute(insert, values).inserted_primary_key[0]
                stored.append(_stored(int(new_id), values))
        for message in stored:
            self._emit(
                "session:append",
                session_id=session_id,
                message_id=message.id,
                role=message.role,
                chars=len(message.content),
                tokens=message.tokens,
            )
        return stored

    def clear_session(self, session_id: str) -> int:
        """Delete a session's messages but keep the session; returns how many went."""
        return self._remove(session_id, keep_session=True)

    def delete_session(self, session_id: str) -> int:
        """Delete a session and its messages; returns how many messages went."""
        return self._remove(session_id, keep_session=False)

    def _remove(self, session_id: str, keep_session: bool) -> int:
        import sqlalchemy as sa

        from kite_lab.memory.session_models import MessageRow, SessionRow

        session_id = _check_session_id(session_id)
        messages, sessions = MessageRow.__table__, SessionRow.__table__
        with self._write() as conn:
            result = conn.execute(sa.delete(messages).where(messages.c.session_id == session_id))
            if keep_session:
                conn.execute(
                    sa.update(sessions)
                    .where(sessions.c.session_id == session_id)
                    .values(updated_at=time.time())
                )
            else:
                conn.execute(sa.delete(sessions).where(sessions.c.session_id == session_id))
        removed = int(result.rowcount or 0)
        name = "session:clear" if keep_session else "session:delete"
        self._emit(name, session_id=session_id, messages=removed)
        return removed

    # -- reading ----------------------------------------------------------------------
    def get_history(self, session_id: str, max_messages: int | None = None) -> list[StoredMessage]:
        """The session's messages, oldest first; only the last ``max_messages`` if given."""
        _check_positive(max_messages, "max_messages")
        return self._newest_first(session_id, max_messages)[::-1]

    def window(
        self, session_id: str, max_messages: int | None = None, max_tokens: int | None = None
    ) -> list[Message]:
        """The most recent messages that fit both limits, oldest first, as core Messages.

        The token budget is strict: a message that does not fit ends the window (older
        messages are not skipped over to fill it).
        """
        _check_positive(max_messages, "max_messages")
        _check_positive(max_tokens, "max_tokens")
        picked: list[StoredMessage] = []
        used = 0
        for message in self._newest_first(session_id, max_messages):
            if max_tokens is not None and used + message.tokens > max_tokens:
                break
            used += message.tokens
            picked.append(message)
        return [m.to_message() for m in reversed(picked)]

    def _newest_first(self, session_id: str, limit: int | None) -> list[StoredMessage]:
        session_id = _check_session_id(session_id)
        params = {"session_id": session_id, "limit": limit}
        with self._read() as conn:
            rows = conn.execute(_history_query(limit is not None), params).all()
        return [
            StoredMessage(
                int(mid), session_id, role, content, json.loads(meta) if meta else {},
                int(tokens or 0), float(created),
            )
            for mid, role, content, meta, tokens, created in rows
        ]  # fmt: skip

    def list_sessions(self) -> list[SessionInfo]:
        """Every session with its message and token counts, most recently used first."""
        import sqlalchemy as sa

        from kite_lab.memory.session_models import MessageRow, SessionRow

        s, m = SessionRow.__table__, MessageRow.__table__
        query = (
            sa.select(
                s.c.session_id,
                s.c.created_at,
                s.c.updated_at,
                sa.func.count(m.c.id),
                sa.func.coalesce(sa.func.sum(m.c.tokens), 0),
            )
            .select_from(s.outerjoin(m, m.c.session_id == s.c.session_id))
            .group_by(s.c.session_id, s.c.created_at, s.c.updated_at)
            .order_by(s.c.updated_at.desc(), s.c.session_id)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [SessionInfo(r[0], int(r[3]), int(r[4]), float(r[1]), float(r[2])) for r in rows]

    def count_messages(self, session_id: str | None = None) -> int:
        import sqlalchemy as sa

        from kite_lab.memory.session_models import MessageRow

        table = MessageRow.__table__
        query = sa.select(sa.func.count()).select_from(table)
        if session_id is not None:
            query = query.where(table.c.session_id == _check_session_id(session_id))
        with self._read() as conn:
            return int(conn.execute(query).scalar() or 0)

    def schema_version(self) -> int | None:
        """The applied schema version; None before the tables exist (no migration is run)."""
        from kite_lab.memory.session_models import schema_version

        with self._read(migrate=False) as conn:
            return schema_version(conn)

    def ping(self) -> None:
        """Connect and run ``SELECT 1``; StoreUnavailable when the database cannot be reached."""
        import sqlalchemy as sa

        with self._read(migrate=False) as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = self._write_engine = None
            self._ready = False

    def __repr__(self) -> str:
        return f"<SessionStore {self.where}>"

    # async forms: database I/O runs in a worker thread, never on the event loop
    aadd_message = to_thread_twin(add_message)
    aadd_messages = to_thread_twin(add_messages)
    aget_history = to_thread_twin(get_history)
    awindow = to_thread_twin(window)
    alist_sessions = to_thread_twin(list_sessions)
    aclear_session = to_thread_twin(clear_session)
    adelete_session = to_thread_twin(delete_session)
    acount_messages = to_thread_twin(count_messages)

    # -- engine, transactions, errors -------------------------------------------------
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
            Path(self._url.database or "").parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                self._url,
                connect_args={"timeout": _BUSY_TIMEOUT_S, "check_same_thread": False},
            )
            sa.event.listen(engine, "connect", _sqlite_connect)
            sa.event.listen(engine, "begin", _sqlite_begin)
            return engine
        return sa.create_engine(
            self._url,
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

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._errors():
            _, writer = self._engines()
        with self._errors(), writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self, migrate: bool = True) -> Iterator[Connection]:
        with self._errors():
            reader, _ = self._engines(migrate)
        with self._errors(), reader.connect() as conn:
            yield conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
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

    def _emit(self, name: str, **data: Any) -> None:
        if self.events is not None:
            self.events.emit(name, backend=self.backend, **data)


@functools.cache
def _append_statements(backend: str) -> tuple[Any, Any]:
    """Built once per backend: the session upsert and the message insert (values bound later)."""
    from kite_lab.memory.session_models import MessageRow, SessionRow

    if backend == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    upsert = insert(SessionRow.__table__)
    upsert = upsert.on_conflict_do_update(
        index_elements=["session_id"], set_={"updated_at": upsert.excluded.updated_at}
    )
    return upsert, MessageRow.__table__.insert()


@functools.cache
def _history_query(limited: bool) -> Any:
    """Built once per form: a session's messages newest first (``:limit`` rows if limited)."""
    import sqlalchemy as sa

    from kite_lab.memory.session_models import MessageRow

    t = MessageRow.__table__
    columns = (t.c.id, t.c.role, t.c.content, t.c.metadata_json, t.c.tokens, t.c.created_at)
    query = sa.select(*columns).where(t.c.session_id == sa.bindparam("session_id"))
    query = query.order_by(t.c.id.desc())
    return query.limit(sa.bindparam("limit", type_=sa.Integer)) if limited else query


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


# -- validation and rows -------------------------------------------------------------


def _check_session_id(session_id: Any) -> str:
    if not isinstance(session_id, str):
        raise TypeError(f"session_id must be a str, not {type(session_id).__name__}")
    if not session_id.strip():
        raise InvalidInput("session_id is empty; pass a non-blank session id")
    if len(session_id) > 255:
        raise InvalidInput(f"session_id is {len(session_id)} characters long; the limit is 255")
    return session_id


def _check_positive(value: Any, name: str) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    if value < 1:
        raise InvalidInput(f"{name} must be at least 1 (or None for no limit), got {value}")


def _row(session_id: Any, role: Any, content: Any, metadata: Any, tokens: Any) -> dict[str, Any]:
    from kite_lab.memory.session_models import estimate_tokens

    _check_session_id(session_id)
    if not isinstance(role, str):
        raise TypeError(f"role must be a str, not {type(role).__name__}")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")
    if not isinstance(content, str):
        raise TypeError(f"content must be a str, not {type(content).__name__}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
    try:
        meta_json = json.dumps(dict(metadata), ensure_ascii=False) if metadata else None
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serializable: {exc}") from None
    if tokens is None:
        tokens = estimate_tokens(content)
    elif not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        raise InvalidInput(f"tokens must be a non-negative int, got {tokens!r}")
    return {"role": role, "content": content, "metadata_json": meta_json, "tokens": tokens}


def _stored(message_id: int, values: Mapping[str, Any]) -> StoredMessage:
    raw = values.get("metadata_json")
    return StoredMessage(
        id=message_id,
        session_id=values["session_id"],
        role=values["role"],
        content=values["content"],
        metadata=json.loads(raw) if raw else {},
        tokens=int(values.get("tokens") or 0),
        created_at=float(values["created_at"]),
    )


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(orig).__name__


# -- factories -----------------------------------------------------------------------


def build_session_store(settings: KiteSettings, events: EventBus | None = None) -> SessionStore:
    """SQLite under KITE_HOME, or Postgres when POSTGRES_URL is set; connects on first use."""
    return SessionStore(database_url(settings), events, secrets=settings.secret_values())


def check_database(settings: KiteSettings) -> tuple[bool, str]:
    """For ``kite-lab doctor``: (ok, message); the message names host and port, no password."""
    try:
        url = database_url(settings)
    except ConfigError as exc:
        return False, str(exc)
    store = SessionStore(url, secrets=settings.secret_values())
    try:
        if store.backend == "sqlite":
            path = Path(store._url.database or "")
            if not path.exists():
                return True, f"{store.where}: will be created on first use"
        store.ping()
        version = store.schema_version()
    except (StoreError, ConfigError) as exc:
        return False, str(exc)
    finally:
        store.close()
    if version is None:
        return True, f"{store.where}: reachable; tables are created on first use"
    return True, f"{store.where}: reachable, schema version {version}"
