"""Every door onto cassettes: KITE_CASSETTE(_MODE) for scripts, the shipped pytest
fixture, ``%kite cassette`` in a notebook, and the local model's streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytester"]

SCRIPT = """
from kite_lab import Kite
ai = Kite()
print(ai.complete("What is 2+2?"))
print("".join(ai.stream("Count to three")))
"""


def _run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    full = {k: v for k, v in os.environ.items() if not k.startswith(("KITE_", "OPENAI_"))}
    full.update(env, KITE_HOME=str(tmp_path / ".kite"))
    return subprocess.run([sys.executable, str(script)], env=full, capture_output=True,
                          text=True, timeout=60)


def test_a_script_records_and_replays_through_the_environment(fake_llm: Any,
                                                               tmp_path: Path) -> None:
    cassette = tmp_path / "cassettes" / "job.jsonl"
    recorded = _run(tmp_path, LLM_PROVIDER="openai", OPENAI_API_KEY="sk-script-0123456789",
                    OPENAI_BASE_URL=fake_llm.openai_base_url, KITE_CASSETTE=str(cassette),
                    KITE_CASSETTE_MODE="record")
    assert recorded.returncode == 0, recorded.stderr
    assert len(fake_llm.requests) == 2 and len(cassette.read_text().splitlines()) == 2
    fake_llm.stop()  # nothing to answer now: the replay must not need it
    replayed = _run(tmp_path, LLM_PROVIDER="openai", OPENAI_API_KEY="sk-other-key-999999",
                    OPENAI_BASE_URL="http://127.0.0.1:9/v1", KITE_CASSETTE=str(cassette),
                    KITE_CASSETTE_MODE="replay")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.stdout == recorded.stdout == "Echo: What is 2+2?\nEcho: Count to three\n"
    # both short scripts' calls reached the log before they exited (flushed at exit)
    from kite_lab.log import LogQuery, SQLiteCallLog

    store = SQLiteCallLog(tmp_path / ".kite" / "logs.db")
    logged = store.records(LogQuery())
    store.close()
    assert [(r.replayed, r.stream) for r in logged] == [(False, False), (False, True),
                                                        (True, False), (True, True)]
    assert all(r.script == str(tmp_path / "job.py") for r in logged)


def test_a_script_replay_miss_fails_with_cassette_miss(tmp_path: Path) -> None:
    cassette = tmp_path / "empty.jsonl"
    cassette.write_text("")
    result = _run(tmp_path, LLM_PROVIDER="openai", OPENAI_API_KEY="sk-other-key-999999",
                  KITE_CASSETTE=str(cassette), KITE_CASSETTE_MODE="replay")
    assert result.returncode != 0
    assert "CassetteMiss" in result.stderr and "empty.jsonl" in result.stderr


INNER_TEST = """
from kite_lab import Kite

def test_answer(kite_cassette, request):
    ai = Kite(config={{"llm_provider": "openai", "openai_api_key": "sk-inner-0123456789",
                      "openai_base_url": "{url}"}}, env_file=None)
    assert ai.complete("What is 2+2?") == "Echo: What is 2+2?"
    assert ai.active_cassette() is kite_cassette
    ai.close()
"""


def test_the_pytest_fixture_records_then_replays(pytester: pytest.Pytester,
                                                 fake_llm: Any) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_inner=INNER_TEST.format(url=fake_llm.openai_base_url))
    pytester.runpytest("-p", "no:cacheprovider", "-q").assert_outcomes(passed=1)
    cassette = pytester.path / "cassettes" / "test_inner" / "test_answer.jsonl"
    assert len(cassette.read_text().splitlines()) == 1 and len(fake_llm.requests) == 1
    fake_llm.stop()
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "--kite-cassette-mode=replay")
    result.assert_outcomes(passed=1)
    cassette.write_text("")
    result = pytester.runpytest("-p", "no:cacheprovider", "-q", "--kite-cassette-mode=replay")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CassetteMiss*"])


def test_the_kite_cassette_line_magic(make_kite: Any, fake_llm: Any) -> None:
    from IPython.core.error import UsageError
    from IPython.core.interactiveshell import InteractiveShell

    from kite_lab.notebook import use
    from kite_lab.notebook.extension import unload_ipython_extension

    InteractiveShell.clear_instance()
    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "kite_lab")
        ai = use(make_kite())
        shell.run_line_magic("kite", "cassette nb.jsonl --mode record")
        first = ai.complete("from a notebook")
        stopped = shell.run_line_magic("kite", "cassette off")
        assert stopped.recorded == 1 and ai.active_cassette() is None
        cassette = shell.run_line_magic("kite", "cassette nb.jsonl --mode replay")
        assert ai.complete("from a notebook") == first and cassette.replayed == 1
        shell.run_line_magic("kite", "cassette off")
        assert len(fake_llm.requests) == 1
        with pytest.raises(UsageError, match="no cassette is running"):
            shell.run_line_magic("kite", "cassette off")
        with pytest.raises(UsageError, match="invalid choice"):
            shell.run_line_magic("kite", "cassette nb.jsonl --mode sometimes")
    finally:
        unload_ipython_extension(shell)
        InteractiveShell.clear_instance()


def test_a_local_model_stream_records_and_replays(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from kite_lab import Kite
    from kite_lab.core.errors import LocalModelUnavailable

    ai = Kite(config={"llm_provider": "local", "kite_home": str(tmp_path / ".kite")},
              env_file=None)
    try:
        with ai.cassette("local.jsonl", mode="record"):
            live = list(ai.stream("Say hi", max_tokens=6, temperature=0, cache=False))
    except LocalModelUnavailable as exc:
        pytest.skip(f"the local model is not installed: {exc}")
    with ai.cassette("local.jsonl", mode="replay"):
        assert list(ai.stream("Say hi", max_tokens=6, temperature=0, cache=False)) == live
    [line] = [json.loads(x) for x in Path("local.jsonl").read_text().splitlines()]
    assert line["request"]["provider"].startswith("local") and len(line["chunks"]) == len(live)
    ai.close()


def test_the_exporter_compiles_the_cassette_line_magic() -> None:
    import nbformat

    from kite_lab.core.errors import ExportError
    from kite_lab.notebook.export import export_source

    def export(*lines: str) -> str:
        cells = ["%load_ext kite_lab", "from kite_lab import Kite\n"
                 "from kite_lab.notebook import use\nai = use(Kite())", *lines]
        book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
        return str(export_source(book, label="x.ipynb"))

    script = export("%kite cassette tests/c.jsonl --mode replay --speed 2", "%kite cassette off")
    assert 'ai.cassette("tests/c.jsonl", mode="replay", speed=2.0).start()' in script
    assert "ai.stop_cassette()" in script
    assert 'ai.cassette("c.jsonl", mode="once").start()' in export("%kite cassette c.jsonl")
    with pytest.raises(ExportError, match="invalid choice"):
        export("%kite cassette c.jsonl --mode sometimes")
