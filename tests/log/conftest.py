"""Fixtures for the call-log tests: real Kites on the fake server (real SDKs, real HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer

OPENAI_KEY = "sk-test-calllog-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-calllog-0123456789"


@pytest.fixture
def make_kite(fake_llm: FakeLLMServer) -> Iterator[Callable[..., Kite]]:
    """``make_kite(wire="openai", **settings)``: a Kite on the fake server, closed after."""
    made: list[Kite] = []

    def make(wire: str = "openai", **extra: Any) -> Kite:
        config = {
            "llm_provider": wire,
            "openai_api_key": OPENAI_KEY,
            "openai_base_url": fake_llm.openai_base_url,
            "anthropic_api_key": ANTHROPIC_KEY,
            "anthropic_base_url": fake_llm.anthropic_base_url,
            "cache_backend": "none",
            "llm_timeout": 5,
            **extra,
        }
        ai = Kite(config=config, env_file=None)
        made.append(ai)
        return ai

    yield make
    for ai in made:
        log = ai.pipeline.call_log if ai._settings is not None else None
        if log is not None:
            log.close()
        ai.close()
