"""The three doors (kite-lab export, %kite export, nbconvert) and bad input: files, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from export_helpers import ruff_problems, write_notebook

from kite_lab.cli import main as cli_main
from kite_lab.core.errors import ExportError
from kite_lab.notebook.export import ExportedScript, export_notebook, read_notebook

KITE_BIN = str(Path(sys.executable).with_name("kite-lab"))
JUPYTER_BIN = str(Path(sys.executable).with_name("jupyter"))


def _simple(tmp_path: Path, name: str = "nb.ipynb") -> Path:
    return write_notebook(tmp_path / name, "%load_ext kite_lab", "city = 'Paris'",
                          "%%kite -o answer\nWhat is {city} famous for?")


# -- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("content, words", [
    ("print('a script')\n", "not a notebook (.ipynb JSON)"),
    ("{not json", "invalid JSON: Expecting property name"),
    ('{"nbformat": 5, "nbformat_minor": 0, "cells": []}', "nbformat 5 is not supported"),
    ('{"nbformat": 2, "worksheets": []}', "nbformat 2 is not supported"),
    ('["a", "list"]', "not a Jupyter notebook"),
    ('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "code"}]}',
     "not a valid notebook"),
])
def test_bad_input_names_the_file(tmp_path: Path, content: str, words: str,
                                  capsys: Any) -> None:
    suffix = ".py" if content.startswith("print") else ".ipynb"
    path = tmp_path / f"input{suffix}"
    path.write_text(content)
    with pytest.raises(ExportError) as info:
        read_notebook(path)
    assert str(info.value).startswith(str(path)) and words in str(info.value)
    before = sorted(os.listdir(tmp_path))
    assert cli_main(["export", str(path), "-o", str(tmp_path / "out.py")]) == 2
    assert words in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such file"):
        read_notebook(tmp_path / "nope.ipynb")
    with pytest.raises(ExportError, match="is a directory"):
        read_notebook(tmp_path)


def test_nbformat_3_is_converted(tmp_path: Path) -> None:
    v3 = nbformat.v3.new_notebook(worksheets=[nbformat.v3.new_worksheet(
        cells=[nbformat.v3.new_code_cell(input="x = 1")])])
    path = tmp_path / "old.ipynb"
    path.write_text(nbformat.writes(v3, version=3))
    assert "x = 1" in export_notebook(path)


# -- writing ---------------------------------------------------------------------------------


def test_existing_output_is_refused_unless_forced(tmp_path: Path, capsys: Any) -> None:
    notebook = _simple(tmp_path)
    out = tmp_path / "app.py"
    out.write_text("# precious\n")
    assert cli_main(["export", str(notebook), "-o", str(out)]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert out.read_text() == "# precious\n"
    assert cli_main(["export", str(notebook), "-o", str(out), "--force"]) == 0
    assert "answer = answer_text(" in out.read_text()
    assert "wrote" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_default_output_is_next_to_the_notebook(tmp_path: Path) -> None:
    notebook = _simple(tmp_path)
    assert cli_main(["export", str(notebook)]) == 0
    script = (tmp_path / "nb.py").read_text()
    assert script.startswith('"""nb.ipynb, exported as a script')
    assert oct((tmp_path / "nb.py").stat().st_mode & 0o777) != "0o600"  # not mkstemp's mode


def test_nothing_is_written_on_failure(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "bad.ipynb", "x = 1", "def broken(:\n    pass")
    out = tmp_path / "bad.py"
    with pytest.raises(ExportError) as info:
        export_notebook(notebook, out)
    assert info.value.cell == 2 and str(notebook) in str(info.value)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.ipynb"]


def test_output_paths_that_make_no_sense(tmp_path: Path) -> None:
    notebook = _simple(tmp_path)
    with pytest.raises(ExportError, match="would overwrite a notebook"):
        export_notebook(notebook, tmp_path / "other.ipynb")
    with pytest.raises(ExportError, match="does not exist"):
        export_notebook(notebook, tmp_path / "no" / "dir" / "app.py")
    with pytest.raises(ExportError, match="is a directory"):
        export_notebook(notebook, tmp_path)


def test_write_is_atomic_and_no_clobber(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash while writing leaves no partial file; a file appearing meanwhile is kept."""
    from kite_lab.notebook import export as export_module

    notebook = _simple(tmp_path)
    out = tmp_path / "app.py"
    real_fsync = os.fsync

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(export_module.os, "fsync", crash)
    with pytest.raises(OSError):
        export_notebook(notebook, out)
    assert not out.exists() and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    monkeypatch.setattr(export_module.os, "fsync", real_fsync)
    real_link = os.link

    def someone_else_wrote_it(src: str, dst: str) -> None:
        Path(dst).write_text("# theirs\n")
        real_link(src, dst)

    monkeypatch.setattr(export_module.os, "link", someone_else_wrote_it)
    with pytest.raises(ExportError, match="already exists"):
        export_notebook(notebook, out)
    assert out.read_text() == "# theirs\n"


def test_cli_subprocess_and_summary(tmp_path: Path) -> None:
    notebook = _simple(tmp_path)
    proc = subprocess.run([KITE_BIN, "export", str(notebook), "-o", str(tmp_path / "s.py")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "1 %%kite cells compiled" in proc.stdout
    assert "note: cell 1: %load_ext kite_lab dropped" in proc.stdout
    assert not ruff_problems(tmp_path / "s.py")


def test_check_and_service_do_not_mix(tmp_path: Path, capsys: Any) -> None:
    assert cli_main(["export", str(_simple(tmp_path)), "--check", "--service"]) == 2
    assert "does not apply to --service" in capsys.readouterr().err


# -- %kite export and nbconvert ---------------------------------------------------------------


def test_kite_export_magic_writes_the_same_file(tmp_path: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    notebook = _simple(tmp_path)
    config = Config()
    config.HistoryManager.enabled = False
    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance(config=config)
    try:
        shell.run_line_magic("load_ext", "kite_lab")
        out = tmp_path / "from_magic.py"
        result = shell.run_line_magic("kite", f"export {out} --notebook {notebook}")
        assert isinstance(result, ExportedScript) and result.path == out
        from IPython.lib.pretty import pretty

        assert pretty(result).startswith(f"kite-lab export: wrote {out} (3 cells")
        cli_main(["export", str(notebook), "-o", str(tmp_path / "from_cli.py")])
        assert out.read_text() == (tmp_path / "from_cli.py").read_text()
        with pytest.raises(ExportError, match="already exists"):
            shell.run_line_magic("kite", f"export {out} --notebook {notebook}")
        shell.run_line_magic("kite", f"export {out} --notebook {notebook} --force --main")
        assert "def main() -> None:" in out.read_text()
    finally:
        from kite_lab.notebook.extension import unload_ipython_extension

        unload_ipython_extension(shell)
        InteractiveShell.clear_instance()


def test_nbconvert_produces_the_same_file(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "conv.ipynb", "%load_ext kite_lab", "import json\n\nx = {'a': 1}",
        "%%kite -f json -o data\nGive {x} back as JSON {\"literal\": true}",
        ("markdown", "# Notes\nsome text"), "data")
    assert cli_main(["export", str(notebook), "-o", str(tmp_path / "cli.py")]) == 0
    proc = subprocess.run([JUPYTER_BIN, "nbconvert", "--to", "kite-script", str(notebook),
                           "--output-dir", str(tmp_path / "nbc")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "nbc" / "conv.py").read_text() == (tmp_path / "cli.py").read_text()
    main = subprocess.run([JUPYTER_BIN, "nbconvert", "--to", "kite-script", str(notebook),
                           "--KiteScriptExporter.main=True", "--stdout"],
                          capture_output=True, text=True, timeout=120)
    assert main.returncode == 0 and "def main() -> None:" in main.stdout


def test_nbconvert_exporter_in_process() -> None:
    from nbconvert.exporters import get_exporter

    from kite_lab.notebook.export.nbconvert import KiteScriptExporter

    assert get_exporter("kite-script") is KiteScriptExporter
    node = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%%kite\nhi")])
    body, resources = KiteScriptExporter().from_notebook_node(
        node, resources={"metadata": {"name": "x", "path": ""}})
    assert 'ai.generate("hi")' in body and resources["output_extension"] == ".py"
    assert json.loads(json.dumps(resources["metadata"]))["name"] == "x"
