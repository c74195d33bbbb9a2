"""Writing the script: the output path checked, the file complete or not there at all.

An existing output is kept unless ``force``; the text goes to a temp file next to the
target, then moves into place (a hard link where possible, which also refuses to replace
a file created meanwhile).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from kite_lab.core.errors import ExportError
from kite_lab.notebook.export.build import ExportedScript, export_source
from kite_lab.notebook.export.reading import read_notebook

__all__ = ["write_atomic", "write_script"]


def write_script(notebook: Any, output: str | os.PathLike[str] | None, *, force: bool,
                 main: bool, service: bool) -> ExportedScript:
    """Compile ``notebook`` (a path or an nbformat node); write it to ``output`` if given."""
    if isinstance(notebook, str | os.PathLike):
        path = Path(notebook)
        node, label, base = read_notebook(path), os.fspath(notebook), path.resolve().parent
    else:
        node, label, base = notebook, "notebook.ipynb", None
    target = Path(output) if output is not None else None
    if target is not None:
        _check_output(target, force, label)
    script = export_source(node, label=label, base_dir=base, main=main, service=service)
    if target is None:
        return script
    write_atomic(target, script, force=force)
    return ExportedScript(str(script), path=target, cells=script.cells,
                          kite_cells=script.kite_cells, answer_cells=script.answer_cells,
                          notes=script.notes, env_vars=script.env_vars)


def _check_output(target: Path, force: bool, label: str) -> None:
    if target.suffix == ".ipynb" or (Path(label).exists() and target.exists()
                                     and target.resolve() == Path(label).resolve()):
        raise ExportError("the output would overwrite a notebook; choose a .py path",
                          path=os.fspath(target))
    if target.is_dir():
        raise ExportError("is a directory; give the script's file name", path=os.fspath(target))
    if target.exists() and not force:
        raise ExportError("already exists; pass --force to overwrite it", path=os.fspath(target))
    if not target.parent.is_dir():
        raise ExportError(f"the directory {target.parent} does not exist",
                          path=os.fspath(target))


def write_atomic(target: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to a temp file next to ``target``, then move it into place."""
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        if force:
            os.replace(tmp, target)
            return
        try:
            os.link(tmp, target)  # atomic, and refuses to replace a file created meanwhile
        except FileExistsError:
            raise ExportError("already exists; pass --force to overwrite it",
                              path=os.fspath(target)) from None
        except OSError:  # no hard links on this filesystem
            if target.exists():
                raise ExportError("already exists; pass --force to overwrite it",
                                  path=os.fspath(target)) from None
            os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
