"""What the compiler emits for each construct: interpolation, magics, names, modes, secrets."""

from __future__ import annotations

import ast
import keyword
import re
import types
from pathlib import Path
from typing import Any

import nbformat
import pytest
from export_helpers import (
    SCRIPT_KEY,
    ruff_problems,
    run_script,
    tagged_json,
    uses_get_ipython,
    write_notebook,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kite_lab.core.errors import ExportError
from kite_lab.core.interpolate import interpolate
from kite_lab.notebook.export import export_source
from kite_lab.notebook.export.source import LIMIT, Names, string_pieces

SETUP = (
    "from kite_lab import Kite\nfrom kite_lab.notebook import use\n"
    "from kite_lab.testing import FakeLLMServer\n\n"
    "server = FakeLLMServer().start()\n"
    "ai = use(Kite(config={\n    \"llm_provider\": \"openai\",\n"
    "    \"openai_api_key\": \"sk-unit-test-0000\",\n"
    "    \"openai_base_url\": server.openai_base_url,\n}, env_file=None))"
)


def book(*cells: str | tuple[str, str]) -> Any:
    node = nbformat.v4.new_notebook()
    for cell in cells:
        kind, source = cell if isinstance(cell, tuple) else ("code", cell)
        maker = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        node.cells.append(maker(source))
    return node


def compile_cells(*cells: str | tuple[str, str], **options: Any) -> str:
    return str(export_source(book(*cells), label="t.ipynb", **options))


def body_of(script: str) -> str:
    """The script without its header docstring (where words like 'kite' appear)."""
    return script.split('"""', 2)[2]


# -- interpolation -----------------------------------------------------------------------

NAMESPACE: dict[str, Any] = {
    "city": "Paris",
    "row": {"title": "Dune", "it's": "q", 'say "hi"': "dq", 3: "three"},
    "items": ["zero", "one"],
    "obj": types.SimpleNamespace(attr="A", inner={"k": [1, 2]}),
    "jsonlib": types,  # a module: never interpolated
    "empty": "",
}
FRAGMENTS = [
    "{city}", "{row[title]}", "{row['title']}", '{row["title"]}', "{row[it's]}", "{row[3]}",
    "{items[1]}", "{items[-1]}", "{obj.attr}", "{obj.inner[k][0]}", "{jsonlib}", "{missing}",
    "{missing.x}", "{{city}}", "{{", "}}", "{", "}", "{}", '{"a": 1}', "\\frac{a}{b}", "$x^{2}$",
    '"', "'", "\\", "\\n", "\n", "\t", " ", "word", "é✓😀", "\x00", "{empty}", "{city!r}",
    "{ city }", "{row[say \"hi\"]}", "{obj.missing}", "{row[nokey]}",
]


def _defined(namespace: dict[str, Any]) -> dict[str, str]:
    return {k: "module" if isinstance(v, types.ModuleType) else "value"
            for k, v in namespace.items()}


def _as_python(text: str, width: int = 60) -> tuple[str, list[str]]:
    hoist: list[str] = []
    pieces = string_pieces(text, interpolate=True, defined=_defined(NAMESPACE), hoist=hoist,
                           names=Names(NAMESPACE), width=width)
    return "(" + "\n".join(pieces) + ")", hoist


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12), st.integers(20, 120))
def test_generated_fstrings_send_what_the_magic_sends(parts: list[str], width: int) -> None:
    text = "".join(parts)
    expected = interpolate(text, NAMESPACE)
    code, hoist = _as_python(text, width)
    namespace = dict(NAMESPACE)
    compile(code, "<prompt>", "eval")  # valid on this Python (3.11: no PEP 701 leniency)
    if expected.skipped:  # the notebook leaves a failed lookup literal; the script raises
        with pytest.raises((LookupError, AttributeError, TypeError)):
            for line in hoist:
                exec(line, namespace)
            eval(code, namespace)
        return
    for line in hoist:
        exec(line, namespace)
    assert eval(code, namespace) == expected.text


def test_no_interpolation_keeps_every_brace() -> None:
    hoist: list[str] = []
    text = "{city} {{city}} {row[title]}"
    pieces = string_pieces(text, interpolate=False, defined=_defined(NAMESPACE), hoist=hoist,
                           names=Names(), width=80)
    assert eval("".join(pieces)) == text and not hoist


def test_long_prompts_split_into_lines_that_fit() -> None:
    code, _ = _as_python(("lorem ipsum {city} " * 30 + "\n") * 3 + "x" * 250, width=70)
    assert all(len(line) <= 72 for line in code.splitlines())
    assert eval(code, dict(NAMESPACE)) == interpolate(
        ("lorem ipsum {city} " * 30 + "\n") * 3 + "x" * 250, NAMESPACE).text


def test_only_names_defined_by_earlier_cells_are_interpolated() -> None:
    script = compile_cells("%%kite -o early\nfirst {later} and {early_var}",
                           "early_var = 1", "later = 2", "%%kite -o late\nthen {later}")
    first = script.split("# %% [1]")[1].split("# %% [2]")[0]
    assert '"first {later} and {early_var}"' in first  # nothing defined yet: literal
    assert 'f"then {later}"' in script


def test_modules_imports_and_deleted_names() -> None:
    script = compile_cells("import json\nfrom os import path\nx = 1\ndel x",
                           "%%kite\n{json} {path} {x}")
    assert '"{json} {path} {x}"' not in script  # path is a value (from-import)
    assert 'f"{{json}} {path} {{x}}"' in script


# -- %%kite cells ---------------------------------------------------------------------------


def test_kite_cell_shapes() -> None:
    script = compile_cells(
        SETUP,
        "%%kite -o a --temperature 0 --max-tokens 5 -m '{\"top_p\": 0.5, \"x-y\": [1, true]}'"
        "\nhi",
        "%%kite -f json -o data openai/gpt-4o\ngive json",
        "%%kite -f df -o frame --no-cache\nrecords",
        "%%kite -f code -o code\ncode",
        "%%kite -f html\npage",
        "%%kite --system 'Be {brief}' --session s1 -o t\nremember me",
    )
    assert ("a = answer_text(ai.generate(\"hi\", top_p=0.5, temperature=0.0, max_tokens=5, "
            "**{\"x-y\": [1, True]}))") in script
    assert 'data = parse_json(ai.generate("give json", model="openai/gpt-4o").text)' in script
    assert 'frame = to_dataframe(parse_json(ai.generate("records", cache=False).text))' in script
    assert 'code = answer_code(ai.generate("code"))' in script
    assert 'answer = answer_text(ai.generate("page"))' in script
    assert "messages=session_messages(ai, \"s1\", prompt, 20)" in script
    assert 'remember_turn(ai, "s1", prompt, completion.text)' in script
    assert "get_ipython" not in script
    assert not ruff_problems(_write(script))


def test_agents_tools_and_dry_run() -> None:
    script = compile_cells(
        SETUP,
        "helper = ai.create_agent('helper', 'Be brief.')",
        "%%kite agent:helper -o run --session s\nhi {helper.name}",
        "%%kite agent:other -f json -o doc\njson please",
        "def add(a: int, b: int) -> int:\n    return a + b",
        "%%kite --tools add,calculator,nothing -o summed\n2 + 2?",
        "%%kite --dry-run\nonly {helper.name} shown",
    )
    assert "agent = helper if isinstance(helper, Agent) else ai.agents[\"helper\"]" in script
    assert 'run = agent.run_sync(f"hi {helper.name}", session_id="s")' in script
    assert "check_run(run)" in script
    assert 'result = ai.agents["other"].run_sync("json please")' in script
    assert "doc = parse_json(result.response)" in script
    assert ('cell_tools = [\n    resolve_tool(ai, "add", add),\n    resolve_tool(ai, "calculator"),'
            '\n    resolve_tool(ai, "nothing"),\n]') in script
    assert 'print(f"only {helper.name} shown")' in script
    assert not ruff_problems(_write(script))


@pytest.mark.parametrize("cell, words", [
    ("%%kite agent:a --temperature 0\nhi", "--temperature do not apply to agent:a"),
    ("%%kite --tools add --max-tokens 3\nhi", "--tools runs an agent loop"),
    ("%%kite --bogus\nhi", "unrecognized arguments: --bogus"),
    ("%%kite\n   \n", "the %%kite cell is empty"),
    ("%%kite -m '{\"cache\": true}'\nhi", "-m cannot set 'cache'"),
    ("%%kite --dry-run -o plan\nhi", "--dry-run with -o"),
    ("%kite alias a b\n%kite alias b a", None),
    ("%kite bogus", "unknown command 'bogus'"),
    ("%kite alias nothere", "no alias 'nothere'"),
    ("x = %kite status", "has no value in a script"),
    ("files = !ls", "output of the shell command !ls"),
    ("%cd /tmp", "unknown or unsupported magic %cd"),
    ("%%writefile x.txt\nhi", "unknown cell magic %%writefile"),
    ("print(Out[1])", "uses Out"),
    ("value = _3 + 1", "uses _3"),
    ("get_ipython().run_cell('1')", "get_ipython()"),
    ("async with ctx() as c:\n    pass", "top-level 'async for'/'async with'"),
    ("x = 1\n%%kite\nhi", "must be the first line of its cell"),
    ("def f(:\n  pass", "syntax error on line 1"),
])
def test_errors_name_the_cell(cell: str, words: str | None) -> None:
    cells = ["%load_ext kite_lab", cell]
    if words is None:  # an alias cycle shows up where the alias is used
        cells.append("%%kite a\nhi")
    with pytest.raises(ExportError) as info:
        compile_cells(*cells)
    message = str(info.value)
    assert message.startswith("t.ipynb, cell ") and info.value.cell in (2, 3)
    assert (words or "alias cycle") in message


def test_other_languages_are_refused() -> None:
    node = book("x = 1")
    node.metadata["kernelspec"] = {"name": "ir", "language": "R", "display_name": "R"}
    with pytest.raises(ExportError, match="is a R notebook"):
        export_source(node, label="r.ipynb")


# -- line magics and IPython syntax -------------------------------------------------------


def test_line_commands() -> None:
    script = compile_cells(
        "%load_ext kite_lab",
        "%kite alias fast openai/gpt-4o-mini\n%kite alias fast2 fast",
        "%%kite fast -o f\nhi",
        "%%kite --session s1\nhi",
        "x = %kite complete Say hi to {f}\n%kite breaker reset\n"
        "%kite breaker trip down --provider p",
        "%kite history s1",
        "%kite reset",
        "%kite calls\n%kite status",
        "%kite cost",
    )
    body = body_of(script)
    assert 'aliases = {}  # %kite alias NAME TARGET' in body
    assert 'aliases["fast"] = "openai/gpt-4o-mini"' in body
    assert 'f = answer_text(ai.generate("hi", model=aliases["fast"]))' in body
    assert 'x = answer_text(ai.generate(f"Say hi to {f}"))' in body
    assert "ai.circuit_breaker.reset()" in body
    assert 'ai.breaker_for("p").trip("down")' in body
    assert 'show(history_df(ai, "s1"))' in body
    assert 'ai.session_memory.delete_session("s1")' in body
    assert "# %kite calls: its value is not shown here" in body
    assert "%kite status: shows information in the notebook only" in body
    assert "show(cost_df(ai))" in body
    assert "ai = current()  # the Kite the %%kite cells use" in body
    assert not ruff_problems(_write(script))


def test_ipython_syntax_is_compiled_dropped_or_commented() -> None:
    script = compile_cells(
        "%pip install requests",
        "!ls -la",
        "%%bash\necho hi",
        "%time y = 1\nz = %timeit -n1 -r1 y + 1",
        "%%time\nw = 2\nw",
        "%matplotlib inline\n%config KiteMagics.default_format = 'text'\n%config Other.x = 1\n"
        "%config KiteMagics.stream = False",
        "%env PLAIN=1\n%env SECRET_TOKEN=abc\nhome = %env HOME",
        "r = await coro()\nasync def g():\n    return await coro()",
        "display(1)",
        "obj?",
    )
    body = body_of(script)
    for text in ("# %pip install requests", "# WARNING: this shell command is not run",
                 "# !ls -la", "# WARNING: a %%bash cell is not run", "y = 1  # %time",
                 "z = (y + 1)", "show(w)", "# %matplotlib inline: IPython only, dropped",
                 "(applied to the %%kite cells below)", "(no effect in a script)",
                 "# %config Other.x = 1: IPython only, dropped",
                 'environ["PLAIN"] = "1"', "# %env SECRET_TOKEN=... dropped",
                 'home = environ["HOME"]', "r = run_sync(coro())", "return await coro()",
                 "from kite_lab.script import show as display",
                 "# %pinfo obj"):
        assert text in body, text
    assert "abc" not in body


def test_trailing_values_follow_the_notebook() -> None:
    executed = book("a = 1\na", "b = 2\nb", "c = 3\nc;", "print(4)", "(1, 2)", "5, 6")
    executed.cells[0].execution_count, executed.cells[0].outputs = 1, [
        nbformat.v4.new_output("execute_result", data={"text/plain": "1"}, execution_count=1)]
    executed.cells[1].execution_count = 2  # executed, showed nothing: not wrapped
    script = str(export_source(executed, label="t.ipynb"))
    assert "show(a)" in script and "show(b)" not in script
    assert "# c  (its value was not shown in the notebook)" in script
    assert "show(print" not in script and "show((1, 2))" in script and "show((5, 6))" in script


# -- names, the Kite, modes ---------------------------------------------------------------


def test_generated_names_never_shadow_the_notebook(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "names.ipynb", "%load_ext kite_lab", SETUP,
        "def show(x):\n    return 'mine'\n\n\nprompt = 'user prompt'\nanswer = 'user answer'\n"
        "answer_text = 'user helper name'\ncompletion = 0",
        "%%kite -o reply\nEcho {prompt} / {answer_text}",
        "%%kite --session s\nsecond",
        "import json\n\nprint('ROUNDTRIP ' + json.dumps([reply, show(1), prompt, answer, "
        "answer_text, completion]))\nserver.stop()",
    )
    from kite_lab.notebook.export import export_notebook

    script = export_notebook(path, tmp_path / "names.py")
    assert "import answer_text as answer_text_2" in script
    assert "import show as show_2" in script
    assert not ruff_problems(tmp_path / "names.py")
    proc = run_script(tmp_path / "names.py", block_ipython=True,
                      env={"KITE_HOME": str(tmp_path / "home")})
    assert proc.returncode == 0, proc.stderr
    assert tagged_json(proc.stdout, "ROUNDTRIP") == [
        "Echo: Echo user prompt / user helper name", "mine", "user prompt", "user answer",
        "user helper name", 0]


def test_which_kite_the_cells_use() -> None:
    dynamic = compile_cells(SETUP, "kites = [use(Kite())]", "%%kite\na", "%%kite\nb")
    assert dynamic.count("ai_2 = current()") == 2 and 'ai_2.generate("a")' in dynamic
    bare = compile_cells("from kite_lab.notebook import use\nfrom kite_lab import Kite\n"
                         "k = Kite()\nuse(k)", "%%kite\nhi")
    assert 'k.generate("hi")' in bare
    rebound = compile_cells(SETUP, "ai = 'not a kite any more'", "%%kite\nhi")
    assert "ai_2 = current()" in rebound


def test_main_mode_runs_only_as_a_program(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "prog.ipynb",
        "import json\n\ncounter = 0\n\n\ndef bump():\n    global counter\n    counter += 1\n",
        "text = '''line one\n    indented line\nline three'''\nbump()\nbump()",
        "print('ROUNDTRIP ' + json.dumps([counter, text]))",
    )
    from kite_lab.notebook.export import export_notebook

    script = export_notebook(path, tmp_path / "prog.py", main=True)
    assert "def main() -> None:\n    global counter\n" in script
    assert 'if __name__ == "__main__":\n    main()' in script
    assert not ruff_problems(tmp_path / "prog.py")
    proc = run_script(tmp_path / "prog.py", block_ipython=True)
    assert proc.returncode == 0, proc.stderr
    assert tagged_json(proc.stdout, "ROUNDTRIP") == [
        2, "line one\n    indented line\nline three"]
    imported = run_script(tmp_path / "prog.py", block_ipython=True, dump=True,
                          env={"PYTHONPATH": str(tmp_path)})
    assert "ROUNDTRIP" in imported.stdout  # run_path runs it as __main__ ...
    library = ast.parse(script)  # ... while `import prog` only defines main()
    assert [type(n).__name__ for n in library.body][-2:] == ["FunctionDef", "If"]


def test_service_and_main_do_not_mix() -> None:
    with pytest.raises(ExportError, match="--main and --service cannot be combined"):
        compile_cells("x = 1", main=True, service=True)


def test_pyproject_settings_of_the_notebook_apply(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.kite_lab]\ndefault_model = "fast"\ndefault_format = "json"\nmax_history = 3\n'
        '[tool.kite_lab.aliases]\nfast = "openai/gpt-4o-mini"\n')
    script = str(export_source(book("%%kite -o v\nhi", "%%kite --session s\nagain"),
                               label="p.ipynb", base_dir=tmp_path))
    assert 'aliases = {"fast": "openai/gpt-4o-mini"}' in script
    assert 'v = parse_json(ai.generate("hi", model=aliases["fast"]).text)' in script
    assert 'session_messages(ai, "s", prompt, 3)' in script


# -- output shape ----------------------------------------------------------------------


def test_markers_markdown_and_line_lengths() -> None:
    long_md = "word " * 60 + "\n\n| a | b |\n|---|---|\ntrailing spaces   "
    script = compile_cells(("markdown", long_md), "x = 1", ("markdown", ""), "", "y = 2")
    assert re.findall(r"^# %% (?:\[\w+\] )?\[(\d+)\]", script, re.M) == ["1", "2", "3", "4", "5"]
    assert "# %% [markdown] [1]" in script and "# %% [2]" in script
    assert all(len(line) <= LIMIT and line == line.rstrip() for line in script.splitlines())
    assert not ruff_problems(_write(script))


def test_names_helper_skips_keywords_and_taken() -> None:
    names = Names({"ai", "ai_2", "prompt"})
    assert names.fresh("ai") == "ai_3" and names.temp("prompt") == "prompt_2"
    assert names.temp("prompt") == "prompt_2" and not keyword.iskeyword(names.fresh("class"))


# -- secrets ------------------------------------------------------------------------------


def test_secrets_never_reach_the_script(monkeypatch: pytest.MonkeyPatch) -> None:
    fakes = {"OPENAI_API_KEY": "sk-proj-FAKE0123456789abcdefXYZ",
             "MY_SERVICE_KEY": "svc-FAKE-9876543210-key", "HF_TOKEN": "hf_FAKEtoken0123456789"}
    for name, value in fakes.items():
        monkeypatch.setenv(name, value)
    script = compile_cells(
        "from kite_lab import Kite\n"
        f"ai = Kite(config={{'openai_api_key': {fakes['OPENAI_API_KEY']!r}}})\n"
        f"ai.config['openai_api_key'] = {fakes['OPENAI_API_KEY']!r}\n"
        f"other = Kite(openai_api_key={fakes['OPENAI_API_KEY']!r})",
        f"%env HF_TOKEN={fakes['HF_TOKEN']}",
        f"%env MY_SERVICE_KEY {fakes['MY_SERVICE_KEY']}",
    )
    assert all(value not in script for value in fakes.values())
    assert script.count('environ["OPENAI_API_KEY"]') == 3
    assert "Keys are read from the environment: OPENAI_API_KEY." in script
    with pytest.raises(ExportError) as info:  # a literal that is not key-shaped: last line
        compile_cells("x = 1", f"token = {fakes['MY_SERVICE_KEY']!r}")
    assert info.value.cell == 2 and "MY_SERVICE_KEY" in str(info.value)
    assert fakes["MY_SERVICE_KEY"] not in str(info.value)
    with pytest.raises(ExportError, match="shaped like an API key"):
        compile_cells("client_key = 'sk-ant-abcdefghijklmnopqrstu'")


def _write(script: str) -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="kite-export-ruff-"))
    path = folder / "script.py"
    path.write_text(script)
    return path


def test_script_key_constant_is_not_in_scripts() -> None:
    assert SCRIPT_KEY not in compile_cells(SETUP)


CELL_PARTS = [
    "x = 1", "y = {x}", "print(x)", "%time x + 1", "%kite calls", "%kite alias a b",
    "z = %kite complete hi {x}", "!ls", "%pip install q", "%load_ext kite_lab", "In[1]",
    "await f()", "def f():\n    return {}", "obj?", "%env A=1", "for i in x:\n    %time i",
    "%%kite\nhi {x}", "%%kite -o o -f json\n{\"a\": {x}}", "%%kite agent:a\nhi",
    "%%kite --tools t\nhi", "%%kite --bogus\nhi", "%%time\nq = 1", "%%html\n<b>", "if x:",
    "%%kite --session s -o s\n{{x}}", "%kite reset", "%kite breaker trip why", "x;",
    "'''multi\nline'''", "display(x)", "_", "get_ipython()", "%unknown", "%%kite\n",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(st.sampled_from(CELL_PARTS), min_size=1, max_size=3), max_size=6),
       st.booleans())
def test_any_notebook_compiles_or_fails_with_an_export_error(cells: list[list[str]],
                                                             main: bool) -> None:
    sources = ["\n".join(parts) for parts in cells]
    try:
        script = compile_cells(*sources, main=main)
    except ExportError as exc:
        assert exc.cell is not None and str(exc).startswith(f"t.ipynb, cell {exc.cell}: ")
        return
    assert not uses_get_ipython(script)


def test_future_imports_move_to_the_top_and_star_imports_stay_out_of_main(
        tmp_path: Path) -> None:
    script = compile_cells("x = 1", "from __future__ import annotations\n\n\n"
                           "def f(a: Undefined) -> None:\n    return None\n\n\nprint(f(1))")
    assert script.split('"""')[2].lstrip().startswith("from __future__ import annotations")
    assert "# from __future__ import annotations: at the top of the script" in script
    path = tmp_path / "future.py"
    path.write_text(script)
    assert run_script(path, block_ipython=True).stdout.strip() == "None"
    assert "from os.path import *" in compile_cells("from os.path import *\nprint(join)")
    with pytest.raises(ExportError, match=r"'from os.path import \*' cannot run inside main"):
        compile_cells("x = 1", "from os.path import *", main=True)
