"""Pytest fixtures for :class:`~kite_lab.testing.FakeLLMServer`.

Registered through the ``pytest11`` entry point ``kite_lab``, so any project
that installs kite-lab gets the fixtures without touching its conftest:

* ``fake_llm`` -- a fresh server per test (own port, empty script/recording),
  stopped afterwards, so tests cannot leak scripted replies into each other.
* ``fake_llm_session`` -- one server for the whole session, usable from
  session-scoped fixtures (e.g. a shared SDK client). Tests sharing it should
  call ``reset()`` themselves if they script it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kite_lab.testing.fake_server import FakeLLMServer

__all__ = ["fake_llm", "fake_llm_session"]


@pytest.fixture(scope="session")
def fake_llm_session() -> Iterator[FakeLLMServer]:
    """One started fake server shared by the whole test session."""
    with FakeLLMServer() as server:
        yield server


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    """A started fake server private to this test, reset and stopped afterwards."""
    with FakeLLMServer() as server:
        yield server
        server.reset()
