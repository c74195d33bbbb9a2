"""Fixtures for the exporter's tests (helpers live in export_helpers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from export_helpers import write_notebook


@pytest.fixture
def notebook_factory(tmp_path: Path) -> Any:
    def make(*cells: str | tuple[str, str], name: str = "nb.ipynb", **metadata: Any) -> Path:
        return write_notebook(tmp_path / name, *cells, **metadata)

    return make
