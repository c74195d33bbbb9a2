"""The session store's tables (SQLModel) and the migrations that create and upgrade them.

Why migrations instead of ``create_all``: a database written by an older kite_lab must
be upgraded in place, on SQLite and on Postgres alike, without losing a message. Each
migration is frozen (it describes the schema of its own time, not the current models)
and applied once, in order, inside one transaction that holds a database-wide lock
(``BEGIN IMMEDIATE`` on SQLite, an advisory lock on Postgres), so several processes
starting together migrate exactly once. ``kite_schema_migrations`` records what ran.

The SQLModel classes below describe the current schema (the last migration's result);
a test checks that they match what the migrations build.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

__all__ = [
    "MESSAGES",
    "MIGRATIONS",
    "LATEST_VERSION",
    "SESSIONS",
    "MessageRow",
    "MigrationRow",
    "SessionRow",
    "estimate_tokens",
    "migrate",
]

_ID_TYPE = sa.BigInteger().with_variant(
    sa.Integer(), "sqlite"
)  # SQLite autoincrement wants INTEGER
_ADVISORY_LOCK = 0x6B697465  # "kite": serialises migrations across Postgres clients


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` estimated as one per 4 characters (OpenAI's rule of thumb)."""
    return math.ceil(len(text) / 4)


# -- current schema ------------------------------------------------------------------


class SessionRow(SQLModel, table=True):
    __tablename__ = "kite_sessions"

    session_id: str = Field(primary_key=True, max_length=255)
    created_at: float
    updated_at: float = Field(index=True)


class MessageRow(SQLModel, table=True):
    __tablename__ = "kite_messages"
    __table_args__ = (sa.Index("kite_messages_session_order", "session_id", "id"),)

    id: int | None = Field(
        default=None, sa_column=sa.Column(_ID_TYPE, primary_key=True, autoincrement=True)
    )
    session_id: str = Field(foreign_key="kite_sessions.session_id", max_length=255)
    role: str = Field(max_length=16)
    content: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    metadata_json: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    created_at: float
    tokens: int = Field(default=0, sa_column=sa.Column(sa.Integer, nullable=False, default=0))


#: the two tables as SQLAlchemy Core objects, for queries (SQLModel sets ``__table__``)
SESSIONS: sa.Table = SessionRow.__table__  # type: ignore[attr-defined]
MESSAGES: sa.Table = MessageRow.__table__  # type: ignore[attr-defined]


class MigrationRow(SQLModel, table=True):
    __tablename__ = "kite_schema_migrations"

    version: int = Field(primary_key=True)
    name: str = Field(max_length=200)
    applied_at: float


# -- migrations (frozen: never edit one that has shipped; append a new one) ----------


def _v1_tables(conn: Connection) -> None:
    """Sessions and messages."""
    meta = sa.MetaData()
    sa.Table(
        "kite_sessions",
        meta,
        sa.Column("session_id", sa.String(255), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False, index=True),
    )
    sa.Table(
        "kite_messages",
        meta,
        sa.Column("id", _ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column(
            "session_id", sa.String(255), sa.ForeignKey("kite_sessions.session_id"), nullable=False
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("metadata_json", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Index("kite_messages_session_order", "session_id", "id"),
    )
    meta.create_all(conn)


def _v2_token_counts(conn: Connection) -> None:
    """A token count per message, backfilled with the same estimate new messages get."""
    conn.execute(sa.text("ALTER TABLE kite_messages ADD COLUMN tokens INTEGER NOT NULL DEFAULT 0"))
    conn.execute(sa.text("UPDATE kite_messages SET tokens = (LENGTH(content) + 3) / 4"))


MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "sessions and messages", _v1_tables),
    (2, "token counts per message", _v2_token_counts),
]
LATEST_VERSION = MIGRATIONS[-1][0]

_MIGRATION_TABLE = sa.Table(
    "kite_schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)


def migrate(conn: Connection, target: int = LATEST_VERSION) -> tuple[int, int]:
    """Apply pending migrations up to ``target`` inside the caller's locking transaction.

    Returns (version before, version after). Raises RuntimeError when the database is
    newer than this code.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK})
    _MIGRATION_TABLE.create(conn, checkfirst=True)
    done = conn.execute(sa.select(sa.func.max(_MIGRATION_TABLE.c.version))).scalar() or 0
    if done > LATEST_VERSION:
        raise RuntimeError(
            f"the session database is at schema version {done}, newer than this kite_lab "
            f"understands ({LATEST_VERSION}): upgrade kite-lab"
        )
    for version, name, apply in MIGRATIONS:
        if done < version <= target:
            apply(conn)
            conn.execute(
                _MIGRATION_TABLE.insert().values(version=version, name=name, applied_at=time.time())
            )
    return done, max(done, min(target, LATEST_VERSION))


def schema_version(conn: Connection) -> int | None:
    """The applied schema version, or None when the store was never created."""
    if not sa.inspect(conn).has_table("kite_schema_migrations"):
        return None
    return conn.execute(sa.select(sa.func.max(_MIGRATION_TABLE.c.version))).scalar() or 0
