"""Kites on the fake provider server (real SDKs, real HTTP), closed when the test ends.

Shared by the call-log and cassette tests' ``make_kite`` fixtures; each passes its own
fake keys so a test can grep its files for exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer


def kite_maker(fake_llm: FakeLLMServer, openai_key: str,
               anthropic_key: str) -> Iterator[Callable[..., Kite]]:
    """``make(wire="openai", **settings)``: a Kite on the fake server; closed (and its call
    log closed) after the test."""
    made: list[Kite] = []

    def make(wire: str = "openai", **extra: Any) -> Kite:
        config = {
            "llm_provider": wire,
            "openai_api_key": openai_key,
            "openai_base_url": fake_llm.openai_base_url,
            "anthropic_api_key": anthropic_key,
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
