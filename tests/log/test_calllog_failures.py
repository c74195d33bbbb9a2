"""The log is never why a call fails: a corrupt or foreign logs.db, a full disk, a writer
that falls behind, a wrong setting -> a warning and a counter; the call succeeds.
Readers of such a log get a CallLogError naming the file and the fix."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from kite_lab import CallLogError
from kite_lab.frames import calls_df
from kite_lab.log import CallLog, CallLogWarning, CallRecord, SQLiteCallLog
from kite_lab.log.writer import LogWriter


def test_a_corrupt_logs_db_warns_naming_the_file_and_the_call_succeeds(make_kite: Any) -> None:
    Path(".kite").mkdir()
    Path(".kite/logs.db").write_bytes(b"definitely not sqlite" * 200)
    ai = make_kite()
    with pytest.warns(CallLogWarning, match=r"logs\.db is corrupt.*move it aside"):
        assert ai.complete("still answered").startswith("Echo")
        assert ai.call_log.flush()
    assert ai.call_log.stats()["errors"] == 1 and ai.call_log.stats()["written"] == 0
    with pytest.raises(CallLogError, match=r"logs\.db is corrupt"):
        calls_df(ai)
    assert len(calls_df(ai, persisted=False)) == 1  # the events still know


def test_a_foreign_logs_db_warns_and_the_call_succeeds(make_kite: Any) -> None:
    Path(".kite").mkdir()
    with sqlite3.connect(".kite/logs.db") as conn:
        conn.execute("CREATE TABLE recipes (name TEXT)")
    ai = make_kite()
    with pytest.warns(CallLogWarning, match="not a kite_lab call log.*recipes"):
        ai.complete("hello")
        ai.call_log.flush()
    with sqlite3.connect(".kite/logs.db") as conn:  # the user's file is left as it was
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master")]
    assert tables == ["recipes"]


def test_disk_full_while_logging_is_a_warning_and_a_counter(make_kite: Any) -> None:
    ai = make_kite(kite_log_prompts=True)
    ai.call_log.store.pragmas.append("max_page_count = 8")  # SQLITE_FULL past 8 pages
    big = "x" * 3000
    with pytest.warns(CallLogWarning, match="disk is full"):
        for i in range(12):
            assert ai.complete(f"{big} {i}").startswith("Echo")
            ai.call_log.flush()
    stats = ai.call_log.stats()
    assert stats["errors"] >= 1 and stats["written"] >= 1
    assert stats["written"] + stats["errors"] == 12


def test_a_writer_that_falls_behind_drops_rows_and_never_blocks(tmp_path: Path) -> None:
    release = threading.Event()

    class SlowStore(SQLiteCallLog):
        def write(self, records: Any) -> None:
            release.wait(10)
            super().write(records)

    store = SlowStore(tmp_path / "logs.db")
    log = CallLog(store, writer=LogWriter(queue_size=5))
    item = ("map", time.time(), "map:row", {"map_id": "m", "row_id": "r"}, (None, None))
    started = time.perf_counter()
    with pytest.warns(CallLogWarning, match="queue is full"):
        for _ in range(50):
            log._submit(item)
    assert time.perf_counter() - started < 0.5  # never waited for the stuck writer
    release.set()
    assert log.flush()
    stats = log.stats()
    assert stats["dropped"] >= 40 and stats["written"] + stats["dropped"] == 50
    assert store.count() == stats["written"]
    store.close()


def test_postgres_log_without_postgres_url_warns_and_the_call_succeeds(make_kite: Any) -> None:
    ai = make_kite(kite_call_log="postgres")
    with pytest.warns(CallLogWarning, match="KITE_CALL_LOG=postgres needs POSTGRES_URL"):
        assert ai.complete("hi").startswith("Echo")
    assert ai.call_log is None


def test_an_unreachable_postgres_log_warns_without_the_password(make_kite: Any) -> None:
    ai = make_kite(kite_call_log="postgres",
                   postgres_url="postgresql://kite:pw-s3cret@127.0.0.1:1/kite")
    with pytest.warns(CallLogWarning, match="cannot reach") as caught:
        assert ai.complete("hi").startswith("Echo")
        ai.call_log.flush()
    assert all("pw-s3cret" not in str(w.message) for w in caught)


def test_a_record_that_cannot_be_serialized_is_counted(tmp_path: Path) -> None:
    store = SQLiteCallLog(tmp_path / "logs.db")
    log = CallLog(store, writer=LogWriter())
    with pytest.warns(CallLogWarning):
        log._submit(("agent", "not-a-time", None, None, None, None, None))
        log.flush()
    store.write([CallRecord(ts=time.time())])
    assert log.stats()["errors"] == 1 and store.count() == 1
    store.close()
