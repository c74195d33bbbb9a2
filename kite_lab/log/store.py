"""Where log rows live: the store contract, and its SQLite implementation.

Why plain DB-API (``sqlite3``, psycopg) and not SQLAlchemy: the log is written from one
background thread in batches and read in bulk (a million rows into a DataFrame), so the
few statements it needs are written out once per dialect and nothing sits between the
rows and the driver.

Why errors are translated here: every failure a reader can meet (a corrupt or foreign
file, a log written by a newer kite_lab, an unreachable Postgres, a full disk) becomes a
``CallLogError`` naming the file or database and the fix; the writer turns the same
errors into a warning and a counter, because the log is never why a call fails.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kite_lab.core.errors import CallLogError

from .record import COLUMNS, CallRecord, LogQuery
from .schema import COMPONENT, SCHEMA_VERSION, SQLITE, TABLE, VERSION_TABLE, Dialect, migration

__all__ = ["GROUPS", "CallLogStore", "SQLiteCallLog"]

#: what ``cost_by`` can group on, and the SQL of each group
GROUPS = ("model", "provider", "day", "run", "kind")


class CallLogStore(ABC):
    """A call-log database: lazy connection, migrated on first use, thread-safe."""

    dialect: Dialect

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._connection: Any = None

    # -- what a dialect implements ---------------------------------------------------
    @abstractmethod
    def describe(self) -> str:
        """Where the log is, without credentials (for messages)."""

    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    def _user_tables(self, cur: Any) -> list[str]: ...

    @abstractmethod
    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[Any]: ...

    @abstractmethod
    def _translate(self, exc: Exception) -> CallLogError | None:
        """The CallLogError for a driver error (None: not a database error)."""

    @abstractmethod
    def _day(self) -> str: ...

    # -- connection and schema ---------------------------------------------------------
    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except CallLogError:
            raise
        except Exception as exc:
            translated = self._translate(exc)
            if translated is None:
                raise
            self._drop_connection()
            raise translated from None

    def _conn(self) -> Any:
        if self._connection is None:
            connection = self._connect()
            try:
                self._ensure_schema(connection, SCHEMA_VERSION)
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # already broken: nothing left to release
                pass

    def _ensure_schema(self, conn: Any, target: int) -> int:
        with self._transaction(conn) as cur:
            self._lock_schema(cur)
            version = self._read_version(cur)
            if version > SCHEMA_VERSION:
                raise CallLogError(
                    f"{self.describe()} was written by a newer kite_lab (log schema "
                    f"v{version}; this kite_lab knows v{SCHEMA_VERSION}): upgrade kite-lab "
                    "(pip install -U kite-lab), or set KITE_CALL_LOG=none"
                )
            m = self.dialect.mark
            for step in range(version + 1, target + 1):
                for statement in migration(step, self.dialect):
                    cur.execute(statement)
                cur.execute(
                    f"UPDATE {VERSION_TABLE} SET version = {m} WHERE component = {m}",
                    (step, COMPONENT),
                )
            return max(version, target)

    def _lock_schema(self, cur: Any) -> None:  # noqa: B027 - optional hook
        """Serialize concurrent first opens (SQLite: the write transaction already does)."""

    def _read_version(self, cur: Any) -> int:
        tables = self._user_tables(cur)
        m = self.dialect.mark
        if VERSION_TABLE in tables:
            cur.execute(f"SELECT version FROM {VERSION_TABLE} WHERE component = {m}",
                        (COMPONENT,))
            row = cur.fetchone()
            if row is not None:
                return int(row[0])
        if TABLE in tables or (self.dialect is SQLITE and tables and VERSION_TABLE
                               not in tables):
            shown = ", ".join(sorted(tables)[:5])
            raise CallLogError(
                f"{self.describe()} is not a kite_lab call log (it holds tables: {shown}); "
                "point KITE_HOME (or POSTGRES_URL) elsewhere, move the file aside, "
                "or set KITE_CALL_LOG=none"
            )
        if VERSION_TABLE not in tables:
            cur.execute(f"CREATE TABLE {VERSION_TABLE} "
                        "(component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        cur.execute(f"INSERT INTO {VERSION_TABLE} VALUES ({m}, 0)", (COMPONENT,))
        return 0

    def migrate(self, target: int | None = None) -> int:
        """Bring the schema to ``target`` (default: the newest); returns the version."""
        with self._lock, self._errors():
            if target is None or target >= SCHEMA_VERSION:
                self._conn()
                return SCHEMA_VERSION
            connection = self._connect()
            try:
                return self._ensure_schema(connection, target)
            finally:
                connection.close()

    def schema_version(self) -> int:
        with self._lock, self._errors():
            with self._transaction(self._conn()) as cur:
                return self._read_version(cur)

    # -- writing ---------------------------------------------------------------------
    def write(self, records: Sequence[CallRecord]) -> None:
        if not records:
            return
        m = self.dialect.mark
        sql = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) "
               f"VALUES ({', '.join([m] * len(COLUMNS))})")
        rows = [record.as_row() for record in records]
        with self._lock, self._errors():
            with self._transaction(self._conn()) as cur:
                cur.executemany(sql, rows)

    # -- reading ---------------------------------------------------------------------
    def _where(self, query: LogQuery) -> tuple[str, list[Any]]:
        m, clauses, params = self.dialect.mark, [], []
        for column, value, op in (("ts", query.since, ">="), ("ts", query.until, "<"),
                                  ("model", query.model, "="), ("run_id", query.run_id, "="),
                                  ("kind", query.kind, "=")):
            if value is not None:
                clauses.append(f"{column} {op} {m}")
                params.append(value)
        if query.search:
            fields = ("messages", "answer", "model", "name", "error_message", "tool_calls")
            clauses.append("(" + " OR ".join(f"{f} {self.dialect.ilike} {m}" for f in fields)
                           + ")")
            params += [f"%{query.search}%"] * len(fields)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def select(self, query: LogQuery | None = None, columns: Sequence[str] = COLUMNS, *,
               by_time: bool = True) -> list[tuple[Any, ...]]:
        """Rows (tuples of ``columns``, which may be SQL expressions) matching ``query``,
        oldest first unless asked; ``by_time=False``: in insertion order (a table scan)."""
        query = query or LogQuery()
        where, params = self._where(query)
        order = "DESC" if query.newest_first else "ASC"
        key = f"ts {order}, id {order}" if by_time else f"id {order}"
        sql = f"SELECT {', '.join(columns)} FROM {TABLE}{where} ORDER BY {key}"
        if query.limit is not None:
            sql += f" LIMIT {int(query.limit)}"
        with self._lock, self._errors():
            cur = self._conn().cursor()
            try:
                cur.execute(sql, params)
                return list(cur.fetchall())
            finally:
                cur.close()

    def distinct_rows(self, columns: Sequence[str], query: LogQuery | None = None,
                      limit: int = 1000) -> list[tuple[Any, ...]]:
        """Up to ``limit`` distinct combinations of ``columns`` among the rows of ``query``."""
        unknown = [c for c in columns if c not in COLUMNS]
        if unknown:
            raise ValueError(f"unknown columns {unknown}")
        where, params = self._where(query or LogQuery())
        sql = f"SELECT DISTINCT {', '.join(columns)} FROM {TABLE}{where} LIMIT {int(limit)}"
        with self._lock, self._errors():
            cur = self._conn().cursor()
            try:
                cur.execute(sql, params)
                return list(cur.fetchall())
            finally:
                cur.close()

    def records(self, query: LogQuery | None = None) -> list[CallRecord]:
        return [CallRecord.from_row(row) for row in self.select(query)]

    def count(self, query: LogQuery | None = None) -> int:
        where, params = self._where(query or LogQuery())
        with self._lock, self._errors():
            cur = self._conn().cursor()
            try:
                cur.execute(f"SELECT COUNT(*) FROM {TABLE}{where}", params)
                return int(cur.fetchone()[0])
            finally:
                cur.close()

    def cost_by(self, group: str, query: LogQuery | None = None
                ) -> list[tuple[Any, int, int, int, float | None]]:
        """Per ``group`` (model, provider, day, run, kind): LLM calls, prompt and completion
        tokens, USD spent (replayed calls cost nothing; None when no call was priced)."""
        if group not in GROUPS:
            from kite_lab.core.errors import InvalidInput

            raise InvalidInput(f"cannot group by {group!r}; use one of {', '.join(GROUPS)}")
        key = {"model": "model", "provider": "provider", "day": self._day(),
               "run": "run_id", "kind": "kind"}[group]
        query = query or LogQuery()
        where, params = self._where(query)
        llm = "kind = 'llm'"
        where = f"{where} AND {llm}" if where else f" WHERE {llm}"
        sql = (f"SELECT {key} AS g, COUNT(*), COALESCE(SUM(prompt_tokens), 0), "
               "COALESCE(SUM(completion_tokens), 0), "
               "SUM(CASE WHEN replayed = 0 THEN cost_usd END) "
               f"FROM {TABLE}{where} GROUP BY g ORDER BY g")
        with self._lock, self._errors():
            cur = self._conn().cursor()
            try:
                cur.execute(sql, params)
                return [(g, int(n), int(p), int(c), None if cost is None else float(cost))
                        for g, n, p, c, cost in cur.fetchall()]
            finally:
                cur.close()

    def close(self) -> None:
        with self._lock:
            self._drop_connection()


class SQLiteCallLog(CallLogStore):
    """``KITE_HOME/logs.db``: WAL, so readers in other processes never block the writer."""

    dialect = SQLITE

    def __init__(self, path: str | Path, *, pragmas: Sequence[str] = ()) -> None:
        super().__init__()
        self.path = Path(path).expanduser().absolute()
        #: extra ``PRAGMA`` statements run on every new connection
        self.pragmas = list(pragmas)

    def describe(self) -> str:
        return f"the call log {self.path}"

    def _connect(self) -> Any:
        import sqlite3

        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None,
                               check_same_thread=False)
        try:
            cur = conn.cursor()
            cur.execute("PRAGMA busy_timeout = 10000")
            for attempt in range(200):  # switching to WAL ignores the busy timeout
                try:
                    cur.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or attempt == 199:
                        raise
                    time.sleep(0.01)
            cur.execute("PRAGMA synchronous = NORMAL")
            for pragma in self.pragmas:
                cur.execute(f"PRAGMA {pragma}")
            cur.close()
        except BaseException:
            conn.close()
            raise
        return conn

    def _user_tables(self, cur: Any) -> list[str]:
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%'")
        return [row[0] for row in cur.fetchall()]

    @contextmanager
    def _transaction(self, conn: Any) -> Iterator[Any]:
        cur = conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself after some errors (full)
                try:
                    cur.execute("ROLLBACK")
                except Exception:
                    pass
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    def _day(self) -> str:
        return "strftime('%Y-%m-%d', ts, 'unixepoch')"

    def _translate(self, exc: Exception) -> CallLogError | None:
        import sqlite3

        if not isinstance(exc, sqlite3.Error):
            return None
        reason = str(exc) or type(exc).__name__
        if "full" in reason:
            return CallLogError(f"cannot write {self.describe()}: the disk is full ({reason}); "
                                "free some space or set KITE_CALL_LOG=none")
        if isinstance(exc, sqlite3.DatabaseError) and ("not a database" in reason
                                                       or "malformed" in reason):
            return CallLogError(
                f"{self.describe()} is corrupt or not an SQLite file ({reason}): move it aside "
                f"(mv {self.path} {self.path}.bad) to start a new log, or set KITE_CALL_LOG=none"
            )
        return CallLogError(f"{self.describe()} failed: {reason}; "
                            "set KITE_CALL_LOG=none to turn it off")
