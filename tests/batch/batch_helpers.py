"""Shared pieces of the ai.map tests (a unique module name: conftest.py is not importable)."""

from __future__ import annotations

from typing import Any

FAKE_KEY = "sk-test-batch-fake-key-0123456789"


def kite_on(server: Any, **overrides: Any) -> Any:
    """A Kite whose OpenAI provider is ``server`` (no .env; memory cache by default)."""
    from kite_lab import Kite

    config = {
        "llm_provider": "openai",
        "openai_api_key": FAKE_KEY,
        "openai_base_url": server.openai_base_url,
        "cache_backend": "memory",
        **overrides,
    }
    return Kite(config=config, env_file=None)


def llm_calls(server: Any) -> int:
    """Chat-completion requests the fake server received."""
    return sum(1 for r in server.requests if r.path.endswith("/chat/completions"))


def raising_shell() -> Any:
    """A fresh IPython shell whose ``run_cell`` raises the cell's exception."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class RaisingShell(InteractiveShell):
        def run_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> Any:
            result = super().run_cell(raw_cell, *args, **kwargs)
            result.raise_error()
            return result

    config = Config()
    config.HistoryManager.enabled = False
    InteractiveShell.clear_instance()
    return RaisingShell.instance(config=config)
