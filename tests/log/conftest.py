"""Fixtures for the call-log tests: a real Kite on the fake server with the stages installed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from staged_pipeline import install

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer

OPENAI_KEY = "sk-test-calllog-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-calllog-0123456789"


def kite_config(server: FakeLLMServer, wire: str = "openai", **extra: Any) -> dict[str, Any]:
    return {
        "llm_provider": wire,
        "openai_api_key": OPENAI_KEY,
        "openai_base_url": server.openai_base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
        "anthropic_base_url": server.anthropic_base_url,
        "cache_backend": "none",
        "llm_timeout": 5,
        **extra,
    }


@pytest.fixture
def make_kite(fake_llm: FakeLLMServer) -> Iterator[Callable[..., Kite]]:
    made: list[Kite] = []

    def make(wire: str = "openai", *, log: bool = True, **extra: Any) -> Kite:
        ai = Kite(config=kite_config(fake_llm, wire, **extra), env_file=None)
        install(ai, log=log)
        made.append(ai)
        return ai

    yield make
    for ai in made:
        stage = getattr(ai._pipeline, "log", None)
        if stage is not None:
            stage.detach()
            stage.close()
        ai.close()
