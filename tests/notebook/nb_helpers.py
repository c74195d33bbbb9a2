"""Shared pieces of the notebook tests (a unique module name: conftest.py is not importable
by name when several test directories have one)."""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell

FAKE_KEY = "sk-test-notebook-fake-key-0123456789"


class TestingShell(InteractiveShell):
    """An InteractiveShell whose ``run_cell`` raises the cell's exception."""

    def run_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> Any:
        result = super().run_cell(raw_cell, *args, **kwargs)
        result.raise_error()
        return result
