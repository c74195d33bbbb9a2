"""`%%kite eval DATASET --targets ... --scorers ...` in a real IPython shell, and its
export: the script calls the same `evaluate_cell` and gets the same scores."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from IPython.core.error import UsageError

from kite_lab.evals import EvalResult
from kite_lab.notebook.export import export_source
from kite_lab.testing import Reply

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome"}
DATA = ("import pandas as pd\n"
        f"data = pd.DataFrame({{'country': {list(CAPITALS)!r}, "
        f"'answer': {list(CAPITALS.values())!r}}})")
CELL = ("%%kite eval data -o result --targets gpt-4o-mini,agent:geo "
        "--scorers exact_match:answer,contains:answer --concurrency 2 --name capitals\n"
        "Capital of {country}? One word.\n")


def _answer(request: Any) -> Reply:
    text = request.last_user_text
    country = next((c for c in CAPITALS if c in text), None)
    return Reply(text=CAPITALS[country] if country else "?")


def test_the_cell_evaluates_every_target(ip: Any, fake_llm: Any) -> None:
    fake_llm.set_handler(_answer)
    ip.run_cell(DATA)
    ip.run_cell('geo = ai.create_agent("geo", "Answer with the capital only.")')
    ip.run_cell(CELL)
    result = ip.user_ns["result"]
    assert isinstance(result, EvalResult) and result.name == "capitals"
    assert result.targets == ["gpt-4o-mini", "geo"]
    assert result.summary()["exact_match_mean"].tolist() == [1.0, 1.0]
    asked = {r.last_user_text for r in fake_llm.requests}
    assert {f"Capital of {c}? One word." for c in CAPITALS} <= asked  # the body, per row
    assert set(CAPITALS) <= asked  # the agent gets the row's input column (not the answer)


def test_bad_eval_cells_fail_with_one_line(ip: Any, fake_llm: Any) -> None:
    ip.run_cell(DATA)
    with pytest.raises(UsageError, match="the following arguments are required: --scorers"):
        ip.run_cell("%%kite eval data --targets gpt-4o-mini\nQ: {country}\n")
    with pytest.raises(UsageError, match="no variable 'nodata'"):
        ip.run_cell("%%kite eval nodata --targets gpt-4o-mini --scorers contains:answer\nx\n")
    with pytest.raises(UsageError, match=r"reads column 'expected'.*'country', 'answer'"):
        ip.run_cell("%%kite eval data --targets gpt-4o-mini --scorers contains:expected\nx\n")
    with pytest.raises(UsageError, match="cell body is empty"):
        ip.run_cell("%%kite eval data --targets gpt-4o-mini --scorers contains:answer\n")
    with pytest.raises(UsageError, match="--repeats must be >= 1"):
        ip.run_cell("%%kite eval data --targets a --scorers contains:answer --repeats 0\nx\n")
    assert fake_llm.requests == []


def test_the_export_runs_the_same_eval(ip: Any, fake_llm: Any, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    fake_llm.set_handler(_answer)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unit-test-0000")
    setup = ("from kite_lab import Kite\nfrom kite_lab.notebook import use\n"
             "ai = use(Kite(config={'llm_provider': 'openai', "
             f"'openai_base_url': {fake_llm.openai_base_url!r}}}, env_file=None))")
    cells = [setup, DATA, 'geo = ai.create_agent("geo", "Answer with the capital only.")', CELL]
    node = nbformat.v4.new_notebook()
    node.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    script = str(export_source(node, label="t.ipynb"))
    assert 'template = "Capital of {country}? One word."' in script
    assert "result = evaluate_cell(" in script and "print(result.summary())" in script
    assert "get_ipython" not in script
    path = tmp_path / "t.py"
    path.write_text(script)
    exported = runpy.run_path(str(path), run_name="__main__")["result"]
    for cell in cells[1:]:
        ip.run_cell(cell)
    in_notebook = ip.user_ns["result"]
    columns = ["sample", "target", "output", "exact_match", "contains", "total_tokens"]
    pd.testing.assert_frame_equal(exported.df[columns], in_notebook.df[columns])
