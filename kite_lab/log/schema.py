"""The call log's schema and its versioned migrations (SQLite and Postgres).

Why numbered migrations and a version table: a log outlives the kite_lab that wrote it
(it is a user's history), so a newer kite_lab must open an older log and bring it up to
date in place, and an older kite_lab must refuse a newer log instead of misreading it.
Each migration is a list of statements per dialect; ``kite_schema_version`` holds one
row per component (``calllog``) with the version reached.

Never edit a released migration: add the next one. ``V1_SQLITE`` is kept verbatim as
the first release wrote it, so a test can build a v1 file and watch it being migrated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "TABLE", "VERSION_TABLE", "Dialect", "migration"]

TABLE = "kite_calls"
VERSION_TABLE = "kite_schema_version"
COMPONENT = "calllog"


@dataclass(frozen=True)
class Dialect:
    name: str
    #: the DB-API parameter mark
    mark: str
    primary_key: str
    real: str
    #: case-insensitive LIKE
    ilike: str


SQLITE = Dialect("sqlite", "?", "INTEGER PRIMARY KEY", "REAL", "LIKE")
POSTGRES = Dialect("postgres", "%s", "BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION", "ILIKE")


def _v1(d: Dialect) -> list[str]:
    """The first release: one row per LLM call."""
    return [
        f"CREATE TABLE {TABLE} (id {d.primary_key}, ts {d.real} NOT NULL, request_id TEXT, "
        "run_id TEXT, provider TEXT, model TEXT, params TEXT, messages TEXT, answer TEXT, "
        f"prompt_tokens INTEGER, completion_tokens INTEGER, cost_usd {d.real}, "
        f"latency_s {d.real}, cached INTEGER NOT NULL DEFAULT 0, error TEXT)",
        f"CREATE INDEX {TABLE}_ts ON {TABLE} (ts)",
    ]


def _v2(d: Dialect) -> list[str]:
    """Agent runs, tool calls and map rows as linked rows; replay, stream, where."""
    added = [
        "kind TEXT NOT NULL DEFAULT 'llm'", "parent_id TEXT", "name TEXT", "prompt_hash TEXT",
        "tool_calls TEXT", "replayed INTEGER NOT NULL DEFAULT 0",
        "stream INTEGER NOT NULL DEFAULT 0", "error_message TEXT", "breaker_state TEXT",
        "cell_id TEXT", "script TEXT",
    ]
    return [f"ALTER TABLE {TABLE} ADD COLUMN {column}" for column in added] + [
        f"CREATE INDEX {TABLE}_run ON {TABLE} (run_id)",
        f"CREATE INDEX {TABLE}_model ON {TABLE} (model, ts)",
    ]


MIGRATIONS: dict[int, Callable[[Dialect], list[str]]] = {1: _v1, 2: _v2}
SCHEMA_VERSION = max(MIGRATIONS)

#: the v1 schema exactly as the first release created it in logs.db (for tests)
V1_SQLITE = [
    f"CREATE TABLE {VERSION_TABLE} (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    f"INSERT INTO {VERSION_TABLE} VALUES ('{COMPONENT}', 1)",
    *_v1(SQLITE),
]


def migration(version: int, dialect: Dialect) -> list[str]:
    """The statements that take a log from ``version - 1`` to ``version``."""
    return MIGRATIONS[version](dialect)
