"""ai.map over real HTTP (fake server, real openai SDK): inputs, prompts, frame, events."""

from __future__ import annotations

import pandas as pd
import pytest
from batch_helpers import llm_requests, make_kite
from pydantic import BaseModel

from kite_lab import InvalidInput, InvalidParameter, Kite
from kite_lab.batch import amap
from kite_lab.batch import map as kite_map
from kite_lab.testing import FakeLLMServer, Reply

META = ["_error", "_cost_usd", "_total_tokens", "_latency_s", "_cached", "_row_key"]


def _maps(ai: Kite):
    """kite_lab.batch.map, and ai.map once the facade has it."""
    yield lambda *a, **k: kite_map(ai, *a, **k)
    if hasattr(Kite, "map"):
        yield ai.map


def test_dataframe_keeps_index_order_and_adds_columns(ai: Kite, fake_llm: FakeLLMServer):
    df = pd.DataFrame({"review": ["good", "bad", "meh"], "id": [7, 8, 9]}, index=["a", "b", "c"])
    for run in _maps(ai):
        out = run(df, "Classify: {review}", progress=False, cache=False)
        assert list(out.index) == ["a", "b", "c"]
        assert list(out.columns) == ["review", "id", "answer", *META]
        assert list(out["answer"]) == ["Echo: Classify: good", "Echo: Classify: bad",
                                       "Echo: Classify: meh"]
        assert out["_error"].isna().all()
        assert (out["_total_tokens"] > 0).all() and (out["_cost_usd"] > 0).all()
        assert not out["_cached"].any() and out["_row_key"].nunique() == 3
        assert list(df.columns) == ["review", "id"]  # the input is not modified


async def test_list_of_dicts_strings_and_output_name(ai: Kite, fake_llm: FakeLLMServer):
    out = await amap(ai, [{"q": "x"}, {"q": "y"}], "Q: {q}", output="reply", progress=False)
    assert list(out["reply"]) == ["Echo: Q: x", "Echo: Q: y"]
    out = await amap(ai, (t for t in ["one", "two"]), "Say {text}", progress=False)
    assert list(out["text"]) == ["one", "two"] and list(out["answer"]) == ["Echo: Say one",
                                                                          "Echo: Say two"]


async def test_template_rules_braces_stay_literal(ai: Kite, fake_llm: FakeLLMServer):
    rows = [{"doc": {"title": "T1"}, "code": "x"}]
    out = await amap(ai, rows, 'JSON {"a": 1} {{doc}} {doc[title]} {code}', progress=False)
    assert out["answer"][0] == 'Echo: JSON {"a": 1} {doc} T1 x'


async def test_callable_prompt_system_and_params(ai: Kite, fake_llm: FakeLLMServer):
    out = await amap(ai, ["a", "b"], lambda row: f"<{row['text']}>", system="be brief",
                     temperature=0.5, progress=False)
    assert list(out["answer"]) == ["Echo: <a>", "Echo: <b>"]
    sent = llm_requests(fake_llm)
    assert all(r.json["temperature"] == 0.5 for r in sent)
    assert all(r.messages[0] == {"role": "system", "content": "be brief"} for r in sent)


async def test_identical_rows_are_called_once(ai: Kite, fake_llm: FakeLLMServer):
    out = await amap(ai, ["same", "same", "other"], "{text}", progress=False)
    assert len(llm_requests(fake_llm)) == 2
    assert list(out["_cached"]) == [False, True, False]
    assert out["_cost_usd"][1] == 0.0 and out["answer"][1] == out["answer"][0]


async def test_agent_prompt(ai: Kite, fake_llm: FakeLLMServer):
    agent = ai.create_agent("labeler", "You label things.")
    out = await amap(ai, [{"text": "t1"}, {"text": "t2"}], agent, progress=False)
    assert list(out["answer"]) == ["Echo: t1", "Echo: t2"]
    assert out["_error"].isna().all() and (out["_total_tokens"] > 0).all()


class Label(BaseModel):
    label: str
    score: float


async def test_schema_gives_one_column_per_field(ai: Kite, fake_llm: FakeLLMServer):
    fake_llm.enqueue('{"label": "pos", "score": 0.9}', '```json\n{"label": "neg", "score": 0.1}\n```',
                     "not json")
    out = await amap(ai, ["a", "b", "c"], "Label {text}", schema=Label, concurrency=1,
                     progress=False)
    assert list(out.columns[:3]) == ["text", "label", "score"]
    assert list(out["label"][:2]) == ["pos", "neg"] and out["score"][0] == 0.9
    assert out["_error"][2].startswith("OutputParseError")
    assert "JSON schema" in llm_requests(fake_llm)[0].messages[0]["content"]


async def test_events_start_row_done(ai: Kite, fake_llm: FakeLLMServer):
    await amap(ai, ["a", "b"], "{text}", progress=False)
    names = [e.name for e in ai.event_bus.history("map:*")]
    assert names == ["map:start", "map:row", "map:row", "map:done"]
    done = ai.event_bus.history("map:done")[0].data
    assert done["ok"] == 2 and done["errors"] == 0 and done["spent_usd"] > 0
    assert {e.data["outcome"] for e in ai.event_bus.history("map:row")} == {"ok"}
    assert len(ai.event_bus.history("llm:response")) == 2  # through the pipeline


def test_progress_false_is_silent_and_true_shows_a_bar(ai: Kite, fake_llm: FakeLLMServer,
                                                      capsys: pytest.CaptureFixture[str]):
    kite_map(ai, ["a"], "{text}", progress=False)
    assert capsys.readouterr().err == ""
    kite_map(ai, ["b", "c"], "{text}")
    err = capsys.readouterr().err
    assert "ai.map" in err and "2/2" in err


@pytest.mark.parametrize(
    ("data", "prompt", "kwargs", "error", "words"),
    [
        (pd.DataFrame({"review": ["x"]}), "{reviw}", {}, InvalidInput, ["'reviw'", "'review'"]),
        (pd.DataFrame({"review": []}), "{review}", {}, InvalidInput, ["empty"]),
        (["x"], "{text}", {"concurrency": 0}, InvalidInput, ["concurrency"]),
        (["x"], "{text}", {"budget_usd": 0}, InvalidInput, ["budget_usd"]),
        (["x"], "{text}", {"budget_usd": -1}, InvalidInput, ["budget_usd"]),
        ("just a string", "{text}", {}, TypeError, ["DataFrame", "list of dicts"]),
        (42, "{text}", {}, TypeError, ["DataFrame", "int"]),
        ([{"a": 1}, "b"], "{a}", {}, TypeError, ["item 1"]),
        (pd.DataFrame({"r": ["x", None]}), "{r}", {}, InvalidInput, ["row 1", "'r'"]),
        (["x", "  "], "{text}", {}, InvalidInput, ["row 1", "empty"]),
        (["x"], "{text}", {"temprature": 1}, InvalidParameter, ["temprature"]),
        (pd.DataFrame({"text": ["x"], "answer": [1]}), "{text}", {}, InvalidInput, ["answer"]),
        (["x"], 3, {}, TypeError, ["template"]),
    ],
)
async def test_bad_input_fails_before_any_call(fake_llm: FakeLLMServer, data, prompt, kwargs,
                                               error, words):
    ai = make_kite(fake_llm)
    with pytest.raises(error) as info:
        await amap(ai, data, prompt, progress=False, **kwargs)
    for word in words:
        assert word in str(info.value)
    assert llm_requests(fake_llm) == []


async def test_callable_that_raises_names_the_row(ai: Kite, fake_llm: FakeLLMServer):
    def prompt(row):
        if row["text"] == "bad":
            raise KeyError("nope")
        return row["text"]

    with pytest.raises(InvalidInput, match="row 1"):
        await amap(ai, ["ok", "bad"], prompt, progress=False)
    assert llm_requests(fake_llm) == []


async def test_error_rows_keep_class_without_the_key(fake_llm: FakeLLMServer):
    from kite_lab.testing import Fault

    ai = make_kite(fake_llm)
    fake_llm.enqueue(Fault(status=400, message="bad thing sk-test-batch-0123456789"), "fine")
    out = await amap(ai, ["a", "b"], "{text}", concurrency=1, progress=False)
    assert out["_error"][0].startswith("BadRequestError")
    assert "sk-test-batch" not in out["_error"][0]
    assert out["answer"][1] == "Echo: b" or out["answer"][1] == "fine"
    assert out["_error"][1] is None


async def test_reply_usage_reaches_the_frame(ai: Kite, fake_llm: FakeLLMServer):
    fake_llm.enqueue(Reply(text="x", prompt_tokens=1000, completion_tokens=1000))
    out = await amap(ai, ["a"], "{text}", progress=False)
    assert out["_total_tokens"][0] == 2000
    assert out["_cost_usd"][0] == pytest.approx((1000 * 0.15 + 1000 * 0.60) / 1e6)
