"""checkpoint=: finished rows are committed before they count; a rerun asks only the rest.
Real SQLite files and a real Postgres database; a real subprocess killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import FAKE_KEY, llm_calls

from kite_lab import StoreError
from kite_lab.batch.checkpoint import TABLE
from kite_lab.testing import Fault, Reply

pytestmark = pytest.mark.timeout(120)


def stored(path: str | Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])


def test_a_rerun_calls_nothing_and_returns_the_whole_frame(ai: Any, fake_llm: Any) -> None:
    rows = [f"r{i}" for i in range(10)]
    first = ai.map(rows, "Say {text}", checkpoint="run.sqlite", progress=False)
    assert llm_calls(fake_llm) == 10 and stored("run.sqlite") == 10
    again = ai.map(rows, "Say {text}", checkpoint="run.sqlite", progress=False)
    assert llm_calls(fake_llm) == 10
    assert again["answer"].tolist() == first["answer"].tolist()
    assert again["_row_key"].tolist() == first["_row_key"].tolist()
    assert again["_cached"].all() and again["_error"].isna().all()
    assert again["_cost_usd"].tolist() == pytest.approx(first["_cost_usd"].tolist())


def test_failed_rows_are_asked_again_finished_ones_never(ai: Any, fake_llm: Any) -> None:
    fake_llm.set_handler(lambda r: Fault(status=400) if "r3" in r.last_user_text
                         else Reply(text="ok"))
    rows = [f"r{i}" for i in range(6)]
    first = ai.map(rows, "Say {text}", checkpoint="run.sqlite", progress=False)
    assert first["_error"].notna().tolist() == [False, False, False, True, False, False]
    fake_llm.set_handler(None)
    fake_llm.clear_requests()
    second = ai.map(rows, "Say {text}", checkpoint="run.sqlite", progress=False)
    assert llm_calls(fake_llm) == 1 and fake_llm.requests[0].last_user_text == "Say r3"
    assert second["_error"].isna().all()
    assert second["answer"].tolist() == ["ok"] * 3 + ["Echo: Say r3"] + ["ok"] * 2


def test_changed_prompt_or_model_is_another_run(ai: Any, fake_llm: Any) -> None:
    rows = ["a", "b"]
    base = ai.map(rows, "Say {text}", checkpoint="run.sqlite", progress=False)
    other_prompt = ai.map(rows, "Tell {text}", checkpoint="run.sqlite", progress=False)
    other_model = ai.map(rows, "Say {text}", model="gpt-4.1-nano", checkpoint="run.sqlite",
                         progress=False)
    other_params = ai.map(rows, "Say {text}", temperature=0.3, checkpoint="run.sqlite",
                          progress=False)
    other_system = ai.map(rows, "Say {text}", system="x", checkpoint="run.sqlite",
                          progress=False)
    keys = [set(f["_row_key"]) for f in (base, other_prompt, other_model, other_params,
                                         other_system)]
    assert len(set().union(*keys)) == 10  # five runs, two rows each, no key shared
    assert llm_calls(fake_llm) == 10
    assert other_prompt["answer"].tolist() == ["Echo: Tell a", "Echo: Tell b"]
    assert not other_model["_cached"].any()
    assert stored("run.sqlite") == 10


def test_a_checkpoint_of_another_run_or_version_is_reused_by_nobody(
        ai: Any, fake_llm: Any) -> None:
    with sqlite3.connect("old.sqlite") as conn:  # another version's table, another run's rows
        conn.execute("CREATE TABLE kite_map_rows_v0 (k TEXT, answer BLOB)")
        conn.execute("INSERT INTO kite_map_rows_v0 VALUES ('x', 'stale')")
        conn.execute(f"CREATE TABLE {TABLE} (key TEXT PRIMARY KEY, record TEXT NOT NULL, "
                     "created REAL NOT NULL)")
        conn.execute(f"INSERT INTO {TABLE} VALUES ('{'0' * 64}', '{{\"output\": \"x\"}}', 0)")
    out = ai.map(["a", "b"], "Say {text}", checkpoint="old.sqlite", progress=False)
    assert out["answer"].tolist() == ["Echo: Say a", "Echo: Say b"]
    assert llm_calls(fake_llm) == 2 and stored("old.sqlite") == 3


def test_a_file_that_is_not_a_database_is_a_store_error_naming_it(ai: Any) -> None:
    Path("notes.txt").write_text("not sqlite at all\n" * 200)
    with pytest.raises(StoreError, match="cannot use notes.txt as an ai.map checkpoint"):
        ai.map(["a"], "Say {text}", checkpoint="notes.txt", progress=False)


@pytest.mark.services
def test_postgres_checkpoint_resumes(ai: Any, fake_llm: Any, postgres_url: str) -> None:
    rows = [f"r{i}" for i in range(8)]
    fake_llm.set_handler(lambda r: Fault(status=400) if r.last_user_text.endswith("5")
                         else Reply(text="ok"))
    first = ai.map(rows, "Say {text}", checkpoint=postgres_url, progress=False)
    assert first["_error"].notna().sum() == 1
    fake_llm.set_handler(None)
    fake_llm.clear_requests()
    second = ai.map(rows, "Say {text}", checkpoint=postgres_url, progress=False)
    assert llm_calls(fake_llm) == 1
    assert second["_error"].isna().all() and second["_cached"].sum() == 7
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0] == 8


def test_an_unreachable_postgres_fails_before_any_call(ai: Any, fake_llm: Any) -> None:
    from kite_lab import StoreUnavailable

    url = "postgresql://postgres:hunter2secret@127.0.0.1:1/nowhere"
    with pytest.raises(StoreUnavailable) as caught:
        ai.map(["a"], "Say {text}", checkpoint=url, progress=False)
    assert "hunter2secret" not in str(caught.value) and "***" in str(caught.value)
    assert llm_calls(fake_llm) == 0


async def test_cancelling_keeps_the_finished_rows(ai: Any, fake_llm: Any) -> None:
    fake_llm.latency = 0.1
    rows = [f"r{i}" for i in range(12)]
    done: list[Any] = []
    ai.event_bus.subscribe("map:row", done.append)
    task = asyncio.ensure_future(ai.amap(rows, "Say {text}", checkpoint="run.sqlite",
                                         concurrency=2, progress=False))
    while len(done) < 4:
        await asyncio.sleep(0.01)
    task.cancel()  # what Ctrl-C in a notebook does (run_sync cancels the coroutine)
    with pytest.raises(asyncio.CancelledError):
        await task
    finished = len(done)
    assert stored("run.sqlite") == finished
    assert ai.event_bus.history("map:done")[-1].data["status"] == "cancelled"
    fake_llm.latency = 0
    fake_llm.clear_requests()
    out = await ai.amap(rows, "Say {text}", checkpoint="run.sqlite", progress=False)
    assert llm_calls(fake_llm) == 12 - finished
    assert out["_error"].isna().all() and out["_cached"].sum() == finished


_CHILD = textwrap.dedent("""
    import sys
    from kite_lab import Kite
    url, checkpoint, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ai = Kite(config={"llm_provider": "openai", "openai_api_key": %r,
                      "openai_base_url": url, "cache_backend": "none"}, env_file=None)
    ai.map([f"row {i}" for i in range(n)], "Say {text}", checkpoint=checkpoint,
           concurrency=8, progress=False)
    print("finished")
""") % FAKE_KEY


def test_kill_9_at_half_way_then_rerun_pays_each_row_exactly_once(
        make_ai: Any, fake_llm: Any, tmp_path: Path) -> None:
    """A child process maps 60 rows; at ~50% the server holds every new request (they stay
    in flight), the test waits until every answered row is committed and kills the child
    with SIGKILL. The rerun answers the rest: answered calls == rows, exactly."""
    n, answered = 60, []
    hold, gone = threading.Event(), threading.Event()
    lock = threading.Lock()

    async def handler(request: Any) -> Reply | Fault:
        if hold.is_set():  # in flight until the child is gone; its answer never arrives
            while not gone.is_set():
                await asyncio.sleep(0.01)
            return Fault(status=500)
        with lock:
            answered.append(request.last_user_text)
        return Reply(text=f"ok {request.last_user_text}", latency=0.005)

    fake_llm.set_handler(handler)
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    checkpoint = tmp_path / "kill.sqlite"
    child = subprocess.Popen([sys.executable, str(script), fake_llm.openai_base_url,
                              str(checkpoint), str(n)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": "."})
    try:
        deadline = time.monotonic() + 60
        while len(answered) < n // 2:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the child made no progress"
            time.sleep(0.005)
        hold.set()
        while (not checkpoint.exists() or stored(checkpoint) < len(answered)
               or llm_calls(fake_llm) == len(answered)):  # committed, and some held in flight
            assert time.monotonic() < deadline, "answered rows were not committed"
            time.sleep(0.01)
        in_flight = llm_calls(fake_llm) - len(answered)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    done_at_kill = stored(checkpoint)
    assert n // 2 <= done_at_kill < n and in_flight > 0  # killed half way, calls in flight
    gone.set()
    hold.clear()
    ai = make_ai(cache_backend="none")
    out = ai.map([f"row {i}" for i in range(n)], "Say {text}", checkpoint=str(checkpoint),
                 progress=False)
    assert len(answered) == n  # every row answered (paid) exactly once over both runs
    assert sorted(answered) == sorted(f"Say row {i}" for i in range(n))
    assert out["_error"].isna().all()
    assert out["answer"].tolist() == [f"ok Say row {i}" for i in range(n)]
    assert int(out["_cached"].sum()) == done_at_kill
