"""Fixtures for the structured-output, image and MCP tests: Kites on the fake server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer

OPENAI_KEY = "sk-test-structured-0123456789"
ANTHROPIC_KEY = "sk-ant-test-structured-0123456789"
GROQ_KEY = "gsk_test_structured_0123456789"


def config_for(provider: str, server: FakeLLMServer, **extra: Any) -> dict[str, Any]:
    return {
        "llm_provider": provider,
        "cache_backend": "none",
        "breaker_backend": "memory",
        "openai_api_key": OPENAI_KEY,
        "openai_base_url": server.openai_base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
        "anthropic_base_url": server.anthropic_base_url,
        "groq_api_key": GROQ_KEY,
        "groq_base_url": server.openai_base_url,
        "ollama_base_url": server.openai_base_url,
        "llm_timeout": 10,
        **extra,
    }


@pytest.fixture
def make_kite(fake_llm: FakeLLMServer) -> Iterator[Callable[..., Kite]]:
    made: list[Kite] = []

    def make(provider: str = "openai", **extra: Any) -> Kite:
        kite = Kite(config=config_for(provider, fake_llm, **extra), env_file=None)
        made.append(kite)
        return kite

    yield make
    for kite in made:
        kite.close()
