"""Every tutorial in notebooks/ round-trips: executed in a kernel, exported, run as a plain
script; the %%kite answers and the plain values the script computes equal the notebook's.

The notebooks are deterministic by construction (the fake provider server with scripted
replies, or the embedded model at temperature 0), so values are compared exactly. Values
that measure time or the machine (latencies, timestamps) are named below and skipped.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest
from export_helpers import (
    ROOT,
    SCRIPT_KEY,
    SIMPLE_SOURCE,
    normalize,
    ruff_codes,
    ruff_problems,
    run_script,
    tagged_json,
    uses_get_ipython,
)

from kite_lab.demo import execute_notebook
from kite_lab.notebook.export import (
    compare_answers,
    export_source,
    stored_answers,
    uses_fake_server,
)
from kite_lab.script import CHECK_FILE_ENV

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: folders next to the notebooks that they read by relative path
NEIGHBOURS = ("data", "cassettes", "evals")
#: names whose values depend on time or on the machine, per notebook
UNSTABLE: dict[str, set[str]] = {"monitoring": {"text"}}
DUMP_CELL = SIMPLE_SOURCE + (
    "\nimport json as _json\n"
    "print('NAMESPACE ' + _json.dumps(simple_namespace(dict(globals())), sort_keys=True))\n")


def test_the_tutorials_are_there() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"quickstart", "agents_and_tools",
                                           "breaker_and_safety", "memory_rag", "monitoring"}


@pytest.mark.parametrize("source", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_round_trip(source: Path, tmp_path: Path) -> None:
    book = nbformat.read(source, as_version=4)
    book.cells.append(nbformat.v4.new_code_cell(DUMP_CELL))
    for folder in NEIGHBOURS:  # what a tutorial reads beside it (datasets, cassettes, specs)
        if (source.parent / folder).is_dir():
            shutil.copytree(source.parent / folder, tmp_path / folder)
    probe = tmp_path / source.name
    nbformat.write(book, probe)
    executed = execute_notebook(probe, timeout=300, cwd=tmp_path,
                                env={"KITE_HOME": str(tmp_path / "nb_home")})
    dump = executed.cells.pop()
    notebook_values = tagged_json("".join(o.get("text", "") for o in dump.outputs),
                                  "NAMESPACE")
    nbformat.write(executed, probe)

    script = export_source(executed, label=source.name, base_dir=source.parent, record=True)
    assert not uses_get_ipython(script)
    code_lines = [ln for ln in script.splitlines() if not ln.lstrip().startswith("#")]
    assert not any("get_ipython" in ln for ln in code_lines)
    script_path = tmp_path / f"{source.stem}.py"
    script_path.write_text(script)
    # ruff-clean, except for what ruff already finds in the notebook's own code
    own = ruff_codes(source)
    added = {c: n for c, n in ruff_codes(script_path).items() if n > own.get(c, 0)}
    assert not added, ruff_problems(script_path)
    answers = tmp_path / "answers.jsonl"
    widgets = "widgets" in script or "load_with_progress" in script
    proc = run_script(script_path, block_ipython=not widgets, dump=True, cwd=tmp_path,
                      env={"KITE_HOME": str(tmp_path / "script_home"),
                           CHECK_FILE_ENV: str(answers), "OPENAI_API_KEY": SCRIPT_KEY})
    assert proc.returncode == 0, proc.stderr[-4000:]

    got = {}
    if answers.exists():
        for line in answers.read_text().splitlines():
            item = json.loads(line)
            got[item["cell"]] = item["text"]
    report = io.StringIO()
    status = compare_answers(stored_answers(executed), got, script.answer_cells,
                             uses_fake_server(executed), report)
    assert status == 0, report.getvalue()
    assert report.getvalue().count(": same") == len(script.answer_cells), report.getvalue()

    script_values = tagged_json(proc.stdout, "NAMESPACE")
    skip = UNSTABLE.get(source.stem, set())
    shared = sorted(set(notebook_values) & set(script_values) - skip)
    assert shared, "no plain values to compare"
    assert {k: normalize(script_values[k]) for k in shared} == {
        k: normalize(notebook_values[k]) for k in shared}
    _all_notebook_names_exist(notebook_values, script_values, skip)


def _all_notebook_names_exist(notebook: dict[str, Any], script: dict[str, Any],
                              skip: set[str]) -> None:
    """Every plain variable of the notebook exists in the script too (nothing dropped)."""
    missing = set(notebook) - set(script) - skip
    assert not missing, f"the script lacks {sorted(missing)}"
