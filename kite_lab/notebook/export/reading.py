"""Reading a notebook file for the exporter: nbformat 4 (3 converted), checked structurally.

Why not nbformat's validation: its JSON-schema check costs seconds of imports on a cold
start, most of an export's time; the structure the compiler relies on is checked here,
and every problem is an ``ExportError`` naming the file.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kite_lab.core.errors import ExportError

__all__ = ["read_notebook"]


def read_notebook(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The notebook at ``path`` as an nbformat-4 dict; ExportError naming the file otherwise.

    nbformat 4 is checked here, structurally (nbformat's JSON-schema validation costs
    seconds of imports on a cold start, most of an export's time); nbformat 3 is converted
    with nbformat itself.
    """
    label = os.fspath(path)
    file = Path(path)
    if not file.exists():
        raise ExportError("no such file", path=label)
    if file.is_dir():
        raise ExportError("is a directory, not a notebook (.ipynb)", path=label)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ExportError("not a notebook: the file is not UTF-8 text", path=label) from None
    except OSError as exc:
        raise ExportError(f"cannot read it ({exc.strerror})", path=label) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        what = "not a notebook (.ipynb JSON)" if file.suffix != ".ipynb" else "invalid JSON"
        raise ExportError(f"{what}: {exc.msg} at line {exc.lineno} column {exc.colno}",
                          path=label) from None
    if not isinstance(data, dict) or not ({"cells", "worksheets"} & set(data)):
        raise ExportError("not a Jupyter notebook: no cells (is this the right file?)",
                          path=label)
    version = data.get("nbformat")
    if version not in (3, 4):
        raise ExportError(f"nbformat {version!r} is not supported; kite-lab exports nbformat 4 "
                          "(open the notebook in a recent Jupyter and save it)", path=label)
    if version == 3:
        import nbformat

        with warnings.catch_warnings():  # v3 cells have no ids: not our problem here
            warnings.simplefilter("ignore")
            try:
                data = nbformat.reads(text, as_version=4)
            except Exception as exc:  # nbformat raises several types for broken v3 files
                raise ExportError(f"not a valid nbformat 3 notebook ({exc})"[:300],
                                  path=label) from None
    problem = _structure_problem(data)
    if problem:
        raise ExportError(f"not a valid notebook: {problem}", path=label)
    return data


_CELL_TYPES = ("code", "markdown", "raw")


def _structure_problem(data: Mapping[str, Any]) -> str | None:
    """What makes ``data`` not an nbformat-4 notebook the exporter can read, if anything."""
    if not isinstance(data.get("metadata", {}), dict):
        return "metadata is not an object"
    cells = data.get("cells")
    if not isinstance(cells, list):
        return "cells is not a list"
    for number, cell in enumerate(cells, 1):
        if not isinstance(cell, dict):
            return f"cell {number} is not an object"
        if cell.get("cell_type") not in _CELL_TYPES:
            return f"cell {number} has cell_type {cell.get('cell_type')!r}"
        source = cell.get("source")
        if not (isinstance(source, str) or (isinstance(source, list)
                                            and all(isinstance(s, str) for s in source))):
            return f"cell {number} has no source text"
        if cell["cell_type"] == "code" and not isinstance(cell.get("outputs", []), list):
            return f"cell {number} outputs is not a list"
    return None
