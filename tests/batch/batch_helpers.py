"""Helpers shared by the batch tests (a uniquely named module, not a conftest import)."""

from __future__ import annotations

from typing import Any

from kite_lab import Kite
from kite_lab.batch import RetryPolicy
from kite_lab.testing import FakeLLMServer

KEY = "sk-test-batch-0123456789"
#: fast backoff so retry tests take milliseconds, not seconds
FAST = RetryPolicy(retries=2, initial=0.01, maximum=0.05)


def kite_config(server: FakeLLMServer, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "llm_provider": "openai",
        "llm_model": "gpt-4o-mini",
        "openai_api_key": KEY,
        "openai_base_url": server.openai_base_url,
        "cache_backend": "none",
        "breaker_backend": "memory",
    }
    config.update(extra)
    return config


def make_kite(server: FakeLLMServer, **extra: Any) -> Kite:
    return Kite(config=kite_config(server, **extra), env_file=None)


def llm_requests(server: FakeLLMServer) -> list[Any]:
    return [r for r in server.requests if r.wire == "openai"]
