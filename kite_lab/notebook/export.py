"""Export a notebook prototype as a plain script or service: one compiler, three doors.

    kite-lab export analysis.ipynb -o app.py       # cli_export
    %kite export app.py                            # export_notebook(running notebook, path)
    jupyter nbconvert --to kite-script analysis.ipynb   # nbconvert_exporter

All three call ``export_notebook`` (the compiler is ``export_compile``). Why a compiler and
not nbconvert's Python exporter: ``%%kite`` cells must become ``Kite`` API calls that do
what the cell did, or the script fails (or silently differs) outside IPython.

Guarantees: the script never contains a secret (keys written in the notebook's config are
read from the environment; a value of any ``*_KEY``/``*_TOKEN`` environment variable found
in the output is an error), nothing is written on failure (temp file + rename), an
existing output is kept unless ``force``, and every error names the file and the cell.
``--check`` runs the script and compares its ``%%kite`` answers with the notebook's stored
outputs where those were deterministic (fake server, temperature 0, or cached).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from kite_lab.core.errors import ExportError

__all__ = ["ExportedScript", "check_export", "cli_export", "compare_answers", "export_notebook",
           "export_source", "read_notebook", "stored_answers", "uses_fake_server",
           "write_atomic"]

_SECRET_ENV = re.compile(r"(_KEY|_KEYS|_TOKEN|_SECRET|_PASSWORD)\Z", re.I)
_FOOTER = re.compile(r"\n\n— [^\n]*\Z")


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


# -- reading ---------------------------------------------------------------------------


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
    return data  # type: ignore[no-any-return]


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


# -- compiling ---------------------------------------------------------------------------


def export_source(notebook: Any, *, label: str = "notebook.ipynb",
                  base_dir: str | os.PathLike[str] | None = None, main: bool = False,
                  service: bool = False, record: bool = False) -> ExportedScript:
    """Compile a notebook (nbformat node or dict) into the script's source; writes nothing.

    ``label`` names the notebook in the header and in errors; ``base_dir`` is where its
    ``pyproject.toml`` ``[tool.kite_lab]`` section (the magics' settings) is looked up.
    """
    from kite_lab.notebook.export_compile import MagicSettings, compile_cells

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
                             settings=_magic_settings(base_dir, MagicSettings()),
                             main=main, service=service, record=record,
                             secret_fields=_secret_fields())
    _refuse_secrets(compiled.text, compiled.cell_spans, label)
    return ExportedScript(compiled.text, cells=compiled.cells, kite_cells=compiled.kite_cells,
                          answer_cells=compiled.answer_cells, notes=compiled.notes,
                          env_vars=compiled.env_vars)


def _magic_settings(base_dir: str | os.PathLike[str] | None, settings: Any) -> Any:
    """``[tool.kite_lab]`` of the notebook's project, as ``%load_ext kite_lab`` reads it."""
    from kite_lab.notebook.magics import find_pyproject, load_pyproject_config

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


# -- writing -----------------------------------------------------------------------------


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
    script = _export(notebook, output, force=force, main=main, service=service)
    if check and check_export(notebook, main=main) != 0:
        raise ExportError("the script's answers differ from the notebook's stored outputs "
                          "(see the report above)", path=os.fspath(notebook))
    return script


def _export(notebook: Any, output: str | os.PathLike[str] | None, *, force: bool, main: bool,
            service: bool) -> ExportedScript:
    if isinstance(notebook, str | os.PathLike):
        path = Path(notebook)
        node, label, base = read_notebook(path), os.fspath(notebook), path.resolve().parent
    else:
        node, label, base = notebook, "notebook.ipynb", None
    target = Path(output) if output is not None else None
    if target is not None:
        _check_target(target, force, label)
    script = export_source(node, label=label, base_dir=base, main=main, service=service)
    if target is None:
        return script
    write_atomic(target, script, force=force)
    return ExportedScript(str(script), path=target, cells=script.cells,
                          kite_cells=script.kite_cells, answer_cells=script.answer_cells,
                          notes=script.notes, env_vars=script.env_vars)


def _check_target(target: Path, force: bool, label: str) -> None:
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


# -- --check -----------------------------------------------------------------------------


def check_export(notebook: str | os.PathLike[str], *, main: bool = False,
                 timeout: float = 600.0, out: IO[str] | None = None) -> int:
    """Run the exported script; compare its ``%%kite`` answers with the stored outputs.

    Only outputs produced deterministically are compared: temperature 0, a cached answer,
    or a notebook that scripts its replies with ``kite_lab.testing`` (the fake server).
    Returns 0 when the script ran and nothing differed, 1 otherwise; writes nothing.
    """
    from kite_lab.notebook.export_runtime import CHECK_FILE_ENV

    out = out or sys.stdout
    path = Path(notebook)
    node = read_notebook(path)
    script = export_source(node, label=os.fspath(notebook), base_dir=path.resolve().parent,
                           main=main, record=True)
    expected = stored_answers(node)
    with tempfile.TemporaryDirectory(prefix="kite-export-check-") as tmp:
        file = Path(tmp) / f"{path.stem}_check.py"
        file.write_text(script, encoding="utf-8")
        records = Path(tmp) / "answers.jsonl"
        env = {**os.environ, CHECK_FILE_ENV: str(records)}
        try:
            proc = subprocess.run([sys.executable, str(file)], cwd=path.resolve().parent,
                                  env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"kite-lab export --check: the script ran past {timeout:.0f} s", file=out)
            return 1
        got: dict[int, str] = {}
        if records.exists():
            for line in records.read_text(encoding="utf-8").splitlines():
                item = json.loads(line)
                got[int(item["cell"])] = item["text"]
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        print(f"kite-lab export --check: the script failed (exit {proc.returncode}):\n{tail}",
              file=out)
        return 1
    return compare_answers(expected, got, script.answer_cells, uses_fake_server(node), out)


def stored_answers(node: Any) -> dict[int, tuple[str, dict[str, Any]]]:
    """cell number -> (text/plain without the footer, provenance) of each %%kite output."""
    found = {}
    for number, cell in enumerate(node.get("cells", []), 1):
        for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            info = (output.get("metadata") or {}).get("kite_lab")
            text = (output.get("data") or {}).get("text/plain")
            if info and isinstance(text, str | list):
                text = "".join(text) if isinstance(text, list) else text
                found[number] = (_FOOTER.sub("", text), info)
    return found


def uses_fake_server(node: Any) -> bool:
    return any("kite_lab.testing" in "".join(c.get("source", ""))
               for c in node.get("cells", []) if c.get("cell_type") == "code")


def compare_answers(expected: Mapping[int, tuple[str, dict[str, Any]]], got: Mapping[int, str],
             kite_cells: list[int], fake: bool, out: IO[str]) -> int:
    differences = compared = 0
    for number in kite_cells:
        if number not in expected:
            print(f"cell {number}: no stored output to compare (execute the notebook first)",
                  file=out)
            continue
        text, info = expected[number]
        params = info.get("params") or {}
        if not (fake or info.get("cached") or params.get("temperature") == 0):
            print(f"cell {number}: skipped (not deterministic: temperature is not 0, not "
                  "cached, no fake server)", file=out)
            continue
        compared += 1
        if number not in got:
            differences += 1
            print(f"cell {number}: DIFFERENT: the script produced no answer", file=out)
        elif got[number].strip() != text.strip():
            differences += 1
            print(f"cell {number}: DIFFERENT\n  notebook: {text.strip()[:300]!r}\n"
                  f"  script:   {got[number].strip()[:300]!r}", file=out)
        else:
            print(f"cell {number}: same", file=out)
    verdict = "no difference" if not differences else f"{differences} difference(s)"
    print(f"kite-lab export --check: {compared} answer(s) compared, {verdict}", file=out)
    return 1 if differences else 0


# -- the CLI -------------------------------------------------------------------------------


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
        script = _export(notebook, target, force=force, main=main, service=service)
    except ExportError as exc:
        print(f"kite-lab export: {exc}", file=sys.stderr)
        return 2
    print(script.summary())
    for note in script.notes:
        print(f"  note: {note}")
    return check_export(notebook, main=main) if check else 0
