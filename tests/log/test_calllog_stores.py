"""The store contract on real SQLite and real Postgres: write, filter, sum, migrate, refuse."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kite_lab import CallLogError
from kite_lab.log import CallRecord, LogQuery, SQLiteCallLog
from kite_lab.log.postgres_store import PostgresCallLog
from kite_lab.log.schema import SCHEMA_VERSION

# The first release's logs.db, as it wrote it (frozen here, not imported from schema.py).
V1_DDL = [
    "CREATE TABLE kite_schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    "INSERT INTO kite_schema_version VALUES ('calllog', 1)",
    "CREATE TABLE kite_calls (id {pk}, ts {real} NOT NULL, request_id TEXT, run_id TEXT, "
    "provider TEXT, model TEXT, params TEXT, messages TEXT, answer TEXT, prompt_tokens INTEGER, "
    "completion_tokens INTEGER, cost_usd {real}, latency_s {real}, "
    "cached INTEGER NOT NULL DEFAULT 0, error TEXT)",
    "CREATE INDEX kite_calls_ts ON kite_calls (ts)",
]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        made: Any = SQLiteCallLog(tmp_path / "logs.db")
    else:
        made = PostgresCallLog(request.getfixturevalue("postgres_url"))
    yield made
    made.close()


def _rows(now: float) -> list[CallRecord]:
    return [
        CallRecord(ts=now - 7200, model="gpt-4o", provider="openai", prompt_tokens=10,
                   completion_tokens=5, cost_usd=0.5, answer="old answer"),
        CallRecord(ts=now - 60, model="gpt-4o-mini", provider="openai", prompt_tokens=3,
                   completion_tokens=2, cost_usd=0.01, run_id="r1", answer="Invoice total"),
        CallRecord(ts=now - 30, model="gpt-4o-mini", provider="openai", cost_usd=None,
                   run_id="r1", error="ServerError", cached=True),
        CallRecord(ts=now - 20, model="gpt-4o-mini", provider="openai", prompt_tokens=1,
                   completion_tokens=1, cost_usd=0.25, replayed=True),
        CallRecord(ts=now - 10, kind="agent", name="calc", request_id="r1", run_id="r1"),
    ]


def test_write_filter_and_sum(store: Any) -> None:
    now = time.time()
    store.write(_rows(now))
    assert store.count() == 5
    assert [r.model for r in store.records(LogQuery(kind="llm"))] == [
        "gpt-4o", "gpt-4o-mini", "gpt-4o-mini", "gpt-4o-mini"]
    assert store.count(LogQuery(since=now - 3600)) == 4
    assert store.count(LogQuery(until=now - 3600)) == 1
    assert store.count(LogQuery(model="gpt-4o")) == 1
    assert store.count(LogQuery(run_id="r1")) == 3
    assert [r.answer for r in store.records(LogQuery(search="invoice"))] == ["Invoice total"]
    assert store.records(LogQuery(limit=1, newest_first=True))[0].kind == "agent"
    mini = store.records(LogQuery(model="gpt-4o-mini"))
    assert [(r.cached, r.replayed) for r in mini] == [(False, False), (True, False),
                                                      (False, True)]
    by_model = {g: (n, p, c, cost) for g, n, p, c, cost in store.cost_by("model")}
    assert by_model["gpt-4o"] == (1, 10, 5, 0.5)
    assert by_model["gpt-4o-mini"][:3] == (3, 4, 3)
    assert by_model["gpt-4o-mini"][3] == pytest.approx(0.01)  # replayed calls cost nothing
    [(day, calls, *_)] = store.cost_by("day", LogQuery(since=now - 100))
    assert calls == 3 and len(str(day)) == 10


def test_a_newer_schema_is_refused_with_the_fix(store: Any) -> None:
    store.write(_rows(time.time()))
    store.close()
    conn = store._connect()
    m = store.dialect.mark
    conn.cursor().execute(f"UPDATE kite_schema_version SET version = {m}",
                          (SCHEMA_VERSION + 1,))
    conn.commit() if store.dialect.name == "sqlite" else None
    conn.close()
    with pytest.raises(CallLogError, match="newer kite_lab.*upgrade kite-lab"):
        store.count()


def test_a_newer_kite_lab_opens_a_v1_log(store: Any) -> None:
    conn = store._connect()
    d = store.dialect
    cur = conn.cursor()
    for statement in V1_DDL:
        cur.execute(statement.format(pk=d.primary_key, real=d.real))
    cur.execute(f"INSERT INTO kite_calls (ts, model, prompt_tokens, cached) "
                f"VALUES ({d.mark}, {d.mark}, {d.mark}, 0)", (time.time(), "gpt-old", 7))
    if d.name == "sqlite":
        conn.commit()
    conn.close()
    assert store.schema_version() == SCHEMA_VERSION
    [old] = store.records()
    assert (old.model, old.prompt_tokens, old.kind, old.stream) == ("gpt-old", 7, "llm", False)
    store.write([CallRecord(ts=time.time(), kind="tool", name="add")])
    assert store.count(LogQuery(kind="tool")) == 1


def test_migrating_to_an_older_target_then_forward(store: Any) -> None:
    assert store.migrate(target=1) == 1
    assert store.migrate() == SCHEMA_VERSION
    assert store.schema_version() == SCHEMA_VERSION


def test_a_foreign_sqlite_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(CallLogError, match=r"logs\.db is not a kite_lab call log.*invoices"):
        SQLiteCallLog(path).count()


def test_a_corrupt_file_is_refused_naming_it_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CallLogError, match=r"logs\.db is corrupt.*move it aside"):
        SQLiteCallLog(path).count()


def test_a_foreign_kite_calls_table_in_postgres_is_refused(postgres_url: str) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE kite_calls (something TEXT)")
    store = PostgresCallLog(postgres_url)
    with pytest.raises(CallLogError, match="is not a kite_lab call log"):
        store.count()


def test_an_unreachable_postgres_names_the_fix_without_the_password() -> None:
    store = PostgresCallLog("postgresql://kite:s3cretpw@127.0.0.1:1/kite")
    with pytest.raises(CallLogError, match="POSTGRES_URL") as info:
        store.count()
    assert "s3cretpw" not in str(info.value) and "127.0.0.1:1" in str(info.value)


def test_two_first_opens_at_once_migrate_once(tmp_path: Path) -> None:
    import threading

    stores = [SQLiteCallLog(tmp_path / "logs.db") for _ in range(4)]
    threads = [threading.Thread(target=s.count) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(s.schema_version() == SCHEMA_VERSION for s in stores)
    for s in stores:
        s.close()
