"""The facade's reconfiguration: ``ai.config[key] = value`` rebuilds exactly what ``key``
feeds and keeps every other component (same object), with real components throughout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer, Reply

COMPONENTS = (
    "provider",
    "breaker",
    "cache",
    "idempotency",
    "kill_switch",
    "embeddings",
    "vector_memory",
    "session_memory",
)


def snapshot(ai: Kite) -> dict[str, object]:
    """Every component, built if it was not (the identity of each is what we compare)."""
    return {
        "provider": ai.provider(),
        "breaker": ai.circuit_breaker,
        "cache": ai.cache,
        "idempotency": ai.idempotency,
        "kill_switch": ai.kill_switch,
        "embeddings": ai.embeddings,
        "vector_memory": ai.vector_memory,
        "session_memory": ai.session_memory,
    }


@pytest.fixture
def ai(fake_llm: FakeLLMServer, tmp_path: Path) -> Iterator[Kite]:
    kite = Kite(
        config={
            "llm_provider": "openai",
            "openai_api_key": "sk-test-facade-0123456789",
            "openai_base_url": fake_llm.openai_base_url,
            "cache_backend": "memory",
            "breaker_backend": "memory",
            "idempotency_backend": "memory",
            "kite_home": str(tmp_path / "home"),
        },
        env_file=None,
    )
    yield kite
    kite.close()


@pytest.mark.parametrize(
    ("key", "value", "rebuilt"),
    [
        ("llm_model", "gpt-4o", {"provider"}),
        ("llm_timeout", 12.0, {"provider"}),
        ("openai_api_key", "sk-test-facade-other-0123", {"provider"}),
        ("cache_ttl", 17, {"cache"}),
        ("cache_max_entries", 50, {"cache"}),
        ("idempotency_ttl", 99, {"idempotency"}),
        ("breaker_backend", "memory", {"breaker", "kill_switch"}),
        (
            "redis_url",
            "redis://127.0.0.1:6379/0",
            {"breaker", "cache", "idempotency", "kill_switch"},
        ),
        ("embedding_model", "BAAI/bge-small-en-v1.5", {"embeddings", "vector_memory"}),
        ("vector_max_chunks", 1000, {"vector_memory"}),
        ("kite_log_prompts", True, set()),
        ("kite_max_prompt_chars", 5000, set()),
    ],
)
def test_a_setting_rebuilds_exactly_the_components_it_feeds(
    ai: Kite, key: str, value: Any, rebuilt: set[str]
) -> None:
    before = snapshot(ai)
    ai.config[key] = value
    after = snapshot(ai)
    changed = {name for name in COMPONENTS if after[name] is not before[name]}
    assert changed == rebuilt
    assert ai.config[key] == value or key.endswith("api_key")


def test_kite_home_moves_every_store_built_under_it(ai: Kite, tmp_path: Path) -> None:
    before = snapshot(ai)
    ai.config["kite_home"] = str(tmp_path / "elsewhere")
    after = snapshot(ai)
    changed = {name for name in COMPONENTS if after[name] is not before[name]}
    assert changed == {"embeddings", "vector_memory", "session_memory"}


def test_breaker_limits_change_in_place_keeping_the_breakers_state(ai: Kite) -> None:
    breaker = ai.circuit_breaker
    other = ai.breaker_for("anthropic")
    ai.config["circuit_breaker_threshold"] = 9
    ai.config["circuit_breaker_timeout"] = 42
    assert ai.circuit_breaker is breaker and ai.breaker_for("anthropic") is other
    assert breaker.config.failure_threshold == 9 and other.config.failure_threshold == 9
    assert breaker.config.timeout_seconds == 42


def test_rebuilt_components_use_the_new_value(ai: Kite, fake_llm: FakeLLMServer) -> None:
    ai.config["cache_ttl"] = 17
    assert ai.cache.default_ttl == 17

    second = FakeLLMServer().start()
    try:
        second.enqueue(Reply(text="from the second server"))
        fake_llm.enqueue(Reply(text="from the first server"))
        assert ai.complete("hi") == "from the first server"
        ai.config["openai_base_url"] = second.openai_base_url
        assert ai.complete("hi") == "from the second server"
        assert len(fake_llm.requests) == 1 and len(second.requests) == 1
    finally:
        second.stop()


def test_a_replaced_session_store_is_closed_and_its_data_stays(ai: Kite, tmp_path: Path) -> None:
    store = ai.session_memory
    store.add_message("s1", "user", "remember me")
    ai.config["kite_home"] = str(tmp_path / "home")  # same place: a new store, same file
    fresh = ai.session_memory
    assert fresh is not store
    assert [m.content for m in fresh.window("s1", max_messages=5)] == ["remember me"]


def test_components_are_built_on_first_use_only() -> None:
    ai = Kite(config={"cache_backend": "none"}, env_file=None)
    assert ai._components == {} and ai._providers == {} and ai._breakers == {}
    assert ai.response_cache() is None
    assert ai._components == {"cache": False}  # "built, disabled": not rebuilt on every call
    ai.config["cache_backend"] = "memory"
    assert ai.response_cache() is not None
