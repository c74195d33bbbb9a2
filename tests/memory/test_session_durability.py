"""Session store durability: SIGKILL mid-write and several writer processes, both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kite_lab.core.config import KiteSettings, load_settings
from kite_lab.memory.session_engine import database_url
from kite_lab.memory.sessions import build_session_store

WRITER = textwrap.dedent(
    """
    import sys
    from kite_lab.memory.sessions import SessionStore
    store = SessionStore(sys.argv[1])
    session, count = sys.argv[2], int(sys.argv[3])
    for i in range(count):
        message = store.add_message(session, "user", f"{session} message {i}")
        print(message.id, i, flush=True)  # acknowledged: add_message returned
    """
)


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> KiteSettings:
    values: dict[str, object] = {"kite_home": tmp_path / "home"}
    if request.param == "postgres":
        values["postgres_url"] = request.getfixturevalue("postgres_url")
    return load_settings(values, env_file=None)


def _writer(url: str, session: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, session, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_during_appends_loses_no_acknowledged_message(store_settings: KiteSettings) -> None:
    build_session_store(store_settings).close()  # schema in place before the race
    url = database_url(store_settings)
    proc = _writer(url, "crash", 1000)
    acked: dict[int, int] = {}
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    try:
        while len(acked) < 150 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            message_id, index = map(int, line.split())
            acked[index] = message_id
        os.kill(proc.pid, signal.SIGKILL)  # mid-write: no cleanup, no flush, no goodbye
    finally:
        proc.wait(timeout=30)
    for line in proc.stdout.read().splitlines():  # acks printed before the kill landed
        message_id, index = map(int, line.split())
        acked[index] = message_id
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert 150 <= len(acked) < 1000, "the writer must be killed halfway"

    store = build_session_store(store_settings)  # "after restart"
    try:
        stored = {m.id: m.content for m in store.get_history("crash")}
        for index, message_id in acked.items():
            assert stored.get(message_id) == f"crash message {index}"
        assert len(stored) in (len(acked), len(acked) + 1)  # at most one unacknowledged commit
        store.add_message("crash", "user", "the store still works")
    finally:
        store.close()


def test_concurrent_writer_processes_lose_nothing(store_settings: KiteSettings) -> None:
    build_session_store(store_settings).close()
    url = database_url(store_settings)
    procs = [_writer(url, "shared", 100) for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
    store = build_session_store(store_settings)
    try:
        history = store.get_history("shared")
        assert len(history) == 300
        assert len({m.id for m in history}) == 300
        counts: dict[str, int] = {}
        for message in history:
            counts[message.content] = counts.get(message.content, 0) + 1
        assert all(n == 3 for n in counts.values()) and len(counts) == 100
    finally:
        store.close()
