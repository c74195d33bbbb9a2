"""The documented backup strategy, tested end to end: dump, lose everything, restore, reload.

deploy/kite_backup.py dumps Postgres (pg_dump) and copies KITE_HOME's SQLite files and
FAISS index consistently; restoring into an empty database and an empty KITE_HOME gives
a Kite that sees the same sessions and finds the same documents.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import need_binary

from kite_lab import Kite

pytestmark = pytest.mark.timeout(180)

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kite_backup.py"


def run_script(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.services
def test_postgres_sessions_dump_and_restore(postgres_url, tmp_path):
    need_binary("pg_dump", "postgresql-client")
    need_binary("psql", "postgresql-client")
    live = Kite(
        config={"postgres_url": postgres_url, "kite_home": str(tmp_path / "home")}, env_file=None
    )
    live.session_memory.add_message("s1", "user", "remember the blue door")
    live.session_memory.add_message("s1", "assistant", "noted")
    live.session_memory.add_message("s2", "user", "another session")
    live.close()
    backup_dir = Path(
        run_script(
            "backup",
            str(tmp_path / "backups"),
            "--postgres-url",
            postgres_url,
            "--kite-home",
            str(tmp_path / "none"),
        )
    )
    assert (backup_dir / "postgres.sql").stat().st_size > 0

    admin = postgres_url.rsplit("/", 1)[0] + "/postgres"
    fresh = f"kite_restore_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{fresh}"')
    restored_url = postgres_url.rsplit("/", 1)[0] + f"/{fresh}"
    try:
        run_script(
            "restore",
            str(backup_dir),
            "--postgres-url",
            restored_url,
            "--kite-home",
            str(tmp_path / "none"),
        )
        restored = Kite(
            config={"postgres_url": restored_url, "kite_home": str(tmp_path / "h2")}, env_file=None
        )
        history = restored.session_memory.get_history("s1")
        assert [(m.role, m.content) for m in history] == [
            ("user", "remember the blue door"),
            ("assistant", "noted"),
        ]
        assert restored.session_memory.count_messages() == 3
        restored.close()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')


def test_kite_home_sqlite_and_faiss_copied_and_reloaded(tmp_path):
    home = tmp_path / "home"
    live = Kite(config={"kite_home": str(home)}, env_file=None)
    live.session_memory.add_message("s1", "user", "the launch code is in the red folder")
    memory = live.vector_memory
    memory.add_document("doc-cats", "Cats sleep for most of the day and purr when content.")
    memory.add_document("doc-rust", "Rust's borrow checker enforces memory safety at compile time.")
    expected = [h.doc_id for h in memory.search("which animal purrs?", top_k=2)]
    backup_dir = Path(run_script("backup", str(tmp_path / "backups"), "--kite-home", str(home)))
    live.close()
    saved = {
        p.relative_to(backup_dir / "kite_home").as_posix()
        for p in (backup_dir / "kite_home").rglob("*")
        if p.is_file()
    }
    assert "sessions.db" in saved and any(s.endswith("index.faiss") for s in saved)
    assert not any(s.startswith("models/") or s.endswith(".lock") for s in saved)

    new_home = tmp_path / "restored"
    run_script("restore", str(backup_dir), "--kite-home", str(new_home))
    restored = Kite(config={"kite_home": str(new_home)}, env_file=None)
    assert [m.content for m in restored.session_memory.get_history("s1")] == [
        "the launch code is in the red folder"
    ]
    assert restored.vector_memory.count_documents() == 2
    hits = restored.vector_memory.search("which animal purrs?", top_k=2)
    assert [h.doc_id for h in hits] == expected and expected[0] == "doc-cats"
    restored.close()
