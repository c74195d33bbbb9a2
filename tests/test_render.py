"""kite_lab.render: every format's mime bundle, the footer ($ escaped), provenance, the
parsing functions the exporter reuses, and KiteText (a str that reads like its Completion)."""

from __future__ import annotations

import copy
import json
import pickle

import pytest

from kite_lab.core.errors import OutputParseError
from kite_lab.core.types import Completion, RunResult, ToolCall, Usage
from kite_lab.render import (
    CellOutput,
    KiteText,
    escape_dollars,
    extract_code,
    footer_text,
    parse_json,
    parse_output,
    provenance,
    to_dataframe,
)


def _completion(**kw: object) -> Completion:
    base = dict(text="hi", provider="openai", model="gpt-4o-mini", usage=Usage(12, 30),
                cost_usd=0.00002, latency_s=0.84)
    base.update(kw)
    return Completion(**base)  # type: ignore[arg-type]


def test_footer() -> None:
    text = footer_text(_completion())
    assert text == ("openai/gpt-4o-mini · 42 tokens (12 in, 30 out) · $0.000020 · 840 ms · "
                    "not cached")
    assert "cost unknown" in footer_text(_completion(cost_usd=None))
    assert footer_text(_completion(cached=True)).endswith("· $0 · cached")
    run = RunResult(response="x", success=True, iterations=2, agent="bot", prompt_tokens=3,
                    completion_tokens=4, cost_usd=0.0, latency_s=1.5)
    assert footer_text(run).startswith("agent bot · 7 tokens")


def test_markdown_footer_escapes_dollars_and_carries_metadata() -> None:
    out = CellOutput("Costs $5 and $10", "markdown", footer=footer_text(_completion()),
                     metadata={"target": "x"})
    data, meta = out._repr_mimebundle_()
    md = data["text/markdown"]
    assert md.startswith("Costs $5 and $10")  # the answer itself is untouched
    footer = md.split("\n\n")[-1]
    assert "\\$0.000020" in footer and "$0" not in footer.replace("\\$", "")
    assert meta == {"kite_lab": {"target": "x"}}


@pytest.mark.parametrize("fmt, mime", [("markdown", "text/markdown"), ("text", "text/plain"),
                                       ("html", "text/html"), ("code", "text/markdown")])
def test_text_formats(fmt: str, mime: str) -> None:
    data, _ = CellOutput("```python\nx = 1\n```", fmt, footer="f")._repr_mimebundle_()
    assert mime in data and "text/plain" in data


def test_json_and_df_formats() -> None:
    value = parse_output('```json\n[{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]\n```', "json")
    assert value == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    data, _ = CellOutput("", "json", value)._repr_mimebundle_()
    assert '"a": 1' in data["text/plain"]
    frame = parse_output('[{"a": 1}, {"a": 2}]', "df")
    assert list(frame["a"]) == [1, 2]
    data, _ = CellOutput("", "df", frame, footer="f")._repr_mimebundle_()
    assert "<table" in data["text/html"]


def test_dataframe_shapes() -> None:
    assert len(to_dataframe({"rows": [{"a": 1}, {"a": 2}]})) == 2
    assert list(to_dataframe({"a": [1, 2], "b": [3, 4]}).columns) == ["a", "b"]
    assert len(to_dataframe({"a": 1})) == 1
    with pytest.raises(OutputParseError, match="records"):
        to_dataframe([1, 2])


def test_json_error_names_the_text() -> None:
    with pytest.raises(OutputParseError, match="not JSON.*Sure! Here"):
        parse_json("Sure! Here is the data")


def test_code_extraction_and_value() -> None:
    assert extract_code("Here:\n```python\nprint(1)\n```\nDone") == ("print(1)", "python")
    assert extract_code("print(2)") == ("print(2)", "")
    value = parse_output("```py\nx=1\n```", "code")
    assert isinstance(value, KiteText) and value == "x=1"


def test_kite_text_is_a_str_with_its_completion() -> None:
    completion = _completion()
    text = parse_output("hello", "markdown", completion)
    assert text == "hello" and text.upper() == "HELLO" and text.completion is completion


def test_kite_text_reads_like_its_completion() -> None:
    call = ToolCall("c1", "f", {"x": 1})
    completion = _completion(finish_reason="stop", tool_calls=[call])
    answer = KiteText.from_completion(completion)
    assert isinstance(answer, str) and answer == "hi" and answer.completion is completion
    assert answer.text == "hi" and type(answer.text) is str
    assert answer.usage == Usage(12, 30) and answer.usage.total_tokens == 42
    assert answer.cost_usd == 0.00002 and answer.latency_s == 0.84
    assert (answer.provider, answer.model) == ("openai", "gpt-4o-mini")
    assert answer.cached is False and answer.finish_reason == "stop"
    assert answer.tool_calls == [call]
    cached = KiteText.from_completion(_completion(cached=True, cost_usd=0.0))
    assert cached.cached is True and cached.cost_usd == 0.0
    unpriced = KiteText.from_completion(_completion(cost_usd=None))
    assert unpriced.cost_usd is None


def test_kite_text_from_a_derived_text_keeps_the_whole_completion() -> None:
    completion = _completion(text="Here:\n```py\nx=1\n```")
    code = KiteText.from_completion(completion, text="x=1")
    assert code == "x=1" and code.text == "x=1" and code.completion.text == completion.text
    assert parse_output(completion.text, "code", completion).usage.total_tokens == 42
    assert parse_output("plain", "text", completion).text == "plain"


def test_kite_text_without_a_completion() -> None:
    bare = KiteText("x")
    assert bare.text == "x" and bare.completion is None and bare.tool_calls == []
    assert [bare.usage, bare.cost_usd, bare.provider, bare.model, bare.latency_s, bare.cached,
            bare.finish_reason] == [None] * 7


def test_str_operations_on_kite_text_return_plain_str() -> None:
    answer = KiteText.from_completion(_completion(text=" Paris "))
    results = [answer.upper(), answer + "!", "!" + answer, answer[1:], answer.strip(),
               answer * 2, answer.replace("P", "p"), f"{answer}", str(answer),
               " ".join([answer, answer]), answer.lower().title()]
    assert [type(r) for r in results] == [str] * len(results)
    assert answer.split() == ["Paris"] and all(type(p) is str for p in answer.split())
    assert hash(answer) == hash(" Paris ") and {answer: 1}[" Paris "] == 1
    assert json.loads(json.dumps(answer)) == " Paris "
    assert repr(answer) == repr(" Paris ")


def test_kite_text_pickles_and_copies_with_its_completion() -> None:
    answer = KiteText.from_completion(_completion(finish_reason="stop"))
    clones = [pickle.loads(pickle.dumps(answer, protocol=p))
              for p in range(2, pickle.HIGHEST_PROTOCOL + 1)]
    clones += [copy.copy(answer), copy.deepcopy(answer)]
    for clone in clones:
        assert type(clone) is KiteText and clone == answer
        assert clone.completion == answer.completion
        assert (clone.usage, clone.cost_usd, clone.model) == (Usage(12, 30), 0.00002,
                                                              "gpt-4o-mini")
    assert copy.deepcopy(answer).completion is not answer.completion
    assert pickle.loads(pickle.dumps(KiteText("bare"))).completion is None


def test_escape_dollars() -> None:
    assert escape_dollars("$1 and \\$2") == "\\$1 and \\$2"


def test_provenance_has_no_secrets_and_hashes_the_prompt() -> None:
    info = provenance(target="fast", provider="openai", model="m", params={"temperature": 0},
                      prompt="p", fmt="text", system="s", session="x")
    assert info["prompt_sha256"] == (
        "148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940")
    assert info["kite_lab_version"] and info["session"] == "x" and "system_sha256" in info


def test_script_side_modules_do_not_import_ipython() -> None:
    """Exported scripts import render/interpolate/frames/plots: no IPython, no widgets."""
    import subprocess
    import sys

    code = ("import sys; import kite_lab.render, kite_lab.core.interpolate, "
            "kite_lab.frames, kite_lab.plots, kite_lab.notebook; "
            "print(sorted(m for m in ('IPython', 'ipywidgets', 'pandas', 'plotly') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
