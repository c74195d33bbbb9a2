"""The tutorials that need a scripted model run from their committed cassettes: offline,
keyless, no fake server, and twice in a row with identical outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from kite_lab.demo import execute_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
FROM_CASSETTES = ["agents_and_tools", "monitoring"]


# An agent run's own duration is measured live (the wall clock around replayed calls and
# real tools); every model answer, token, cost and call latency comes from the cassette.
_RUN_TIME = re.compile(r"\b\d+(?:\.\d+)? ?(?:ms|s)\b")


def _outputs(book: Any) -> list[Any]:
    """Every code cell's outputs (run durations masked), except cells tagged ``wall-clock``
    (time-bucketed plots, live widgets): those depend on when the notebook ran."""
    shown = []
    for cell in book.cells:
        if cell.cell_type != "code" or "wall-clock" in cell.metadata.get("tags", []):
            continue
        text = json.dumps([{k: v for k, v in o.items() if k != "execution_count"}
                           for o in cell.outputs], sort_keys=True)
        shown.append(_RUN_TIME.sub("<duration>", text))
    return shown


@pytest.mark.parametrize("name", FROM_CASSETTES)
def test_a_tutorial_replays_its_cassette_twice_identically(name: str, tmp_path: Path) -> None:
    book = json.loads((NOTEBOOKS / f"{name}.ipynb").read_text())
    sources = "".join("".join(c["source"]) for c in book["cells"] if c["cell_type"] == "code")
    assert "FakeLLMServer" not in sources and ".enqueue(" not in sources
    assert f"%kite cassette cassettes/{name}.jsonl --mode replay" in sources
    runs = []
    for attempt in range(2):
        executed = execute_notebook(NOTEBOOKS / f"{name}.ipynb", timeout=120, env={
            "KITE_HOME": str(tmp_path / f"home{attempt}"),
            "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",  # nothing listens: replay or fail
        })
        errors = [o for c in executed.cells for o in c.get("outputs", [])
                  if o.output_type == "error"]
        assert errors == []
        runs.append(_outputs(executed))
    for first, second in zip(*runs, strict=True):
        assert first == second
    assert sum(outputs != "[]" for outputs in runs[0]) >= 8
