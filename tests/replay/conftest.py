"""Fixtures for the cassette tests: real Kites on the fake server (real SDKs, real HTTP)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fake_kites import kite_maker

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer

OPENAI_KEY = "sk-test-cassette-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-cassette-0123456789"


@pytest.fixture
def make_kite(fake_llm: FakeLLMServer) -> Iterator[Callable[..., Kite]]:
    """``make_kite(wire="openai", **settings)``: a Kite on the fake server, closed after."""
    yield from kite_maker(fake_llm, OPENAI_KEY, ANTHROPIC_KEY)
