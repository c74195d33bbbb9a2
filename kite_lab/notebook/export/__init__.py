"""Export a notebook prototype as a plain script or service: one compiler, three doors.

    kite-lab export analysis.ipynb -o app.py       # cli_export
    %kite export app.py                            # export_notebook(running notebook, path)
    jupyter nbconvert --to kite-script analysis.ipynb   # export.nbconvert

All three call ``export_notebook`` / ``export_source``. Why a compiler and not nbconvert's
Python exporter: ``%%kite`` cells must become ``Kite`` API calls that do what the cell did
(the script calls the same ``kite_lab.script`` helpers as the cell runner), or the script
fails (or silently differs) outside IPython.

Guarantees: the script never contains a secret (keys written in the notebook's config are
read from the environment; a value of any ``*_KEY``/``*_TOKEN`` environment variable found
in the output is an error), nothing is written on failure (temp file + rename), an
existing output is kept unless ``force``, and every error names the file and the cell.
``--check`` runs the script and compares its ``%%kite`` answers with the notebook's stored
outputs where those were deterministic (fake server, temperature 0, or cached).

The package: ``reading`` (the .ipynb), ``compile`` (cells -> code, with ``kite_cells``,
``line_magics``, ``walker``, ``state``, ``ast_tools``, ``source``), ``build`` (the text and
its secret check), ``writing`` (the file), ``check`` (``--check``), ``nbconvert``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from kite_lab.core.errors import ExportError
from kite_lab.notebook.export.build import ExportedScript, export_source
from kite_lab.notebook.export.check import (
    check_export,
    compare_answers,
    stored_answers,
    uses_fake_server,
)
from kite_lab.notebook.export.reading import read_notebook
from kite_lab.notebook.export.writing import write_atomic, write_script

__all__ = ["ExportedScript", "check_export", "cli_export", "compare_answers", "export_notebook",
           "export_source", "read_notebook", "stored_answers", "uses_fake_server",
           "write_atomic", "write_script"]


def export_notebook(notebook: Any, output: str | os.PathLike[str] | None = None, *,
                    force: bool = False, main: bool = False, service: bool = False,
                    check: bool = False) -> ExportedScript:
    """Compile ``notebook`` (a path, or an nbformat node) and write it to ``output``.

    Returns the script's source. With ``output=None`` nothing is written. An existing
    ``output`` is an error unless ``force``; the file appears complete or not at all.
    ``check``: then run the script and compare its answers with the notebook's stored
    outputs (``check_export``, report on stdout); a difference raises ExportError.
    """
    if check:
        if not isinstance(notebook, str | os.PathLike):
            raise ExportError("--check needs the notebook's file (its stored outputs)")
        if service:
            raise ExportError("--check runs the script; it does not apply to --service",
                              path=os.fspath(notebook))
    script = write_script(notebook, output, force=force, main=main, service=service)
    if check and check_export(notebook, main=main) != 0:
        raise ExportError("the script's answers differ from the notebook's stored outputs "
                          "(see the report above)", path=os.fspath(notebook))
    return script


def cli_export(notebook: str, output: str | None = None, force: bool = False,
               main: bool = False, service: bool = False, check: bool = False) -> int:
    """``kite-lab export``: 0 on success, 1 when --check found a difference, 2 on errors."""
    try:
        if check and service:
            raise ExportError("--check runs the script; it does not apply to --service",
                              path=notebook)
        if check and output is None:  # only the comparison: nothing is written
            return check_export(notebook, main=main)
        target = output or os.fspath(Path(notebook).with_suffix(".py"))
        if Path(notebook).suffix != ".ipynb" and output is None:
            read_notebook(notebook)  # say "not a notebook" before choosing an output name
        script = write_script(notebook, target, force=force, main=main, service=service)
    except ExportError as exc:
        print(f"kite-lab export: {exc}", file=sys.stderr)
        return 2
    print(script.summary())
    for note in script.notes:
        print(f"  note: {note}")
    return check_export(notebook, main=main) if check else 0
