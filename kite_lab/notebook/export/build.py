"""A notebook compiled into the text of its script, with the guarantees around it.

The compiler (``compile``) turns cells into code; this module is the boundary the exporter's
doors call: the notebook's language and settings (its ``pyproject.toml``
``[tool.kite_lab]``), and the last line of defence against secrets (no value of a
``*_KEY``/``*_TOKEN`` environment variable may appear in the output).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kite_lab.core.errors import ExportError
from kite_lab.notebook.export.compile import compile_cells
from kite_lab.notebook.settings import MagicSettings, find_pyproject, load_pyproject_config

__all__ = ["ExportedScript", "export_source"]

_SECRET_ENV = re.compile(r"(_KEY|_KEYS|_TOKEN|_SECRET|_PASSWORD)\Z", re.I)


class ExportedScript(str):
    """The script's source (a ``str``) with what was exported where.

    In a notebook (``%kite export``) it displays as a one-line summary, not the whole file.
    """

    path: Path | None
    cells: int
    kite_cells: list[int]
    answer_cells: list[int]
    notes: list[str]
    env_vars: list[str]

    def __new__(cls, text: str, **info: Any) -> ExportedScript:
        obj = super().__new__(cls, text)
        obj.path = info.get("path")
        obj.cells = info.get("cells", 0)
        obj.kite_cells = list(info.get("kite_cells", ()))
        obj.answer_cells = list(info.get("answer_cells", ()))
        obj.notes = list(info.get("notes", ()))
        obj.env_vars = list(info.get("env_vars", ()))
        return obj

    def summary(self) -> str:
        where = f"wrote {self.path}" if self.path else "exported"
        env = f"; reads {', '.join(self.env_vars)} from the environment" if self.env_vars else ""
        return (f"kite-lab export: {where} ({self.cells} cells, "
                f"{len(self.kite_cells)} %%kite cells compiled{env})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(self.summary() + "".join(f"\n  note: {n}" for n in self.notes))


def export_source(notebook: Any, *, label: str = "notebook.ipynb",
                  base_dir: str | os.PathLike[str] | None = None, main: bool = False,
                  service: bool = False, record: bool = False) -> ExportedScript:
    """Compile a notebook (nbformat node or dict) into the script's source; writes nothing.

    ``label`` names the notebook in the header and in errors; ``base_dir`` is where its
    ``pyproject.toml`` ``[tool.kite_lab]`` section (the magics' settings) is looked up.
    """
    if main and service:
        raise ExportError("--main and --service cannot be combined: a service module runs "
                          "its cells when `kite-lab serve` imports it", path=label)
    metadata = notebook.get("metadata", {}) or {}
    language = ((metadata.get("kernelspec") or {}).get("language")
                or (metadata.get("language_info") or {}).get("name") or "python")
    if str(language).lower() != "python":
        raise ExportError(f"is a {language} notebook; kite-lab exports Python notebooks",
                          path=label)
    compiled = compile_cells(notebook.get("cells", []), label=label,
                             settings=_magic_settings(base_dir),
                             main=main, service=service, record=record,
                             secret_fields=_secret_fields())
    _refuse_secrets(compiled.text, compiled.cell_spans, label)
    return ExportedScript(compiled.text, cells=compiled.cells, kite_cells=compiled.kite_cells,
                          answer_cells=compiled.answer_cells, notes=compiled.notes,
                          env_vars=compiled.env_vars)


def _magic_settings(base_dir: str | os.PathLike[str] | None) -> MagicSettings:
    """``[tool.kite_lab]`` of the notebook's project, as ``%load_ext kite_lab`` reads it."""
    settings = MagicSettings()
    start = Path(base_dir) if base_dir else None
    section, _ = load_pyproject_config(find_pyproject(start))
    for key, value in section.items():
        settings.apply(key, value)
    return settings


def _secret_fields() -> list[str]:
    from kite_lab.core.config import KiteSettings

    return [name for name, info in KiteSettings.model_fields.items()
            if "Secret" in str(info.annotation)]


def _refuse_secrets(text: str, spans: Mapping[int, tuple[int, int]], label: str) -> None:
    """The last line of defence: no value of a secret-named env var in the output."""
    for name, value in os.environ.items():
        if not _SECRET_ENV.search(name) or len(value) < 8:
            continue
        at = text.find(value)
        if at < 0:
            continue
        cell = next((n for n, (start, end) in spans.items() if start <= at < end), None)
        raise ExportError(
            f"contains the value of the environment variable {name}; the script must read "
            f"it at run time (os.environ[{name!r}]), never hold it", path=label, cell=cell)
