"""Fixtures for the batch tests: a Kite on the fake server (OpenAI wire, no cache)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from batch_helpers import make_kite

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer


@pytest.fixture
def ai(fake_llm: FakeLLMServer) -> Iterator[Kite]:
    kite = make_kite(fake_llm)
    yield kite
    kite.close()
