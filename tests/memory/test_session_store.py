"""The session store contract, run against SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from kite_lab.core.config import KiteSettings, load_settings
from kite_lab.core.errors import ConfigError, InvalidInput, StoreError, StoreUnavailable
from kite_lab.core.events import EventBus
from kite_lab.core.types import Message, ToolCall
from kite_lab.memory.session_engine import database_url
from kite_lab.memory.session_models import MessageRow, MigrationRow, SessionRow, migrate
from kite_lab.memory.sessions import (
    SessionStore,
    StoredMessage,
    build_session_store,
    check_database,
)


@pytest.fixture(params=["sqlite", "postgres"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> KiteSettings:
    values: dict[str, object] = {"kite_home": tmp_path / "home"}
    if request.param == "postgres":
        values["postgres_url"] = request.getfixturevalue("postgres_url")
    return load_settings(values, env_file=None)


@pytest.fixture
def store(store_settings: KiteSettings, events: EventBus) -> Iterator[SessionStore]:
    store = build_session_store(store_settings, events)
    yield store
    store.close()


def test_append_and_history_per_session(store: SessionStore) -> None:
    first = store.add_message("s1", "user", "Hello there", {"lang": "en"})
    assert isinstance(first, StoredMessage) and first.id > 0
    store.add_message("s2", "user", "other session")
    store.add_message("s1", "assistant", "Hi! How can I help?")
    history = store.get_history("s1")
    assert [(m.role, m.content) for m in history] == [
        ("user", "Hello there"),
        ("assistant", "Hi! How can I help?"),
    ]
    assert history[0].metadata == {"lang": "en"} and history[1].metadata == {}
    assert history[0].id < history[1].id and history[0]["role"] == "user"
    assert history[0].tokens == 3  # 11 characters, about 4 per token
    assert store.get_history("s2")[0].content == "other session"
    assert store.get_history("never-used") == []


def test_last_n_messages_and_token_counts(store: SessionStore) -> None:
    for i in range(10):
        store.add_message("s", "user" if i % 2 == 0 else "assistant", f"message {i}")
    store.add_message("s", "tool", "tool output", tokens=42)
    last = store.get_history("s", max_messages=3)
    assert [m.content for m in last] == ["message 8", "message 9", "tool output"]
    assert last[-1].tokens == 42
    assert store.count_messages("s") == 11 and store.count_messages() == 11


def test_list_clear_delete(store: SessionStore) -> None:
    store.add_message("a", "user", "aaaa")
    store.add_message("b", "user", "bbbbbbbb")
    store.add_message("b", "assistant", "b")
    sessions = store.list_sessions()
    assert [s.session_id for s in sessions] == ["b", "a"]  # most recently used first
    assert (sessions[0].messages, sessions[0].tokens) == (2, 3)
    assert sessions[0].to_dict()["session_id"] == "b"
    assert store.clear_session("b") == 2
    assert store.get_history("b") == []
    assert {s.session_id: s.messages for s in store.list_sessions()} == {"a": 1, "b": 0}
    assert store.delete_session("a") == 1
    assert store.delete_session("a") == 0
    assert [s.session_id for s in store.list_sessions()] == ["b"]


def test_window_by_messages_and_tokens(store: SessionStore) -> None:
    store.add_message("w", "system", "You are terse.", tokens=5)
    store.add_message("w", "user", "question one", tokens=10)
    store.add_message("w", "assistant", "answer one", tokens=10)
    store.add_message("w", "user", "question two", tokens=10)
    window = store.window("w", max_messages=2)
    assert all(isinstance(m, Message) for m in window)
    assert [m.content for m in window] == ["answer one", "question two"]
    assert [m.content for m in store.window("w", max_tokens=25)] == ["answer one", "question two"]
    assert len(store.window("w", max_tokens=35)) == 4
    assert store.window("w", max_tokens=9) == []  # the budget is strict
    assert [m.role for m in store.window("w")] == ["system", "user", "assistant", "user"]


def test_tool_calls_round_trip(store: SessionStore) -> None:
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    stored = store.add_messages(
        "t",
        [
            {"role": "user", "content": "weather?"},
            Message("assistant", "", tool_calls=[call]),
            Message("tool", "sunny", name="get_weather", tool_call_id="call_1"),
        ],
    )
    assert [m.role for m in stored] == ["user", "assistant", "tool"]
    window = store.window("t")
    assert window[1].tool_calls == [call]
    assert (window[2].name, window[2].tool_call_id) == ("get_weather", "call_1")


def test_bad_input(store: SessionStore) -> None:
    with pytest.raises(InvalidInput, match="system, user, assistant, tool"):
        store.add_message("s", "robot", "beep")
    with pytest.raises(TypeError, match="content must be a str"):
        store.add_message("s", "user", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="session_id must be a str"):
        store.add_message(7, "user", "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="session_id is empty"):
        store.get_history("")
    with pytest.raises(InvalidInput, match="max_messages must be at least 1"):
        store.get_history("s", max_messages=0)
    with pytest.raises(InvalidInput, match="max_tokens"):
        store.window("s", max_tokens=-1)
    with pytest.raises(TypeError, match="JSON-serializable"):
        store.add_message("s", "user", "x", {"obj": object()})
    assert store.count_messages() == 0


def test_events_have_no_content(store: SessionStore, events: EventBus) -> None:
    store.add_message("e", "user", "my secret plan")
    store.clear_session("e")
    append = events.history("session:append")[0]
    assert append.data["session_id"] == "e" and append.data["chars"] == 14
    assert "secret" not in repr([e.data for e in events.history()])
    assert [e.name for e in events.history("session:*")] == ["session:append", "session:clear"]


async def test_async_forms(store: SessionStore) -> None:
    await store.aadd_message("as", "user", "async hello")
    history = await store.aget_history("as")
    assert history[0].content == "async hello"
    assert [s.session_id for s in await store.alist_sessions()] == ["as"]
    assert (await store.awindow("as"))[0].content == "async hello"
    assert await store.adelete_session("as") == 1


def test_threads_append_concurrently(store: SessionStore) -> None:
    def work(t: int) -> None:
        for i in range(40):
            store.add_message("shared", "user", f"t{t}-{i}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    contents = [m.content for m in store.get_history("shared")]
    assert len(contents) == 160
    for t in range(4):
        mine = [c for c in contents if c.startswith(f"t{t}-")]
        assert mine == [f"t{t}-{i}" for i in range(40)]  # each writer's order is kept


def test_schema_is_versioned_and_matches_the_models(
    store: SessionStore, store_settings: KiteSettings
) -> None:
    store.add_message("v", "user", "x")
    assert store.schema_version() == 2
    engine = sa.create_engine(database_url(store_settings))
    try:
        inspector = sa.inspect(engine)
        for model in (SessionRow, MessageRow, MigrationRow):
            table = model.__table__
            assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.c.keys())
        with engine.connect() as conn:
            versions = conn.execute(sa.text("SELECT version FROM kite_schema_migrations")).all()
        assert sorted(v[0] for v in versions) == [1, 2]
    finally:
        engine.dispose()


def test_old_database_is_upgraded_in_place(store_settings: KiteSettings) -> None:
    url = database_url(store_settings)
    if url.startswith("sqlite"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        assert migrate(conn, target=1) == (0, 1)  # a database from the first release
        conn.execute(sa.text("INSERT INTO kite_sessions VALUES ('old', 1.0, 1.0)"))
        conn.execute(
            sa.text(
                "INSERT INTO kite_messages (session_id, role, content, metadata_json, created_at) "
                "VALUES ('old', 'user', 'twelve chars', NULL, 1.0)"
            )
        )
    engine.dispose()
    store = build_session_store(store_settings)
    try:
        history = store.get_history("old")
        assert [(m.content, m.tokens) for m in history] == [("twelve chars", 3)]  # backfilled
        assert store.schema_version() == 2
        store.add_message("old", "assistant", "still works")
        assert store.count_messages("old") == 2
    finally:
        store.close()


def test_newer_database_is_refused(store_settings: KiteSettings) -> None:
    store = build_session_store(store_settings)
    store.add_message("n", "user", "x")
    store.close()
    engine = sa.create_engine(database_url(store_settings))
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO kite_schema_migrations VALUES (99, 'future', 0)"))
    engine.dispose()
    with pytest.raises(StoreError, match="upgrade kite-lab"):
        build_session_store(store_settings).get_history("n")


def test_check_database(store_settings: KiteSettings, store: SessionStore) -> None:
    ok, message = check_database(store_settings)
    assert ok, message
    store.add_message("c", "user", "x")
    ok, message = check_database(store_settings)
    assert ok and "schema version 2" in message


def test_unreachable_postgres_names_host_and_port_not_password(tmp_path: Path) -> None:
    settings = load_settings(
        {"postgres_url": "postgresql://kite:hunter2secret@127.0.0.1:1/kite"}, env_file=None
    )
    store = build_session_store(settings)  # nothing connects yet
    with pytest.raises(StoreUnavailable) as info:
        store.add_message("s", "user", "x")
    message = str(info.value)
    assert "127.0.0.1:1" in message and "hunter2secret" not in message
    assert "POSTGRES_URL" in message
    ok, doctor = check_database(settings)
    assert not ok and "127.0.0.1:1" in doctor and "hunter2secret" not in doctor


def test_postgres_url_forms() -> None:
    def url(value: str) -> str:
        return database_url(load_settings({"postgres_url": value}, env_file=None))

    assert url("postgresql://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"
    assert url("postgres://u:p@h/d") == "postgresql+psycopg://u:p@h/d"
    with pytest.raises(ConfigError, match="not a PostgreSQL URL") as info:
        url("mysql://u:topsecret@h/d")
    assert "topsecret" not in str(info.value)
