"""The session store: conversation history per session id, on SQLite or Postgres.

Why it is built this way:
- One SQLModel schema, two backends: a SQLite file under KITE_HOME (WAL, the embedded
  default) or Postgres when POSTGRES_URL is set. Both pass the same contract tests.
  This module is the store's API in dialect-free SQLAlchemy Core; engines, dialects,
  transactions and error translation are ``session_engine``'s.
- Every append is one transaction that is durable when the call returns (SQLite
  ``synchronous=FULL``, Postgres' default commit), so a killed process loses no message
  it acknowledged; concurrent writers (threads or processes) queue on the database's
  own locks instead of failing.
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
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import ConfigError, InvalidInput, StoreError
from kite_lab.core.types import ROLES, Message, ToolCall
from kite_lab.core.validate import check_int
from kite_lab.memory._threads import to_thread_twin
from kite_lab.memory.session_engine import SessionDatabase, append_statements, database_url

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus

__all__ = [
    "SessionInfo",
    "SessionStore",
    "StoredMessage",
    "build_session_store",
    "check_database",
]


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


# -- the store -----------------------------------------------------------------------


class SessionStore:
    """Messages per session; see the module docstring."""

    def __init__(
        self, url: str, events: EventBus | None = None, *, secrets: Iterable[str] = ()
    ) -> None:
        self.db = SessionDatabase(url, secrets=secrets)
        self.backend = self.db.backend
        self.where = self.db.where
        self.events = events

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
        upsert, insert = append_statements(self.backend)
        stored = []
        with self.db.write() as conn:
            conn.execute(upsert, {"session_id": session_id, "created_at": now, "updated_at": now})
            for row in rows:
                values = {**row, "session_id": session_id, "created_at": now}
                key = conn.execute(insert, values).inserted_primary_key
                assert key is not None  # a one-row INSERT always reports its key
                stored.append(_stored(int(key[0]), values))
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

        from kite_lab.memory.session_models import MESSAGES as messages
        from kite_lab.memory.session_models import SESSIONS as sessions

        session_id = _check_session_id(session_id)
        with self.db.write() as conn:
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
        with self.db.read() as conn:
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

        from kite_lab.memory.session_models import MESSAGES as m
        from kite_lab.memory.session_models import SESSIONS as s

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
        with self.db.read() as conn:
            rows = conn.execute(query).all()
        return [SessionInfo(r[0], int(r[3]), int(r[4]), float(r[1]), float(r[2])) for r in rows]

    def count_messages(self, session_id: str | None = None) -> int:
        import sqlalchemy as sa

        from kite_lab.memory.session_models import MESSAGES as table

        query = sa.select(sa.func.count()).select_from(table)
        if session_id is not None:
            query = query.where(table.c.session_id == _check_session_id(session_id))
        with self.db.read() as conn:
            return int(conn.execute(query).scalar() or 0)

    def schema_version(self) -> int | None:
        """The applied schema version; None before the tables exist (no migration is run)."""
        from kite_lab.memory.session_models import schema_version

        with self.db.read(migrate=False) as conn:
            return schema_version(conn)

    def ping(self) -> None:
        """Connect and run ``SELECT 1``; StoreUnavailable when the database cannot be reached."""
        import sqlalchemy as sa

        with self.db.read(migrate=False) as conn:
            conn.execute(sa.text("SELECT 1"))

    def close(self) -> None:
        self.db.close()

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

    def _emit(self, name: str, **data: Any) -> None:
        if self.events is not None:
            self.events.emit(name, backend=self.backend, **data)


@functools.cache
def _history_query(limited: bool) -> Any:
    """Built once per form: a session's messages newest first (``:limit`` rows if limited)."""
    import sqlalchemy as sa

    from kite_lab.memory.session_models import MESSAGES as t

    columns = (t.c.id, t.c.role, t.c.content, t.c.metadata_json, t.c.tokens, t.c.created_at)
    query = sa.select(*columns).where(t.c.session_id == sa.bindparam("session_id"))
    query = query.order_by(t.c.id.desc())
    return query.limit(sa.bindparam("limit", type_=sa.Integer)) if limited else query


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
    else:
        tokens = check_int(tokens, "tokens", minimum=0)
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
            path = Path(store.db.url.database or "")
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
