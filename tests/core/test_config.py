"""Settings: the guide's names and defaults, aliases, .env handling, ai.config."""

from __future__ import annotations

from pathlib import Path

import pytest
from guide_contract import GUIDE_VARIABLES

from kite_lab import ConfigError, EnvFileError, Kite
from kite_lab.core.config import KiteSettings, load_settings

GUIDE_DEFAULTS = {
    "circuit_breaker_threshold": 3,
    "circuit_breaker_timeout": 60,
    "idempotency_ttl": 3600,
    "vector_backend": "faiss",
    "vector_dimension": 384,
    "prometheus_port": 9090,
    "grafana_port": 3000,
    "embedding_provider": "fastembed",
}

# the guide's variables, plus the base-URL overrides, LOCAL_MODEL_PATH and KITE_HOME
ALL_VARIABLES = GUIDE_VARIABLES + [
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GROQ_BASE_URL",
    "OLLAMA_BASE_URL",
    "LOCAL_MODEL_PATH",
    "KITE_HOME",
]


def test_every_guide_variable_is_a_setting() -> None:
    fields = set(KiteSettings.model_fields)
    assert {v.lower() for v in ALL_VARIABLES} <= fields


def test_guide_defaults() -> None:
    settings = load_settings(env_file=None)
    for key, value in GUIDE_DEFAULTS.items():
        assert getattr(settings, key) == value, key
    assert settings.kite_home == Path(".kite")
    assert settings.redis_url is None and settings.postgres_url is None


def test_environment_variables_are_read(monkeypatch) -> None:
    monkeypatch.setenv("LLM_PROVIDER", "groq")
    monkeypatch.setenv("LLM_MODEL", "llama-3.3-70b-versatile")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379")
    monkeypatch.setenv("VECTOR_DIMENSION", "768")
    settings = load_settings(env_file=None)
    assert (settings.llm_provider, settings.llm_model) == ("groq", "llama-3.3-70b-versatile")
    assert settings.redis_url == "redis://redis:6379"
    assert settings.vector_dimension == 768


@pytest.mark.parametrize(
    ("variable", "field", "value"),
    [
        ("CIRCUIT_BREAKER_FAILURE_THRESHOLD", "circuit_breaker_threshold", 7),
        ("CIRCUIT_BREAKER_TIMEOUT_SECONDS", "circuit_breaker_timeout", 12.5),
    ],
)
def test_breaker_aliases(monkeypatch, variable, field, value) -> None:
    monkeypatch.setenv(variable, str(value))
    assert getattr(load_settings(env_file=None), field) == value


def test_dotenv_is_read_but_never_overrides_the_environment(tmp_path, monkeypatch) -> None:
    env = tmp_path / ".env"
    env.write_text("LLM_MODEL=from-dotenv\nGRAFANA_PORT=3100\n# a comment\n\n")
    monkeypatch.setenv("LLM_MODEL", "from-environment")
    settings = load_settings(env_file=str(env))
    assert settings.llm_model == "from-environment"
    assert settings.grafana_port == 3100


def test_malformed_dotenv_line_names_file_and_line(tmp_path) -> None:
    env = tmp_path / ".env"
    env.write_text("GOOD=1\n\nTHIS IS NOT VALID\n")
    with pytest.raises(EnvFileError) as info:
        load_settings(env_file=str(env))
    assert info.value.line == 3 and str(env) in str(info.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("circuit_breaker_threshold", 0, "greater than 0"),
        ("idempotency_ttl", "soon", "integer"),
        ("cache_backend", "memcached", "memory"),
        ("vector_dimension", -3, "greater than 0"),
    ],
)
def test_invalid_values_name_the_key_and_the_form(key, value, expected) -> None:
    with pytest.raises(ConfigError) as info:
        Kite(config={key: value}, env_file=None)
    assert key in str(info.value) and expected in str(info.value)


def test_invalid_environment_value_names_the_key(monkeypatch) -> None:
    monkeypatch.setenv("CIRCUIT_BREAKER_THRESHOLD", "three")
    with pytest.raises(ConfigError, match="circuit_breaker_threshold"):
        load_settings(env_file=None)


def test_ai_config_behaves_as_in_the_guide() -> None:
    ai = Kite(config={"llm_provider": "openai"}, env_file=None)
    assert ai.config["llm_provider"] == "openai"
    ai.config["cache_backend"] = "redis"
    ai.config["redis_url"] = "redis://redis:6379"
    assert ai.config["cache_backend"] == "redis"
    assert ai.settings.resolved_backend("cache") == "redis"
    with pytest.raises(ConfigError, match="circuit_breaker_threshold"):
        ai.config["circuit_breaker_threshold"] = -1
    assert ai.config["circuit_breaker_threshold"] == 3  # the bad value was not kept


def test_unknown_config_key_lists_the_valid_keys() -> None:
    with pytest.raises(KeyError) as info:
        Kite(config={"llm_providr": "openai"}, env_file=None)
    assert "llm_provider" in str(info.value) and "redis_url" in str(info.value)
    ai = Kite(env_file=None)
    with pytest.raises(KeyError, match="valid keys"):
        ai.config["nope"] = 1
    with pytest.raises(KeyError, match="valid keys"):
        ai.config["nope"]


def test_config_overrides_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("LLM_MODEL", "env-model")
    assert Kite(config={"llm_model": "mine"}, env_file=None).config["llm_model"] == "mine"


def test_secrets_are_masked_everywhere_they_are_shown(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123456")
    monkeypatch.setenv("POSTGRES_URL", "postgresql://kite:hunter2@db:5432/kite")
    ai = Kite(env_file=None)
    shown = repr(ai.config) + str(ai.settings.masked()) + repr(ai.config["openai_api_key"])
    assert "sk-secret-value-123456" not in shown and "hunter2" not in shown
    assert "postgresql://kite:***@db:5432/kite" in shown
    assert set(ai.settings.secret_values()) == {"sk-secret-value-123456", "hunter2"}


def test_redis_backend_without_redis_url_is_an_error() -> None:
    settings = load_settings({"breaker_backend": "redis"}, env_file=None)
    with pytest.raises(ConfigError, match="REDIS_URL"):
        settings.resolved_backend("breaker")


def test_backends_default_to_redis_when_redis_url_is_set() -> None:
    settings = load_settings({"redis_url": "redis://localhost:6379"}, env_file=None)
    assert [settings.resolved_backend(k) for k in ("breaker", "idempotency", "cache")] == [
        "redis"
    ] * 3
    settings = load_settings(env_file=None)
    assert [settings.resolved_backend(k) for k in ("breaker", "idempotency", "cache")] == [
        "memory"
    ] * 3
