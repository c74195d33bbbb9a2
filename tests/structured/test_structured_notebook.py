"""``%%kite --schema NAME`` and ``--image VAR_OR_PATH`` in a real IPython shell on the
fake server, and the script ``kite-lab export`` compiles from such cells, run for real."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from PIL import Image
from pydantic import BaseModel
from traitlets.config import Config

from kite_lab import Kite
from kite_lab.notebook.export import export_source
from kite_lab.testing import Reply


class RaisingShell(InteractiveShell):
    """``run_cell`` re-raises the cell's exception, so a broken magic fails the test."""

    def run_cell(self, raw_cell: str, *args: Any, **kwargs: Any) -> Any:
        result = super().run_cell(raw_cell, *args, **kwargs)
        result.raise_error()
        return result


class Person(BaseModel):
    name: str
    age: int


@pytest.fixture
def ip(fake_llm) -> Iterator[RaisingShell]:
    from kite_lab.notebook import use
    from kite_lab.notebook.extension import unload_ipython_extension

    config = Config()
    config.HistoryManager.enabled = False
    InteractiveShell.clear_instance()
    shell = RaisingShell.instance(config=config)
    ai = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-test-nb-structured-0123",
                      "openai_base_url": fake_llm.openai_base_url, "cache_backend": "none"},
              env_file=None)
    shell.run_line_magic("load_ext", "kite_lab")
    use(ai)
    shell.user_ns.update(ai=ai, Person=Person)
    try:
        yield shell
    finally:
        unload_ipython_extension(shell)
        RaisingShell.clear_instance()
        ai.close()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), "red").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_schema_cell_stores_the_instance(ip, fake_llm, stream) -> None:
    fake_llm.enqueue(Reply.json_answer({"name": "Ada", "age": 36}))
    ip.run_cell_magic("kite", f"--schema Person -o person {stream}", "Ada is 36.")
    assert ip.user_ns["person"] == Person(name="Ada", age=36)
    assert fake_llm.requests[-1].json["response_format"]["json_schema"]["name"] == "Person"


def test_list_schema_with_df_gives_one_column_per_field(ip, fake_llm) -> None:
    two = [{"name": "A", "age": 1}, {"name": "B", "age": 2}]
    fake_llm.enqueue(Reply.json_answer({"items": two}))
    ip.run_cell_magic("kite", "--schema list[Person] -f df -o people --no-stream", "Two people")
    frame = ip.user_ns["people"]
    assert list(frame.columns) == ["name", "age"] and frame["age"].tolist() == [1, 2]


def test_schema_names_that_do_not_exist_or_do_not_fit(ip, fake_llm) -> None:
    with pytest.raises(UsageError, match="no variable 'Nobody'"):
        ip.run_cell_magic("kite", "--schema Nobody --no-stream", "hi")
    with pytest.raises(UsageError, match="--schema takes a name"):
        ip.run_cell_magic("kite", "--schema 'Person()' --no-stream", "hi")
    with pytest.raises(UsageError, match="--schema and --image are for one model call"):
        ip.run_cell_magic("kite", "--schema Person --tools calculator", "hi")
    ip.user_ns["not_a_schema"] = 42
    with pytest.raises(TypeError, match="pydantic model class"):
        ip.run_cell_magic("kite", "--schema not_a_schema --no-stream", "hi")
    assert fake_llm.requests == []


def test_image_flags_take_variables_and_paths(ip, fake_llm, tmp_path) -> None:
    (tmp_path / "b.png").write_bytes(png())
    ip.user_ns["picture"] = Image.new("RGB", (1, 1), "blue")
    ip.run_cell_magic("kite", f"--image picture --image {tmp_path / 'b.png'} --no-stream",
                      "Compare them.")
    seen = fake_llm.requests[-1].images
    assert len(seen) == 2 and seen[1].data == png()
    with pytest.raises(Exception, match="missing.png"):
        ip.run_cell_magic("kite", "--image missing.png --no-stream", "look")
    assert len(fake_llm.requests) == 1


def test_session_history_keeps_an_image_reference_not_the_bytes(ip, fake_llm, tmp_path) -> None:
    ip.user_ns["ai"].config["kite_home"] = str(tmp_path)
    ip.user_ns["pic"] = png()
    ip.run_cell_magic("kite", "--image pic --session s1 --no-stream", "What is it?")
    history = ip.user_ns["ai"].session_memory.get_history("s1")
    user = next(m for m in history if m["role"] == "user")
    stored = str(user)
    assert "sha256" in stored and "iVBOR" not in stored  # no base64 PNG in the history


SETUP = (
    "from pydantic import BaseModel\n"
    "from kite_lab import Kite\nfrom kite_lab.notebook import use\n"
    "from kite_lab.testing import FakeLLMServer, Reply\n\n"
    "server = FakeLLMServer().start()\n"
    "ai = use(Kite(config={'llm_provider': 'openai', 'openai_api_key': 'sk-unit-test-0000',\n"
    "    'openai_base_url': server.openai_base_url}, env_file=None))\n\n"
    "class Person(BaseModel):\n    name: str\n    age: int\n"
)


def test_export_compiles_schema_and_image_cells_into_calls_that_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unit-test-0000")  # the script reads it from env
    (tmp_path / "a.png").write_bytes(png())
    node = nbformat.v4.new_notebook()
    node.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell("server.enqueue(Reply.json_answer({'name': 'Ada', 'age': 3}))"),
        nbformat.v4.new_code_cell("%%kite --schema Person -o person\nAda is 3."),
        nbformat.v4.new_code_cell("%%kite --schema list[Person] -f df -o frame\nPeople"),
        nbformat.v4.new_code_cell(f"pic = {str(tmp_path / 'a.png')!r}"),
        nbformat.v4.new_code_cell("%%kite --image pic --image other.png -o seen\nLook"),
    ]
    script = str(export_source(node, label="t.ipynb"))
    assert "schema=Person" in script and "schema=list[Person]" in script
    assert "parsed_value(" in script and "images=[pic, 'other.png']" in script.replace('"', "'")
    (tmp_path / "other.png").write_bytes(png())
    namespace: dict[str, Any] = {"__name__": "__main__"}
    try:
        exec(compile(script, "t.py", "exec"), namespace)  # noqa: S102 - the exported script
        person = namespace["person"]
        assert (person.name, person.age) == ("Ada", 3) and type(person).__name__ == "Person"
        assert list(namespace["frame"].columns) == ["name", "age"]
        assert len(namespace["server"].requests[-1].images) == 2
    finally:
        if "ai" in namespace:
            namespace["ai"].close()
            namespace["server"].stop()


def test_export_refuses_a_schema_that_is_not_defined() -> None:
    from kite_lab.core.errors import ExportError

    node = nbformat.v4.new_notebook()
    node.cells = [nbformat.v4.new_code_cell("%%kite --schema Ghost\nhi")]
    with pytest.raises(ExportError, match="Ghost"):
        export_source(node, label="t.ipynb")


def test_mcp_tools_serve_a_tools_cell_by_name(ip, fake_llm) -> None:
    import sys
    from pathlib import Path

    from kite_lab.testing import ToolCallSpec

    pytest.importorskip("mcp")
    server = str(Path(__file__).with_name("mcp_test_server.py"))
    ai = ip.user_ns["ai"]
    with ai.mcp_tools(command=[sys.executable, server], allow=["shout"]):
        fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("shout", {"text": "hey"})]),
                         Reply("It says HEY."))
        ip.run_cell_magic("kite", "--tools shout -o run --no-stream", "Shout hey")
    run = ip.user_ns["run"]
    assert run.success and run.tool_calls[0].result == "HEY"
