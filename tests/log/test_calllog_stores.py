"""The store contract on real SQLite and real Postgres: write, filter, sum, migrate, refuse."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest
from kite_lab.log import CallRecord, LogQuery
from kite_lab.log.postgres_store import PostgresCallLog
from kite_lab.log.schema import SCHEMA_VERSION
from kite_lab.log.sqlite_store import SQLiteCallLog

from kite_lab import CallLogError


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator:
    if request.param == "sqlite":
        made = SQLiteCallLog(tmp_path / "logs.db")
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
        CallRecord(ts=now - 10, kind="agent", name="calc", request_id="r1", run_id="r1"),
    ]


def test_write_filter_and_sum(store) -> None:
    now = time.time()
    store.write(_rows(now))
    assert store.count() == 4
    assert [r.model for r in store.records(LogQuery(kind="llm"))] == [
        "gpt-4o", "gpt-4o-mini", "gpt-4o-mini"]
    assert store.count(LogQuery(since=now - 3600)) == 3
    assert store.count(LogQuery(until=now - 3600)) == 1
    assert store.count(LogQuery(model="gpt-4o")) == 1
    assert store.count(LogQuery(run_id="r1")) == 3
    assert [r.answer for r in store.records(LogQuery(search="invoice"))] == ["Invoice total"]
    newest = store.records(LogQuery(limit=1, newest_first=True))
    assert newest[0].kind == "agent"
    cached = store.records(LogQuery(error=None) if False else LogQuery(model="gpt-4o-mini"))
    assert [r.cached for r in cached] == [False, True]
    by_model = {g: (calls, p, c, cost) for g, calls, p, c, cost in store.cost_by("model")}
    assert by_model["gpt-4o"] == (1, 10, 5, 0.5)
    assert by_model["gpt-4o-mini"][:3] == (2, 3, 2)
    assert by_model["gpt-4o-mini"][3] == pytest.approx(0.01)
    [(day, calls, *_)] = store.cost_by("day", LogQuery(since=now - 100))
    assert calls == 2 and len(str(day)) == 10


def test_a_newer_schema_is_refused_with_the_fix(store) -> None:
    store.write(_rows(time.time()))
    conn = store._conn()
    mark = store.dialect.mark
    conn.cursor().execute(
        f"UPDATE kite_calllog_meta SET value = {mark} WHERE key = 'schema_version'",
        (str(SCHEMA_VERSION + 1),),
    )
    conn.commit()
    store.close()
    with pytest.raises(CallLogError, match="newer kite_lab.*upgrade kite-lab"):
        store.count()


def test_a_newer_kite_lab_opens_an_older_log(store) -> None:
    assert store.migrate(target=1) == 1  # the log as the first release wrote it
    conn = store._conn()
    m = store.dialect.mark
    conn.cursor().execute(
        f"INSERT INTO kite_calls (ts, model, prompt_tokens, cached) VALUES ({m}, {m}, {m}, 0)",
        (time.time(), "gpt-old", 7),
    )
    conn.commit()
    store.close()
    assert store.migrate() == SCHEMA_VERSION
    [old] = store.records()
    assert (old.model, old.prompt_tokens, old.kind, old.stream) == ("gpt-old", 7, "llm", False)
    store.write([CallRecord(ts=time.time(), kind="tool", name="add")])
    assert store.count(LogQuery(kind="tool")) == 1


def test_a_foreign_sqlite_file_is_refused_naming_it(tmp_path) -> None:
    path = tmp_path / "logs.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(CallLogError, match=r"logs\.db is not a kite_lab call log.*invoices"):
        SQLiteCallLog(path).count()


def test_a_corrupt_file_is_refused_naming_it_and_the_fix(tmp_path) -> None:
    path = tmp_path / "logs.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(CallLogError, match=r"logs\.db.*move it aside"):
        SQLiteCallLog(path).count()


def test_a_foreign_kite_calls_table_in_postgres_is_refused(postgres_url) -> None:
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE kite_calls (something TEXT)")
    with pytest.raises(CallLogError, match="is not a kite_lab call log"):
        PostgresCallLog(postgres_url).count()


def test_an_unreachable_postgres_names_the_fix_without_the_password() -> None:
    store = PostgresCallLog("postgresql://kite:s3cretpw@127.0.0.1:1/kite")
    with pytest.raises(CallLogError, match="POSTGRES_URL") as info:
        store.count()
    assert "s3cretpw" not in str(info.value)
