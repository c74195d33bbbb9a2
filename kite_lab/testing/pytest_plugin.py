"""Pytest fixtures for :class:`~kite_lab.testing.FakeLLMServer` and for cassettes.

Registered through the ``pytest11`` entry point ``kite_lab``, so any project
that installs kite-lab gets the fixtures without touching its conftest:

* ``fake_llm`` -- a fresh server per test (own port, empty script/recording),
  stopped afterwards, so tests cannot leak scripted replies into each other.
* ``fake_llm_session`` -- one server for the whole session, usable from
  session-scoped fixtures (e.g. a shared SDK client). Tests sharing it should
  call ``reset()`` themselves if they script it.
* ``kite_cassette`` -- every Kite's LLM calls during the test go through the
  cassette ``cassettes/<test file>/<test name>.jsonl`` next to the test file. The mode
  is ``--kite-cassette-mode`` (default: KITE_CASSETTE_MODE, else ``once``: replay
  what is recorded, record the rest); run CI with ``--kite-cassette-mode=replay`` so a
  call that was never recorded fails the test instead of reaching a provider.
  ``@pytest.mark.kite_cassette("path.jsonl", mode=...)`` picks another file or mode.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from kite_lab.testing.fake_server import FakeLLMServer

if TYPE_CHECKING:
    from kite_lab.replay.cassette import Cassette

__all__ = ["fake_llm", "fake_llm_session", "kite_cassette"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kite-cassette-mode", default=None, choices=("record", "replay", "once", "off"),
        help="mode of the kite_cassette fixture (default: KITE_CASSETTE_MODE, else once)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "kite_cassette(path=None, mode=None): the kite_cassette fixture's file/mode"
    )


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


@pytest.fixture
def kite_cassette(request: pytest.FixtureRequest) -> Iterator[Cassette]:
    """Record / replay every Kite's LLM calls in this test (see the module docstring)."""
    from kite_lab.replay.active import use_cassette

    marker = request.node.get_closest_marker("kite_cassette")
    options: dict[str, Any] = dict(marker.kwargs) if marker else {}
    if marker and marker.args:
        options.setdefault("path", marker.args[0])
    test_file = Path(str(request.node.path))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name).strip("_")
    path = Path(options.get("path") or test_file.parent / "cassettes" / test_file.stem
                / f"{name}.jsonl")
    if not path.is_absolute():
        path = test_file.parent / path
    mode = (options.get("mode") or request.config.getoption("--kite-cassette-mode")
            or os.environ.get("KITE_CASSETTE_MODE") or "once")
    with use_cassette(path, mode, speed=options.get("speed", float("inf"))) as cassette:
        yield cassette
