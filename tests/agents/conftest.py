"""Fixtures for the agent tests: a Kite pointed at the fake server in either wire format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer

OPENAI_KEY = "sk-test-agents-0123456789"
ANTHROPIC_KEY = "sk-ant-test-agents-0123456789"


def kite_config(server: FakeLLMServer, wire: str, **extra: Any) -> dict[str, Any]:
    if wire == "openai":
        config = {
            "llm_provider": "openai",
            "openai_api_key": OPENAI_KEY,
            "openai_base_url": server.openai_base_url,
        }
    else:
        config = {
            "llm_provider": "anthropic",
            "anthropic_api_key": ANTHROPIC_KEY,
            "anthropic_base_url": server.anthropic_base_url,
        }
    config.update(cache_backend="none", breaker_backend="memory")
    config.update(extra)
    return config


@pytest.fixture(params=["openai", "anthropic"])
def wire(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_kite(fake_llm: FakeLLMServer, wire: str) -> Iterator[Callable[..., Kite]]:
    made: list[Kite] = []

    def make(**extra: Any) -> Kite:
        kite = Kite(config=kite_config(fake_llm, wire, **extra))
        made.append(kite)
        return kite

    yield make
    for kite in made:
        kite.close()


@pytest.fixture
def ai(make_kite: Callable[..., Kite]) -> Kite:
    return make_kite()
