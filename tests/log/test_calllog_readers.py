"""Reading the log: ``calls_df`` (this process, another process, Postgres) and
``kite-lab logs`` (table, JSON, search, model, since, cost by model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kite_lab import ConfigError
from kite_lab.cli import main
from kite_lab.frames import CALL_COLUMNS, calls_df
from kite_lab.testing import Fault, Reply


def _values(column: pd.Series) -> list[Any]:
    return [None if pd.isna(v) else v for v in column.astype(object)]


def _some_calls(ai: Any, fake_llm: Any) -> None:
    fake_llm.enqueue(Reply(text="invoice total 42", prompt_tokens=7, completion_tokens=3),
                     Reply(text="b", prompt_tokens=2, completion_tokens=1), Fault(status=500))
    ai.complete("one", model="gpt-4o-mini")
    ai.complete("two", model="gpt-4o")
    with pytest.raises(Exception, match="HTTP 500"):
        ai.complete("three", model="gpt-4o-mini")


def test_calls_df_reads_the_log_with_the_in_memory_columns(make_kite: Any,
                                                           fake_llm: Any) -> None:
    ai = make_kite()
    _some_calls(ai, fake_llm)
    df = calls_df(ai)
    assert list(df.columns)[: len(CALL_COLUMNS)] == list(CALL_COLUMNS)
    assert {c: str(df[c].dtype) for c in CALL_COLUMNS} == CALL_COLUMNS
    memory = calls_df(ai, persisted=False)
    for column in ("provider", "model", "prompt_tokens", "completion_tokens", "total_tokens",
                   "cost_usd", "cached", "error", "request_id", "breaker_state"):
        assert _values(df[column]) == _values(memory[column]), column
    assert _values(df["latency_s"]) == pytest.approx(_values(memory["latency_s"]))
    assert str(df.index.tz) == "UTC" and df.index.is_monotonic_increasing
    assert _values(calls_df(ai, model="gpt-4o")["model"]) == ["gpt-4o"]
    assert len(calls_df(ai, since="1h")) == 3 and len(calls_df(ai, since=time.time() + 5)) == 0
    assert len(calls_df(ai, until=df.index[1].timestamp() - 1e-4)) == 1
    assert len(calls_df(ai, persisted=False, model="gpt-4o-mini")) == 2


def test_calls_df_filters_by_run(make_kite: Any) -> None:
    ai = make_kite()
    agent = ai.create_agent("helper", "Be brief.")
    ai.complete("outside any run")
    result = agent.run_sync("inside a run")
    runs = calls_df(ai)["run_id"].dropna().unique().tolist()
    assert len(runs) == 1
    assert len(calls_df(ai, run_id=runs[0])) == result.iterations == 1
    assert len(calls_df(ai, persisted=False, run_id=runs[0])) == 1


def test_a_second_process_reads_the_log(make_kite: Any, fake_llm: Any, tmp_path: Path) -> None:
    ai = make_kite(kite_log_prompts=True)
    _some_calls(ai, fake_llm)
    ai.call_log.flush()
    env = {**os.environ, "KITE_HOME": str(tmp_path / ".kite"), "LLM_PROVIDER": "local"}
    script = ("from kite_lab import Kite\nfrom kite_lab.frames import calls_df\n"
              "df = calls_df(Kite())\nprint(len(df), sorted(set(df['model'])))\n")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert out.strip() == "3 ['gpt-4o', 'gpt-4o-mini']"
    lines = subprocess.run([sys.executable, "-m", "kite_lab.cli", "logs", "--json"], env=env,
                           capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [json.loads(line) for line in lines.splitlines()]
    assert [r["answer"] for r in rows][:2] == ["invoice total 42", "b"]


def test_the_logs_command(make_kite: Any, fake_llm: Any, capsys: Any) -> None:
    ai = make_kite(kite_log_prompts=True)
    _some_calls(ai, fake_llm)
    ai.call_log.flush()
    assert main(["logs"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["time", "(UTC)", "kind"] and len(table) == 4
    assert "invoice total 42" in table[1] and "ERROR ServerError" in table[3]
    assert main(["logs", "-n", "1", "--json"]) == 0
    [last] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert last["error"] == "ServerError"
    assert main(["logs", "--json", "--search", "INVOICE"]) == 0
    assert [json.loads(x)["prompt_tokens"] for x in capsys.readouterr().out.splitlines()] == [7]
    assert main(["logs", "--json", "--model", "gpt-4o"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert main(["logs", "--since", "1h", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["logs", "--cost", "--by", "model", "--json"]) == 0
    spent = {r["model"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert spent["gpt-4o-mini"]["calls"] == 2 and spent["gpt-4o-mini"]["prompt_tokens"] == 7
    frame = calls_df(ai)
    assert spent["gpt-4o"]["cost_usd"] == pytest.approx(
        frame[frame["model"] == "gpt-4o"]["cost_usd"].sum())
    assert main(["logs", "--cost"]) == 0
    total = capsys.readouterr().out.splitlines()[1].split()
    assert total[:2] == ["total", "3"]


def test_the_logs_command_bad_input(capsys: Any, monkeypatch: Any) -> None:
    assert main(["logs"]) == 1
    assert "no call log at" in capsys.readouterr().err
    assert main(["logs", "--since", "yesterday-ish"]) == 2
    assert "cannot read 'yesterday-ish' as a time" in capsys.readouterr().err
    monkeypatch.setenv("KITE_CALL_LOG", "none")
    assert main(["logs"]) == 2
    assert "KITE_CALL_LOG=none" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["logs", "--by", "colour"])


def test_the_log_in_postgres_end_to_end(make_kite: Any, fake_llm: Any, postgres_url: str,
                                        monkeypatch: Any, capsys: Any) -> None:
    ai = make_kite(kite_call_log="postgres", postgres_url=postgres_url)
    _some_calls(ai, fake_llm)
    df = calls_df(ai)
    assert _values(df["model"]) == ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"]
    assert _values(df["error"]) == [None, None, "ServerError"]
    assert not Path(".kite/logs.db").exists()
    monkeypatch.setenv("KITE_CALL_LOG", "postgres")
    monkeypatch.setenv("POSTGRES_URL", postgres_url)
    assert main(["logs", "--cost", "--by", "model", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    ai.call_log.store.close()  # before the fixture drops the database


def test_a_bad_time_is_a_typed_error(make_kite: Any) -> None:
    ai = make_kite()
    ai.complete("x")
    with pytest.raises(ValueError, match="cannot read 'soon' as a time"):
        calls_df(ai, since="soon")
    with pytest.raises(ConfigError, match="KITE_CALL_LOG=none"):
        make_kite(kite_call_log="none").trace()
