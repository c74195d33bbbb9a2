"""The cell form: ``%%kite --over df -o labels`` in a real IPython shell, and its export to
the same ``ai.map`` call (the script run against the fake server gives the same frame)."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest
from batch_helpers import raising_shell
from IPython.core.error import UsageError

from kite_lab.batch.plan import META_COLUMNS
from kite_lab.notebook.export import export_source

pytestmark = pytest.mark.timeout(90)

SETUP = (
    "import pandas as pd\n"
    "from kite_lab import Kite\nfrom kite_lab.notebook import use\n"
    "from kite_lab.testing import FakeLLMServer\n\n"
    "server = FakeLLMServer().start()\n"
    "ai = use(Kite(config={\n    \"llm_provider\": \"openai\",\n"
    "    \"openai_api_key\": \"sk-unit-test-0000\",\n"
    "    \"openai_base_url\": server.openai_base_url,\n}, env_file=None))"
)
DATA = "df = pd.DataFrame({'review': ['great', 'awful', 'fine']}, index=[3, 1, 2])"
MAP_CELL = ("%%kite --over df -o labels gpt-4.1-nano --concurrency 2 --temperature 0 "
            "--checkpoint labels.sqlite --system 'Answer in {n_words} words.'\n"
            'Classify {review} as JSON like {"label": "..."}\n')


@pytest.fixture
def shell() -> Iterator[Any]:
    ip = raising_shell()
    try:
        yield ip
    finally:
        from kite_lab.notebook.extension import unload_ipython_extension

        unload_ipython_extension(ip)
        type(ip).clear_instance()


def run_notebook(shell: Any, *cells: str) -> dict[str, Any]:
    shell.run_line_magic("load_ext", "kite_lab")
    for cell in cells:
        shell.run_cell(cell)
    return shell.user_ns


def test_the_cell_maps_the_body_over_the_rows(shell: Any) -> None:
    ns = run_notebook(shell, SETUP, DATA, "n_words = 2", MAP_CELL)
    labels, server = ns["labels"], ns["server"]
    try:
        assert isinstance(labels, pd.DataFrame)
        assert list(labels.columns) == ["review", "answer", *META_COLUMNS]
        assert list(labels.index) == [3, 1, 2]
        assert labels["answer"].tolist() == [
            f'Echo: Classify {w} as JSON like {{"label": "..."}}' for w in
            ("great", "awful", "fine")]
        sent = server.requests[-1].json
        assert sent["model"] == "gpt-4.1-nano" and sent["temperature"] == 0
        # the system text is a notebook template; the body is a template over the rows
        assert sent["messages"][0]["content"] == "Answer in 2 words."
        assert Path("labels.sqlite").exists()
        with pytest.raises(UsageError, match=r"--over df: .*no column 'revieww'"):
            shell.run_cell("%%kite --over df\nClassify {revieww}\n")
        with pytest.raises(UsageError, match="--over nothing: no such variable"):
            shell.run_cell("%%kite --over nothing\nClassify {review}\n")
        with pytest.raises(UsageError, match="--budget need --over DF"):
            shell.run_cell("%%kite --budget 1\nhi\n")
        with pytest.raises(UsageError, match="does not take --session"):
            shell.run_cell("%%kite --over df --session s\nClassify {review}\n")
    finally:
        server.stop()


def test_the_export_is_the_same_ai_map_call(shell: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unit-test-0000")  # the script reads it there
    cells = [SETUP, DATA, "n_words = 2", MAP_CELL]
    node = nbformat.v4.new_notebook()
    node.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    script = str(export_source(node, label="t.ipynb"))
    assert (
        "prompt = 'Classify {review} as JSON like {\"label\": \"...\"}'\n"
        "labels = ai.map(\n"
        "    df,\n"
        "    prompt,\n"
        '    model="gpt-4.1-nano",\n'
        '    system=f"Answer in {n_words} words.",\n'
        "    temperature=0.0,\n"
        "    concurrency=2,\n"
        '    checkpoint="labels.sqlite",\n'
        ")\n"
        "print(labels)\n"
    ) in script
    path = tmp_path / "t.py"
    path.write_text(script)
    exported = runpy.run_path(str(path), run_name="__main__")
    notebook = run_notebook(shell, *cells)
    try:
        got, expected = exported["labels"], notebook["labels"]
        columns = ["review", "answer", "_error", "_total_tokens", "_row_key"]
        pd.testing.assert_frame_equal(got[columns], expected[columns])
        assert expected["_cached"].all()  # the notebook reran the script's checkpoint
    finally:
        exported["server"].stop()
        notebook["server"].stop()
