"""Shared fixtures: isolation from the developer's environment, and the real services.

Tests that need Redis or Postgres skip with a reason when the server is absent, except
under KITE_REQUIRE_SERVICES=1 (set by .ci/run), where they fail instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PG_HOST, PG_PORT = "127.0.0.1", 5432

# Variables that would make tests depend on the machine they run on.
_ISOLATED_VARS = [
    "LLM_PROVIDER", "LLM_MODEL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GROQ_API_KEY",
    "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL", "GROQ_BASE_URL", "OLLAMA_BASE_URL",
    "REDIS_URL", "POSTGRES_URL", "CACHE_BACKEND", "BREAKER_BACKEND", "IDEMPOTENCY_BACKEND",
    "KITE_HOME", "KITE_API_KEYS", "KITE_API_KEYS_FILE", "KITE_RATE_LIMIT", "LOCAL_MODEL_PATH",
    "EMBEDDING_PROVIDER", "EMBEDDING_MODEL", "VECTOR_DIMENSION", "KITE_REDIS_PREFIX",
    "PROMETHEUS_MULTIPROC_DIR", "KITE_CALL_LOG", "KITE_CASSETTE", "KITE_CASSETTE_MODE",
    "OTEL_EXPORTER_OTLP_ENDPOINT", "KITE_LOG_PROMPTS", "KITE_FALLBACKS", "KITE_KEY_BUDGETS",
    "KITE_MODEL_ALIASES", "OPENAI_HTTP_BACKEND", "RAY_ADDRESS",
]


def services_required() -> bool:
    return os.environ.get("KITE_REQUIRE_SERVICES") == "1"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip (or fail under KITE_REQUIRE_SERVICES=1) when ``host:port`` does not answer."""
    if _reachable(host, port):
        return
    message = f"{name} is not reachable on {host}:{port}"
    if services_required():
        pytest.fail(f"{message} and KITE_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{message}; start it to run this test")


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No provider keys or backends from the developer's shell; cwd (and .kite) in tmp."""
    for name in _ISOLATED_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def redis_url() -> str:
    need_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses, so tests never see each other's keys."""
    return f"kitetest:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty database on the real server, dropped afterwards."""
    need_service("PostgreSQL", PG_HOST, PG_PORT)
    import psycopg

    admin = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
    name = f"kite_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
