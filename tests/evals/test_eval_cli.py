"""`kite-lab eval spec.yaml`: summary, files, thresholds as exit codes, offline replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kite_lab.cli import main
from kite_lab.testing import FakeLLMServer, Reply

ANSWERS = {"France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Peru": "Lima"}


def _answer(request) -> Reply:
    text = request.last_user_text
    if request.model == "gpt-4o":
        return Reply(text="no idea")
    return Reply(text=next(a for c, a in ANSWERS.items() if c in text))


@pytest.fixture
def server(monkeypatch):
    with FakeLLMServer() as fake:
        fake.set_handler(_answer)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-eval-cli")
        yield fake


def _spec(folder: Path, base_url: str, thresholds: list[str], name: str = "capitals") -> Path:
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "capitals.csv").write_text(
        "country,answer\n" + "".join(f"{c},{a}\n" for c, a in ANSWERS.items()), encoding="utf-8")
    spec = folder / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: {name}
        dataset: data/capitals.csv
        prompt: "Capital of {{country}}? One word."
        targets:
          - openai/gpt-4o-mini
          - {{template: "Which city is the capital of {{country}}?", model: openai/gpt-4o,
             name: verbose}}
        scorers: [exact_match:answer, contains:answer]
        thresholds: {json.dumps(thresholds)}
        concurrency: 4
        config: {{llm_provider: openai, openai_base_url: "{base_url}",
                  kite_home: "{folder / 'home'}"}}
        """), encoding="utf-8")
    return spec


def test_passing_thresholds_exit_0_and_write_the_reports(server, tmp_path, capsys):
    spec = _spec(tmp_path, server.openai_base_url, ["contains >= 0"])
    code = main(["eval", str(spec), "--out", str(tmp_path / "out"), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "openai/gpt-4o-mini" in printed and "verbose" in printed
    assert "all 1 thresholds hold" in printed
    report = json.loads((tmp_path / "out" / "capitals.json").read_text(encoding="utf-8"))
    by_target = {r["target"]: r for r in report["summary"]}
    assert by_target["openai/gpt-4o-mini"]["exact_match_mean"] == 1.0
    assert by_target["verbose"]["exact_match_mean"] == 0.0
    assert (tmp_path / "out" / "capitals.csv").read_text().count("\n") == 1 + 2 * len(ANSWERS)
    assert "<html>" in (tmp_path / "out" / "capitals.html").read_text(encoding="utf-8")
    assert "sk-test-eval-cli" not in printed


def test_a_failing_threshold_exits_1_naming_the_target(server, tmp_path, capsys):
    spec = _spec(tmp_path, server.openai_base_url, ["exact_match >= 0.8", "pass_rate >= 0.5"])
    code = main(["eval", str(spec), "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "FAILED verbose: exact_match = 0, needs >= 0.8" in err
    assert "FAILED verbose: pass_rate = 0, needs >= 0.5" in err
    assert "gpt-4o-mini" not in err


def test_bad_specs_exit_2_before_any_call(server, tmp_path, capsys):
    spec = _spec(tmp_path, server.openai_base_url, ["fuzzy >= 0.8"])
    assert main(["eval", str(spec), "--no-progress"]) == 2
    assert "scorers: exact_match, contains (or pass_rate)" in capsys.readouterr().err
    spec = _spec(tmp_path, server.openai_base_url, ["exact_match => 0.8"])
    assert main(["eval", str(spec), "--no-progress"]) == 2
    assert "write 'SCORER >= NUMBER'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nope.yaml")]) == 2
    assert server.requests == []


def test_replays_offline_from_a_cassette(server, tmp_path):
    spec = _spec(tmp_path, server.openai_base_url, ["exact_match >= 0"])
    cassette = tmp_path / "eval.jsonl"
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-eval-cli"}
    command = [sys.executable, "-m", "kite_lab.cli", "eval", str(spec), "--cassette",
               str(cassette), "--no-progress"]
    recorded = subprocess.run(command + ["--record", "--out", str(tmp_path / "live")], env=env,
                              capture_output=True, text=True, timeout=120)
    assert recorded.returncode == 0, recorded.stderr
    assert len(server.requests) == 2 * len(ANSWERS)
    assert "sk-test-eval-cli" not in cassette.read_text(encoding="utf-8")
    server.stop()  # offline: every answer must come from the cassette
    replayed = subprocess.run(command + ["--out", str(tmp_path / "replay")], env=env,
                              capture_output=True, text=True, timeout=120)
    assert replayed.returncode == 0, replayed.stderr

    def outcome(folder: str) -> list[dict]:
        report = json.loads((tmp_path / folder / "capitals.json").read_text(encoding="utf-8"))
        # latency is the one thing a replay does not reproduce (it answers at once)
        return [{k: v for k, v in row.items() if "latency" not in k} for row in report["rows"]]

    assert outcome("replay") == outcome("live")


def test_the_shipped_spec_replays_the_tutorials_cassette_with_no_key(tmp_path, capsys):
    """notebooks/evals/capitals.yaml + the evaluate tutorial's cassette: offline, keyless
    (the isolated test environment has no OPENAI_API_KEY), same scores as the notebook."""
    root = Path(__file__).resolve().parents[2] / "notebooks"
    code = main(["eval", str(root / "evals" / "capitals.yaml"), "--cassette",
                 str(root / "cassettes" / "evaluate.jsonl"), "--out", str(tmp_path),
                 "--no-progress"])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "capitals.json").read_text(encoding="utf-8"))
    by_target = {r["target"]: r for r in report["summary"]}
    assert by_target["hosted/terse"]["exact_match_mean"] == pytest.approx(26 / 30)
    assert by_target["local/terse"]["contains_mean"] == pytest.approx(25 / 30)
    assert all(r["errors"] == 0 for r in report["summary"])
