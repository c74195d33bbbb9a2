"""Helpers for the exporter's tests: building notebooks, running scripts, checking with ruff.

Scripts run as real subprocesses of this Python (``python script.py``); where a script
must not need IPython, an import hook makes ``import IPython`` fail in that process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[3]
CORPUS = Path(__file__).resolve().parent / "corpus"
sys.path.insert(0, str(CORPUS))  # export_corpus.py: the corpus notebooks, as code
PYPROJECT = ROOT / "pyproject.toml"
SCRIPT_KEY = "sk-export-test-key-0123456789abcdef"

# Runs a script like `python script.py`, optionally with IPython made unimportable, then
# prints the simple values of its namespace (for comparing with the notebook's).
RUNNER = r'''
import json, runpy, sys
script, block, dump = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
if block:
    class _NoIPython:
        def find_spec(self, name, path=None, target=None):
            if name == "IPython" or name.startswith("IPython."):
                raise ImportError("IPython is blocked for this exported script")
            return None
    sys.meta_path.insert(0, _NoIPython())
sys.argv = [script]
namespace = runpy.run_path(script, run_name="__main__")
if block:
    assert "IPython" not in sys.modules, "the script imported IPython"
if dump:
    exec(SIMPLE_SOURCE)
    print("NAMESPACE " + json.dumps(simple_namespace(namespace), sort_keys=True))
'''

# Turns a namespace into comparable JSON: plain values only (str subclasses as str,
# RunResult as its answer); anything else (frames, widgets, clients) is left out.
SIMPLE_SOURCE = r'''
def simple_value(value, depth=0):
    from kite_lab.core.types import RunResult
    if depth > 4:
        raise TypeError
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, RunResult):
        return {"response": value.response, "success": value.success,
                "tools": [c.name for c in value.tool_calls]}
    if isinstance(value, list | tuple):
        return [simple_value(v, depth + 1) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: simple_value(v, depth + 1) for k, v in value.items()}
    raise TypeError


def simple_namespace(namespace):
    out = {}
    for name, value in namespace.items():
        if name.startswith("_") or name in ("In", "Out", "exit", "quit"):
            continue
        try:
            out[name] = simple_value(value)
        except TypeError:
            continue
    return out
'''


def write_notebook(path: Path, *cells: str | tuple[str, str], **metadata: Any) -> Path:
    """A v4 notebook of code cells (or ``(kind, source)`` pairs) at ``path``."""
    book = nbformat.v4.new_notebook()
    makers = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell,
              "raw": nbformat.v4.new_raw_cell}
    for cell in cells:
        kind, source = cell if isinstance(cell, tuple) else ("code", cell)
        book.cells.append(makers[kind](source))
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    book.metadata.update(metadata)
    nbformat.write(book, path)
    return path


def run_script(script: Path, *, env: dict[str, str] | None = None, cwd: Path | None = None,
               block_ipython: bool = False, dump: bool = False, timeout: float = 180
               ) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "OPENAI_API_KEY": SCRIPT_KEY, **(env or {})}
    code = RUNNER.replace("exec(SIMPLE_SOURCE)", f"exec({SIMPLE_SOURCE!r})")
    return subprocess.run(
        [sys.executable, "-c", code, str(script), "1" if block_ipython else "0",
         "1" if dump else "0"],
        capture_output=True, text=True, env=full_env, cwd=cwd or script.parent,
        timeout=timeout)


def tagged_json(text: str, tag: str) -> Any:
    """The JSON after ``TAG `` on the last line that starts with it."""
    lines = [ln for ln in text.splitlines() if ln.startswith(tag + " ")]
    assert lines, f"no {tag} line in:\n{text[-3000:]}"
    return json.loads(lines[-1][len(tag) + 1:])


def normalize(value: Any) -> Any:
    """Remove what legitimately differs between two runs (random tool-call ids)."""
    text = json.dumps(value, sort_keys=True)
    return json.loads(re.sub(r"call_[0-9a-f]{8,}", "call_ID", text))


def uses_get_ipython(script: str) -> bool:
    """Does the script's code (not its comments or strings) mention get_ipython?"""
    import ast

    return any((isinstance(n, ast.Name) and n.id == "get_ipython")
               or (isinstance(n, ast.Attribute) and n.attr == "get_ipython")
               for n in ast.walk(ast.parse(script)))


def ruff_codes(path: Path) -> dict[str, int]:
    """How many findings of each rule ruff reports for ``path`` (a .py or a .ipynb)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(PYPROJECT),
         "--output-format", "json", str(path)], capture_output=True, text=True, timeout=60)
    counts: dict[str, int] = {}
    for finding in json.loads(proc.stdout or "[]"):
        code = finding.get("code") or "syntax"
        counts[code] = counts.get(code, 0) + 1
    return counts


def ruff_problems(path: Path) -> str:
    """ruff's findings for ``path`` under the project's configuration ('' when clean)."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(PYPROJECT),
         str(path)], capture_output=True, text=True, timeout=60)
    return "" if proc.returncode == 0 else proc.stdout + proc.stderr
