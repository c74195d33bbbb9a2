"""The edge-case corpus: every notebook either round-trips (the script computes what the
executed notebook computed, on the fake provider server) or fails to export naming its cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from export_corpus import ERRORS, FAKE_KEY, ROUNDTRIP, write_corpus
from export_helpers import normalize, ruff_problems, run_script, tagged_json

from kite_lab.core.errors import ExportError
from kite_lab.demo import execute_notebook
from kite_lab.notebook.export import check_export, export_notebook

ERROR_CELLS = {
    "error_in_history": (3, "uses In, IPython's input/output history"),
    "error_syntax": (3, "syntax error on line 1"),
    "error_unknown_magic": (2, "unknown or unsupported magic %cd"),
    "error_shell_output": (1, "output of the shell command !ls"),
    "error_late_cell_magic": (1, "%%kite must be the first line of its cell"),
    "error_api_key_in_code": (1, "shaped like an API key"),
    "error_agent_options": (2, "--temperature do not apply to agent:helper"),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder)
    return folder


@pytest.fixture(scope="module")
def executed(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each round-trip notebook executed once in a real kernel (nbclient)."""
    import nbformat

    done: dict[str, Any] = {}
    for name in ROUNDTRIP:
        work = tmp_path_factory.mktemp(f"run-{name}")
        book = execute_notebook(corpus / f"{name}.ipynb", timeout=120, cwd=work,
                                env={"KITE_HOME": str(work / "home")})
        nbformat.write(book, work / f"{name}.ipynb")
        done[name] = work / f"{name}.ipynb"
    return done


def _notebook_report(path: Path) -> Any:
    import nbformat

    book = nbformat.read(path, as_version=4)
    text = "".join(o.get("text", "") for c in book.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")
    return tagged_json(text, "ROUNDTRIP")


def test_error_table_covers_the_corpus() -> None:
    assert set(ERROR_CELLS) == set(ERRORS)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_notebooks_name_the_file_and_cell(corpus: Path, name: str,
                                                tmp_path: Path) -> None:
    cell, words = ERROR_CELLS[name]
    out = tmp_path / "out.py"
    with pytest.raises(ExportError) as info:
        export_notebook(corpus / f"{name}.ipynb", out)
    assert info.value.cell == cell, str(info.value)
    assert str(info.value).startswith(f"{corpus / name}.ipynb, cell {cell}: ")
    assert words in str(info.value)
    assert not out.exists()


def test_empty_notebook_is_an_empty_script(corpus: Path, tmp_path: Path) -> None:
    script = export_notebook(corpus / "empty.ipynb", tmp_path / "empty.py")
    assert script.cells == 0 and "\n# %%" not in script
    assert not ruff_problems(tmp_path / "empty.py")
    proc = run_script(tmp_path / "empty.py", block_ipython=True)
    assert proc.returncode == 0 and proc.stdout == ""


@pytest.mark.parametrize("name", sorted(ROUNDTRIP))
def test_corpus_round_trip(name: str, executed: dict[str, Path], tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    # known fake secrets in the environment; one equals the key the notebooks hard-code
    secrets = {"OPENAI_API_KEY": FAKE_KEY, "HF_TOKEN": "hf_fake_token_0123456789",
               "MY_SERVICE_KEY": "svc-fake-key-9876543210"}
    for variable, value in secrets.items():
        monkeypatch.setenv(variable, value)
    notebook = executed[name]
    script_path = tmp_path / f"{name}.py"
    script = export_notebook(notebook, script_path)
    assert not any(value in script for value in secrets.values())
    assert "get_ipython" not in script
    assert not ruff_problems(script_path), ruff_problems(script_path)
    proc = run_script(script_path, block_ipython=name != "syntax",  # syntax uses ipywidgets
                      env={"KITE_HOME": str(tmp_path / "home")}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert normalize(tagged_json(proc.stdout, "ROUNDTRIP")) == normalize(
        _notebook_report(notebook))


def test_main_mode_round_trip(executed: dict[str, Path], tmp_path: Path) -> None:
    script_path = tmp_path / "braces_main.py"
    export_notebook(executed["braces"], script_path, main=True)
    assert not ruff_problems(script_path)
    proc = run_script(script_path, block_ipython=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert normalize(tagged_json(proc.stdout, "ROUNDTRIP")) == normalize(
        _notebook_report(executed["braces"]))


def test_check_compares_the_stored_answers(executed: dict[str, Path], monkeypatch: Any,
                                           capsys: Any) -> None:
    from export_helpers import SCRIPT_KEY

    monkeypatch.setenv("OPENAI_API_KEY", SCRIPT_KEY)
    assert check_export(executed["formats"]) == 0
    report = capsys.readouterr().out
    assert report.count(": same") == 9 and "no difference" in report


def test_check_reports_a_difference(executed: dict[str, Path], tmp_path: Path,
                                    monkeypatch: Any, capsys: Any) -> None:
    import nbformat
    from export_helpers import SCRIPT_KEY

    book = nbformat.read(executed["braces"], as_version=4)
    for output in book.cells[5].outputs:  # cell 6: a2
        if "kite_lab" in output.get("metadata", {}):
            output["data"]["text/plain"] = "something the model never said"
    tampered = executed["braces"].parent / "tampered.ipynb"
    nbformat.write(book, tampered)
    monkeypatch.setenv("OPENAI_API_KEY", SCRIPT_KEY)
    assert check_export(tampered) == 1
    report = capsys.readouterr().out
    assert "cell 6: DIFFERENT" in report and "something the model never said" in report
