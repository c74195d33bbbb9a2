"""schema=: each answer validated by structured output (issue 15) and spread into one
column per field; an answer that does not fit is that row's error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel

from kite_lab.batch.plan import META_COLUMNS
from kite_lab.testing import Reply

pytestmark = pytest.mark.timeout(60)


class Label(BaseModel):
    sentiment: str
    score: float


def labeller(request: Any) -> Reply:
    text = request.last_user_text
    if "broken" in request.prompt_text():  # the repair round too: it stays broken
        return Reply(text="not json at all")
    good = "good" in text
    return Reply(text=json.dumps({"sentiment": "pos" if good else "neg",
                                  "score": 0.9 if good else 0.1}))


def test_a_pydantic_schema_gives_one_column_per_field(ai: Any, fake_llm: Any) -> None:
    fake_llm.set_handler(labeller)
    out = ai.map(["good", "bad"], "Label {text}", schema=Label, progress=False)
    assert list(out.columns) == ["text", "sentiment", "score", *META_COLUMNS]
    assert out["sentiment"].tolist() == ["pos", "neg"]
    assert out["score"].tolist() == [0.9, 0.1]
    assert out["_error"].isna().all()
    request = fake_llm.requests[-1].json
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["name"] == "Label"


def test_a_json_schema_dict_works_too(ai: Any, fake_llm: Any) -> None:
    fake_llm.set_handler(labeller)
    schema = {"type": "object", "properties": {"sentiment": {"type": "string"},
                                               "score": {"type": "number"}},
              "required": ["sentiment", "score"]}
    out = ai.map(["good"], "Label {text}", schema=schema, progress=False)
    assert out[["sentiment", "score"]].values.tolist() == [["pos", 0.9]]


def test_an_answer_that_does_not_fit_is_the_rows_error(ai: Any, fake_llm: Any) -> None:
    fake_llm.set_handler(labeller)
    out = ai.map(["good", "broken"], "Label {text}", schema=Label, progress=False)
    assert out["sentiment"][0] == "pos" and out["sentiment"].isna().tolist() == [False, True]
    assert out["_error"][0] is None
    assert out["_error"][1].startswith("OutputValidationError")


def test_the_schema_is_part_of_the_row_key(ai: Any, fake_llm: Any) -> None:
    class Other(BaseModel):
        sentiment: str

    fake_llm.set_handler(labeller)
    one = ai.map(["good"], "Label {text}", schema=Label, progress=False)
    two = ai.map(["good"], "Label {text}", schema=Other, progress=False)
    plain = ai.map(["good"], "Label {text}", progress=False)
    assert len({one["_row_key"][0], two["_row_key"][0], plain["_row_key"][0]}) == 3


def test_field_names_may_not_overwrite_data(ai: Any) -> None:
    from kite_lab import InvalidInput

    with pytest.raises(InvalidInput, match=r"already has column\(s\) \['score'\]"):
        ai.map([{"text": "a", "score": 1}], "Label {text}", schema=Label, progress=False)
