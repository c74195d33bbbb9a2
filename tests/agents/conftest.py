"""Fixtures for the agent tests: a Kite pointed at the fake server in either wire format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from agents_helpers import kite_config

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer


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
