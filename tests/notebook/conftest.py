"""Fixtures for the notebook layer: a testing shell whose run_cell raises, and a Kite on the
fake provider server.

Why a raising shell: IPython's run_cell swallows exceptions (it prints them), so a magic
test that forgets to check the result passes on a broken magic. ``TestingShell.run_cell``
re-raises the cell's exception, as jupysql's test suite does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from nb_helpers import FAKE_KEY, TestingShell
from traitlets.config import Config


@pytest.fixture
def shell() -> Iterator[TestingShell]:
    """A fresh testing shell (the IPython singleton) with no extension loaded."""
    config = Config()
    config.HistoryManager.enabled = False
    InteractiveShell.clear_instance()
    ip = TestingShell.instance(config=config)
    try:
        yield ip
    finally:
        from kite_lab.notebook.extension import unload_ipython_extension

        unload_ipython_extension(ip)
        TestingShell.clear_instance()


@pytest.fixture
def fake_kite(fake_llm: Any) -> Iterator[Any]:
    """A Kite whose OpenAI provider is the fake server (memory cache, no .env)."""
    from kite_lab import Kite

    ai = Kite(
        config={
            "llm_provider": "openai",
            "openai_api_key": FAKE_KEY,
            "openai_base_url": fake_llm.openai_base_url,
            "cache_backend": "memory",
        },
        env_file=None,
    )
    try:
        yield ai
    finally:
        ai.close()


@pytest.fixture
def ip(shell: TestingShell, fake_kite: Any) -> TestingShell:
    """The testing shell with ``%load_ext kite_lab`` done and the fake Kite in use."""
    from kite_lab.notebook import use

    shell.run_line_magic("load_ext", "kite_lab")
    use(fake_kite)
    shell.user_ns["ai"] = fake_kite
    return shell
