"""The edge-case notebooks of the exporter's tests, as code.

The tests write them as .ipynb files into their temporary directory (so no notebook with a
deliberate syntax error sits in the tree for ruff or Jupyter to trip on). To look at them
in Jupyter: ``python tests/export/corpus/export_corpus.py OUT_DIR``.

Round-trip notebooks talk to a FakeLLMServer started in their own first cell (the default
reply echoes the last user message, so a wrong interpolation shows up as a wrong value)
and end with a cell printing ``ROUNDTRIP {json}``: the values the notebook produced and the
requests the server received. The exported script prints the same line; tests compare.
Error notebooks must fail to export with a message naming the cell.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import nbformat

FAKE_KEY = "sk-corpus-fake-key-0123456789abcdef"  # replaced by environ[...] in the script

SETUP = f'''import json
import tempfile

from kite_lab import Kite
from kite_lab.notebook import use
from kite_lab.testing import FakeLLMServer

server = FakeLLMServer().start()
ai = use(Kite(config={{
    "llm_provider": "openai",
    "openai_api_key": "{FAKE_KEY}",
    "openai_base_url": server.openai_base_url,
    "cache_backend": "memory",
    "kite_home": tempfile.mkdtemp(prefix="kite-corpus-"),
}}, env_file=None))'''

REPORT_REQUESTS = '''def sent(request):
    body = request.json or {}
    keep = ("model", "messages", "temperature", "max_tokens", "top_p", "tools")
    return {k: body[k] for k in keep if k in body}

requests = [sent(r) for r in server.requests]'''


def roundtrip_cell(values: dict[str, str]) -> str:
    """The last cell: ``ROUNDTRIP {json}`` of ``values`` (name -> expression) and requests."""
    body = "".join(f"    {name!r}: {expr},\n" for name, expr in values.items())
    return (REPORT_REQUESTS + "\nvalues = {\n" + body.replace("'", '"') + "}\n"
            "report = {\"values\": values, \"requests\": requests}\n"
            "print(\"ROUNDTRIP \" + json.dumps(report, sort_keys=True, default=str))\n"
            "server.stop()")


BRACES = [
    ("markdown", "# Braces, interpolation, escapes\n\nEvery `{...}` form the magic knows."),
    ("code", "%load_ext kite_lab"),
    ("code", SETUP),
    ("code", "import json as jsonlib\n\ncity = \"Paris\"\nrow = {\"title\": \"Dune\", "
             "\"it's\": \"quoted\", 3: \"three\"}\nitems = [\"zero\", \"one\"]\n"
             "encoded = jsonlib.dumps(items)\n\n\n"
             "class Box:\n    name = \"kite\"\n    inner = {\"deep\": [10, 20]}\n\n\nbox = Box()"),
    ("code", "%%kite -o a1 --temperature 0\n"
             "City {city}; title {row['title']} / {row[\"title\"]} / {row[title]}\n"
             "item {items[1]} and {items[0]}; attr {box.name}; deep {box.inner[deep][1]}\n"
             "module stays {jsonlib}; unknown stays {nowhere} and {nowhere.attr}\n"
             "escaped {{city}} and {{row[title]}}; JSON {\"a\": {\"b\": [1, 2]}} and {}\n"
             "LaTeX \\frac{a}{b} and $x^{2}$; code: def f(): return {k: v for k, v in d}\n"
             "quotes \" and ' and a backslash C:\\temp\\new; tab\there; unicode é ✓ \U0001f600"),
    ("code", "%%kite -o a2 --no-interpolate\nliteral {city} and {{city}} stay as typed"),
    ("code", "%%kite -o a3 --system \"You only talk about {city} {{braces}}\"\n"
             "Tell me about {city}."),
    ("code", "%%kite -o a4\n" + " ".join(f"word{i} {{city}}" for i in range(40))
             + "\n\n\n   indented line {items[0]}   \n\n"),
    ("code", "%%kite -o a5\nweird key {row[it's]} and int key {row[3]}"),
    ("code", roundtrip_cell({"a1": "a1", "a2": "a2", "a3": "a3", "a4": "a4", "a5": "a5",
                             "encoded": "encoded"})),
]

FORMATS = [
    ("code", "%load_ext kite_lab"),
    ("code", SETUP),
    ("code", "city = \"Oslo\"\nserver.enqueue(\n    \"# Title\\n\\nSome *markdown* $5\",\n"
             "    \"plain text\",\n    \"Here:\\n```python\\nprint('hi {city}')\\n```\\nDone.\",\n"
             "    '{\"city\": \"Oslo\", \"tags\": [\"rain\", \"cold\"]}',\n"
             "    \"<b>bold</b>\",\n"
             "    '[{\"city\": \"Oslo\", \"temp\": 9}, {\"city\": \"Rome\", \"temp\": 24}]',\n"
             "    '```json\\n{\"rows\": [{\"a\": 1}, {\"a\": 2}]}\\n```',\n"
             "    '{\"x\": [1, 2], \"y\": [3, 4]}',\n)"),
    ("code", "%%kite -o md -f markdown\nanswer in markdown about {city}"),
    ("code", "%%kite txt << -f text --temperature 0.5\nanswer in text"),
    ("code", "%%kite -o code -f code\nwrite code"),
    ("code", "%%kite -o data -f json -m '{\"top_p\": 0.5}'\ngive json"),
    ("code", "%%kite -o page -f html --max-tokens 50 --no-stream\ngive html"),
    ("code", "%%kite -o frame -f df\ngive records"),
    ("code", "%%kite -o rows -f df --no-cache\ngive wrapped records"),
    ("code", "%%kite -o cols -f df\ngive columns"),
    ("code", "%%kite -f text\nnot captured, only shown: {city}"),
    ("code", "hello = %kite complete Say hello to {city}\nhello"),
    ("code", "types = [type(v).__name__ for v in (md, txt, code, data, page, frame, hello)]\n"
             "usage = md.completion.usage.total_tokens\ntypes"),
    ("code", roundtrip_cell({
        "md": "md", "txt": "txt", "code": "code", "data": "data", "page": "page",
        "frame": "frame.to_dict()", "rows": "rows.to_dict()", "cols": "cols.to_dict()",
        "hello": "hello", "types": "types", "usage": "usage"})),
]

AGENTS = [
    ("code", "%load_ext kite_lab"),
    ("code", SETUP),
    ("code", "from kite_lab.testing import Reply, ToolCallSpec\n\n\n"
             "@ai.tool\ndef lookup(city: str) -> str:\n    \"\"\"Weather in a city.\"\"\"\n"
             "    return {\"Paris\": \"sunny\"}.get(city, \"unknown\")\n\n\n"
             "helper = ai.create_agent(\"helper\", \"Use lookup.\", tools=[\"lookup\"])\n"
             "writer = ai.create_agent(\"writer\", \"Write JSON.\")\n"
             "server.enqueue(\n"
             "    Reply(tool_calls=[ToolCallSpec(\"lookup\", {\"city\": \"Paris\"})]),\n"
             "    Reply(text=\"It is sunny.\"),\n    '{\"ok\": true}',\n)"),
    ("code", "%%kite agent:helper -o run1\nWeather in {helper.name} land?"),
    ("code", "%%kite agent:writer -f json -o doc\nGive me JSON."),
    ("code", "def add(a: int, b: int) -> int:\n    \"\"\"Add two integers.\"\"\"\n"
             "    return a + b\n\n\nserver.enqueue(\n"
             "    Reply(tool_calls=[ToolCallSpec(\"add\", {\"a\": 2, \"b\": 40})]),\n"
             "    Reply(text=\"42\"),\n)"),
    ("code", "%%kite --tools add,calculator -o summed --system \"Be exact.\"\nWhat is 2 + 40?"),
    ("code", "%kite alias fast openai/gpt-4o-mini\n%kite alias quick fast"),
    ("code", "%%kite fast -o f1\nvia alias"),
    ("code", "%%kite quick -o f2\nvia alias chain"),
    ("code", "%config KiteMagics.default_model = \"openai/gpt-4o\"\n%kite alias quick"),
    ("code", "%%kite -o f3\nvia default model"),
    ("code", "%%kite --session s1 -o t1\nMy name is Ada."),
    ("code", "%%kite --session s1 -o t2\nWhat is my name?"),
    ("code", "turns = %kite history s1\nturn_count = len(turns)\nturn_count"),
    ("code", "%kite reset"),
    ("code", "after_reset = len(ai.session_memory.get_history(\"s1\"))\n"
             "%kite breaker reset\nstate = ai.circuit_breaker.state.value"),
    ("code", roundtrip_cell({
        "run1": "[run1.response, run1.success, [c.name for c in run1.tool_calls]]",
        "doc": "doc", "summed": "summed.response", "f1": "f1", "f2": "f2", "f3": "f3",
        "t1": "t1", "t2": "t2", "turns": "turn_count", "after": "after_reset",
        "state": "state"})),
]

SYNTAX = [
    ("code", "%load_ext kite_lab"),
    ("code", "%pip --version"),
    ("code", "!echo this shell escape is only commented"),
    ("code", "%env KITE_CORPUS_SETTING=on\nimport os\n\n"
             "setting = os.environ[\"KITE_CORPUS_SETTING\"]"),
    ("code", "%time total = sum(range(10))\nlater = %time total * 2"),
    ("code", "%%time\nsquares = [i * i for i in range(5)]\nsquares"),
    ("code", "%%timeit -n1 -r1 base = 2\npowered = base ** 10"),
    ("code", "%%html\n<b>only shown in a notebook</b>"),
    ("code", "import asyncio\n\n\nasync def twice(x):\n    await asyncio.sleep(0)\n"
             "    return 2 * x\n\n\ndoubled = await twice(21)\ndoubled"),
    ("code", "display(\"shown with display\")\nquiet = 5\nquiet;"),
    ("code", "squares?"),
    ("code", "pair = 1, 2\npair[0], pair[1]"),
    ("code", "for i in range(2):\n    %time i + 1\n    if i:\n        %xmode Plain"),
    ("code", "%%capture\nprint(\"captured\")\ncaptured = True"),
    ("code", "import ipywidgets as widgets\n\nslider = widgets.IntSlider(value=3)\nslider"),
    ("markdown", "A widget-only cell above; a raw cell below."),
    ("raw", "raw text is kept as a comment"),
    ("code", "import json\n\nvalues = {\n    \"setting\": setting, \"total\": total, "
             "\"later\": later, \"squares\": squares,\n    "
             "\"doubled\": doubled, \"quiet\": quiet, \"pair\": pair,\n"
             "    \"captured\": captured, \"slider\": slider.value,\n}\n"
             "print(\"ROUNDTRIP \" + json.dumps({\"values\": values}, sort_keys=True))"),
]

EMPTY: list[tuple[str, str]] = []

ERRORS: dict[str, list[tuple[str, str]]] = {
    "error_in_history": [("code", "x = 1"), ("code", "print(x)"), ("code", "y = In[2]")],
    "error_syntax": [("markdown", "a cell below does not parse"), ("code", "x = 1"),
                     ("code", "def broken(:\n    pass")],
    "error_unknown_magic": [("code", "x = 1"), ("code", "%cd /tmp")],
    "error_shell_output": [("code", "files = !ls")],
    "error_late_cell_magic": [("code", "x = 1\n%%kite\nhi")],
    "error_api_key_in_code": [("code", "client_key = \"sk-live-abcdefghijklmnop1234\"")],
    "error_agent_options": [("code", "%load_ext kite_lab"),
                            ("code", "%%kite agent:helper --temperature 0\nhi")],
}

ROUNDTRIP = {"braces": BRACES, "formats": FORMATS, "agents": AGENTS, "syntax": SYNTAX}


def build(cells: list[tuple[str, str]]) -> Any:
    book = nbformat.v4.new_notebook()
    makers = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
              "raw": nbformat.v4.new_raw_cell}
    book.cells = [makers[kind](source) for kind, source in cells]
    for index, cell in enumerate(book.cells):
        cell["id"] = f"cell-{index}"  # stable ids, so rebuilding gives the same files
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    book.metadata["language_info"] = {"name": "python"}
    return book


def all_notebooks() -> dict[str, Any]:
    books = {name: build(cells) for name, cells in ROUNDTRIP.items()}
    books["empty"] = build(EMPTY)
    books.update({name: build(cells) for name, cells in ERRORS.items()})
    return books


def write_corpus(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, book in all_notebooks().items():
        path = folder / f"{name}.ipynb"
        nbformat.write(book, path)
        written.append(path)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python export_corpus.py OUT_DIR")
    for path in write_corpus(Path(sys.argv[1])):
        print(path)
