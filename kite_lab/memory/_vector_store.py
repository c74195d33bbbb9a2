"""The SQLite half of vector memory: documents, chunk texts and metadata.

Why SQLite next to the FAISS file: the texts are the source of truth and the FAISS
index is derived from them. Every change is committed here first (one transaction per
batch); the index file is saved after. A crash between the two loses nothing: on the
next start the vector memory compares the ids here with the ids in the index and
catches up, and a damaged index can always be rebuilt from these texts.

Chunk row ids are the FAISS ids. They come from AUTOINCREMENT, so an id is never
reused: a stale index can never point a vector at a different chunk's text.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kite_lab.core.errors import InvalidInput

__all__ = ["ChunkRow", "PendingDocument", "TextStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE INDEX IF NOT EXISTS documents_created ON documents(created_at);
"""
_MAX_VARS = 900  # stay below SQLite's bound-parameter limit in IN (...) lists


@dataclass(frozen=True, slots=True)
class PendingDocument:
    """A validated document, chunked, ready to be written."""

    doc_id: str
    text: str
    metadata: dict[str, Any]
    chunks: list[str]
    created_at: float


@dataclass(frozen=True, slots=True)
class ChunkRow:
    id: int
    doc_id: str
    seq: int
    text: str
    metadata: dict[str, Any]

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.seq}"


class TextStore:
    """Thread-safe access to ``store.sqlite3`` (one connection per thread, WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.conn().executescript(_SCHEMA)  # idempotent; runs its own transaction

    # -- connections ------------------------------------------------------------------
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: other writers wait (busy timeout), readers don't."""
        conn = self.conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    # -- meta -------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- writes (call inside ``write()``) ---------------------------------------------
    def replace(
        self, conn: sqlite3.Connection, docs: Sequence[PendingDocument]
    ) -> tuple[list[int], list[int]]:
        """Insert ``docs`` (replacing same doc_ids); returns (removed chunk ids, new chunk ids)."""
        removed: list[int] = []
        added: list[int] = []
        for doc in docs:
            removed.extend(self._delete_doc(conn, doc.doc_id))
            conn.execute(
                "INSERT INTO documents(doc_id, text, metadata, created_at) VALUES (?, ?, ?, ?)",
                (
                    doc.doc_id,
                    doc.text,
                    json.dumps(doc.metadata, ensure_ascii=False),
                    doc.created_at,
                ),
            )
            for seq, chunk in enumerate(doc.chunks):
                cursor = conn.execute(
                    "INSERT INTO chunks(doc_id, seq, text) VALUES (?, ?, ?)",
                    (doc.doc_id, seq, chunk),
                )
                added.append(int(cursor.lastrowid or 0))
        return removed, added

    def _delete_doc(self, conn: sqlite3.Connection, doc_id: str) -> list[int]:
        ids = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
        conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
        conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
        return ids

    def delete_documents(self, conn: sqlite3.Connection, doc_ids: Sequence[str]) -> list[int]:
        removed: list[int] = []
        for doc_id in doc_ids:
            removed.extend(self._delete_doc(conn, doc_id))
        return removed

    def delete_chunks(self, conn: sqlite3.Connection, ids: Sequence[int]) -> None:
        """Delete chunk rows; documents left without chunks go too."""
        for part in _parts(ids):
            marks = ",".join("?" * len(part))
            conn.execute(f"DELETE FROM chunks WHERE id IN ({marks})", part)
        conn.execute(
            "DELETE FROM documents WHERE NOT EXISTS "
            "(SELECT 1 FROM chunks WHERE chunks.doc_id = documents.doc_id)"
        )

    def clear(self, conn: sqlite3.Connection) -> list[int]:
        ids = [r[0] for r in conn.execute("SELECT id FROM chunks")]
        conn.execute("DELETE FROM chunks")
        conn.execute("DELETE FROM documents")
        return ids

    # -- reads ------------------------------------------------------------------------
    def oldest_chunk_ids(self, conn: sqlite3.Connection, n: int) -> list[int]:
        rows = conn.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.doc_id = c.doc_id "
            "ORDER BY d.created_at, c.id LIMIT ?",
            (n,),
        )
        return [r[0] for r in rows]

    def doc_ids_older_than(self, conn: sqlite3.Connection, cutoff: float) -> list[str]:
        rows = conn.execute("SELECT doc_id FROM documents WHERE created_at < ?", (cutoff,))
        return [r[0] for r in rows]

    def count(self) -> int:
        return int(self.conn().execute("SELECT COUNT(*) FROM chunks").fetchone()[0])

    def count_documents(self) -> int:
        return int(self.conn().execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    def doc_ids(self) -> list[str]:
        return [
            r[0]
            for r in self.conn().execute("SELECT doc_id FROM documents ORDER BY created_at, doc_id")
        ]

    def all_ids(self) -> list[int]:
        return [r[0] for r in self.conn().execute("SELECT id FROM chunks ORDER BY id")]

    def document(self, doc_id: str) -> tuple[str, dict[str, Any], float, list[str]] | None:
        conn = self.conn()
        row = conn.execute(
            "SELECT text, metadata, created_at FROM documents WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        if row is None:
            return None
        chunks = [
            r[0]
            for r in conn.execute(
                "SELECT text FROM chunks WHERE doc_id = ? ORDER BY seq", (doc_id,)
            )
        ]
        return row[0], json.loads(row[1]), row[2], chunks

    def rows(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """Chunk rows by id; ids deleted meanwhile are simply absent."""
        found: dict[int, ChunkRow] = {}
        conn = self.conn()
        for part in _parts(ids):
            marks = ",".join("?" * len(part))
            query = (
                "SELECT c.id, c.doc_id, c.seq, c.text, d.metadata FROM chunks c "
                f"JOIN documents d ON d.doc_id = c.doc_id WHERE c.id IN ({marks})"
            )
            for cid, doc_id, seq, text, meta in conn.execute(query, part):
                found[cid] = ChunkRow(cid, doc_id, seq, text, json.loads(meta))
        return found

    def iter_chunks(self, batch: int = 256) -> Iterator[list[tuple[int, str]]]:
        """(id, text) of every chunk, in id order, ``batch`` at a time."""
        last = -1
        conn = self.conn()
        while True:
            rows = conn.execute(
                "SELECT id, text FROM chunks WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def texts(self, ids: Sequence[int]) -> list[tuple[int, str]]:
        out: list[tuple[int, str]] = []
        for part in _parts(ids):
            marks = ",".join("?" * len(part))
            out.extend(
                self.conn().execute(f"SELECT id, text FROM chunks WHERE id IN ({marks})", part)
            )
        return out

    def filter_ids(self, where: tuple[str, list[Any]]) -> list[int]:
        sql, params = where
        query = f"SELECT c.id FROM chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE {sql}"
        return [r[0] for r in self.conn().execute(query, params)]


def _parts(ids: Sequence[int]) -> Iterator[list[int]]:
    items = [int(i) for i in ids]
    for start in range(0, len(items), _MAX_VARS):
        yield items[start : start + _MAX_VARS]


# -- metadata filters ----------------------------------------------------------------


def compile_filter(spec: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """SQL for ``{"key": value}`` (equality) and ``{"key": [v1, v2]}`` (``in``).

    ``{"key": {"$eq": v}}`` and ``{"key": {"$in": [...]}}`` are accepted too; the key
    ``doc_id`` filters on the document id. Several keys must all match.
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"filter must be a dict, not {type(spec).__name__}")
    clauses: list[str] = []
    params: list[Any] = []
    for key, raw in spec.items():
        if not isinstance(key, str) or not key or '"' in key:
            raise InvalidInput(f"filter key {key!r} must be a non-empty str without '\"'")
        values = _filter_values(key, raw)
        if not values:
            clauses.append("0")
            continue
        alternatives = []
        for value in values:
            sql, args = _match(key, value)
            alternatives.append(sql)
            params.extend(args)
        clauses.append("(" + " OR ".join(alternatives) + ")")
    return (" AND ".join(clauses) or "1"), params


def _filter_values(key: str, raw: Any) -> list[Any]:
    if isinstance(raw, Mapping):
        if set(raw) == {"$eq"}:
            return [raw["$eq"]]
        if set(raw) == {"$in"}:
            raw = raw["$in"]
        else:
            raise InvalidInput(
                f"filter on {key!r}: use a value (equality), a list (in), "
                "{'$eq': value} or {'$in': [values]}"
            )
        if isinstance(raw, str) or not isinstance(raw, list | tuple | set | frozenset):
            raise TypeError(f"filter on {key!r}: '$in' needs a list of values")
    if isinstance(raw, list | tuple | set | frozenset):
        return list(raw)
    return [raw]


def _match(key: str, value: Any) -> tuple[str, list[Any]]:
    if key == "doc_id":
        if not isinstance(value, str):
            raise TypeError(f"filter on 'doc_id' needs str values, not {type(value).__name__}")
        return "c.doc_id = ?", [value]
    path = f'$."{key}"'
    if value is None:
        return "json_type(d.metadata, ?) = 'null'", [path]
    if isinstance(value, bool):
        return f"json_type(d.metadata, ?) = '{'true' if value else 'false'}'", [path]
    if isinstance(value, int | float):
        return (
            "(json_type(d.metadata, ?) IN ('integer', 'real') AND json_extract(d.metadata, ?) = ?)",
            [path, path, value],
        )
    if isinstance(value, str):
        return "(json_type(d.metadata, ?) = 'text' AND json_extract(d.metadata, ?) = ?)", [
            path,
            path,
            value,
        ]
    raise TypeError(
        f"filter on {key!r}: values must be str, int, float, bool or None, "
        f"not {type(value).__name__}"
    )
