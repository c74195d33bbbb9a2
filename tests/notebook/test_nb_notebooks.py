"""Every tutorial notebook executes in a fresh kernel of this Python (nbclient), keyless;
an error in a %%kite cell fails the execution with a short message; `make demo` works."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

from kite_lab.demo import execute_notebook, find_notebooks_dir, run_demo, summarize

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
TUTORIALS = ["agents_and_tools", "breaker_and_safety", "evaluate", "memory_rag", "monitoring"]


def test_the_tutorials_exist() -> None:
    names = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert {"quickstart", *TUTORIALS} <= names


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_executes(name: str, tmp_path: Path) -> None:
    executed = execute_notebook(NOTEBOOKS / f"{name}.ipynb", timeout=120,
                                env={"KITE_HOME": str(tmp_path / "home")})
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    shown = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert len(shown) >= 5


def test_demo_runs_quickstart_offline(tmp_path: Path, capsys: Any) -> None:
    assert find_notebooks_dir() == NOTEBOOKS  # cwd is tmp_path: found via the checkout
    assert run_demo(NOTEBOOKS / "quickstart.ipynb", out_dir=tmp_path / "out") == 0
    html = (tmp_path / "out" / "quickstart.html").read_text()
    assert "kite_lab quickstart" in html and "smollm2" in html
    printed = capsys.readouterr().out
    assert "local/smollm2" in printed and "cached" in printed


def _notebook(tmp_path: Path, *sources: str) -> Path:
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    path = tmp_path / "broken.ipynb"
    nbformat.write(book, path)
    return path


@pytest.mark.parametrize(
    "cell, ename, words",
    [
        ("%%kite --bogus\nhi", "UsageError", "unrecognized arguments: --bogus"),
        ("%%kite nosuch/model\nhi", "UnknownProvider", "unknown provider 'nosuch'"),
    ],
)
def test_an_error_fails_the_cell_with_a_short_message(tmp_path: Path, cell: str, ename: str,
                                                      words: str) -> None:
    path = _notebook(tmp_path, "%load_ext kite_lab", cell, "print('never reached')")
    with pytest.raises(CellExecutionError) as info:
        execute_notebook(path, timeout=60, env={"KITE_HOME": str(tmp_path / "home")})
    assert info.value.ename == ename and words in info.value.evalue
    assert "File " not in str(info.value.traceback)  # no wall of frames
    assert "never reached" not in str(info.value)


def test_summary_reads_the_provenance() -> None:
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x")])
    book.cells[0].outputs = [nbformat.v4.new_output(
        "display_data", data={"text/plain": "Paris\n\n— local/m · 3 tokens"},
        metadata={"kite_lab": {"target": None}})]
    assert summarize(book) == ["'Paris'  [local/m · 3 tokens]"]
