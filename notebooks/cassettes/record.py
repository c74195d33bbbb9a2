"""Re-record the tutorials' cassettes: ``python notebooks/cassettes/record.py [NAME ...]``.

Each tutorial listed below is executed in a fresh kernel against
``kite_lab.testing.FakeLLMServer``, scripted with the replies its calls should get (in
call order), with its ``%kite cassette ... --mode replay`` line switched to ``record``.
The cassettes are JSONL, one call per line with sorted keys, so a re-recording diffs
line by line. Commit them; CI replays them (``tests/replay/test_cassette_notebooks.py``).
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat

from kite_lab.demo import execute_notebook
from kite_lab.testing import FakeLLMServer, Fault, Reply, ToolCallSpec

NOTEBOOKS = Path(__file__).resolve().parents[1]


def agents_and_tools() -> list[Any]:
    return [
        Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"}, id="call_paris")]),
        Reply(text="It is sunny in Paris, 21°C."),
        Reply(tool_calls=[ToolCallSpec("add", {"a": 2, "b": 40}, id="call_add")]),
        Reply(text="2 + 40 = 42"),
        '[{"city": "Paris", "temp_c": 21}, {"city": "Oslo", "temp_c": 9}]',
        Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Oslo"}, id="call_oslo")]),
        Reply(text="Rain in Oslo, 9°C — take an umbrella."),
    ]


def monitoring() -> list[Any]:
    rng = random.Random(7)
    replies: list[Any] = []
    for i in range(24):
        if i % 8 == 7:
            replies.append(Fault(status=503, message="busy"))
        else:
            replies.append(Reply(text=f"answer {i}", latency=rng.uniform(0.0, 0.05),
                                 completion_tokens=rng.randint(5, 60)))
    return [*replies, "done", "done", Fault(status=400, message="bad request")]


SCRIPTS = {"agents_and_tools": agents_and_tools, "monitoring": monitoring}


def record(name: str) -> Path:
    book = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    line = f"%kite cassette cassettes/{name}.jsonl --mode replay"
    cells = [c for c in book.cells if c.cell_type == "code" and c.source.strip() == line]
    if len(cells) != 1:
        raise SystemExit(f"{name}.ipynb: expected one cell `{line}`")
    cells[0].source = line.replace("--mode replay", "--mode record")
    with tempfile.TemporaryDirectory() as tmp, FakeLLMServer() as server:
        server.enqueue(*SCRIPTS[name]())
        copy = Path(tmp) / f"{name}.ipynb"
        nbformat.write(book, copy)
        execute_notebook(copy, cwd=NOTEBOOKS, timeout=180,
                         env={"OPENAI_BASE_URL": server.openai_base_url,
                              "KITE_HOME": str(Path(tmp) / "home")})
        left = server.pending
        if left:
            raise SystemExit(f"{name}: {left} scripted replies were not used")
    cassette = NOTEBOOKS / "cassettes" / f"{name}.jsonl"
    print(f"recorded {cassette.relative_to(NOTEBOOKS.parent)}: "
          f"{len(cassette.read_text().splitlines())} calls")
    return cassette


if __name__ == "__main__":
    for each in sys.argv[1:] or list(SCRIPTS):
        record(each)
