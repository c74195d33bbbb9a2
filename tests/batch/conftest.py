"""Fixtures of the ai.map tests: a Kite on the fake OpenAI server (real HTTP, real SDK)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from batch_helpers import kite_on


@pytest.fixture
def make_ai(fake_llm: Any) -> Iterator[Callable[..., Any]]:
    """Build Kites on the test's fake server; all closed afterwards."""
    made: list[Any] = []

    def make(**overrides: Any) -> Any:
        ai = kite_on(fake_llm, **overrides)
        made.append(ai)
        return ai

    yield make
    for ai in made:
        ai.close()


@pytest.fixture
def ai(make_ai: Callable[..., Any]) -> Any:
    return make_ai()
