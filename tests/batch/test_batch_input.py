"""Bad input fails before the first call, with a message naming the row, the column or the
accepted types (the fake server must see no request)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from batch_helpers import llm_calls

from kite_lab import InvalidInput

pytestmark = pytest.mark.timeout(60)


def test_an_unknown_template_column_names_it_and_the_columns(ai: Any, fake_llm: Any) -> None:
    data = pd.DataFrame({"review": ["a"], "stars": [1]})
    with pytest.raises(InvalidInput) as caught:
        ai.map(data, "Classify: {revew}", progress=False)
    message = str(caught.value)
    assert "'revew'" in message and "'review', 'stars'" in message and "{{revew}}" in message
    assert llm_calls(fake_llm) == 0


@pytest.mark.parametrize("data", [42, None, "one prompt", {"a": [1, 2]}, b"bytes"])
def test_data_of_another_type_is_a_type_error_naming_the_accepted_types(
        ai: Any, data: Any) -> None:
    with pytest.raises(TypeError, match="a pandas DataFrame, a list of dicts, or an iterable "
                                        "of strings"):
        ai.map(data, "Say {text}", progress=False)


def test_mixed_items_name_the_first_odd_one(ai: Any) -> None:
    with pytest.raises(TypeError, match=r"data\[2\] is a int"):
        ai.map(["a", "b", 3], "Say {text}", progress=False)


@pytest.mark.parametrize("data", [[], pd.DataFrame({"text": []}), iter(())])
def test_empty_data(ai: Any, data: Any) -> None:
    with pytest.raises(InvalidInput, match="data is empty"):
        ai.map(data, "Say {text}", progress=False)


@pytest.mark.parametrize("concurrency", [0, -3])
def test_concurrency_below_one(ai: Any, concurrency: int) -> None:
    with pytest.raises(InvalidInput, match="concurrency must be >= 1"):
        ai.map(["a"], "Say {text}", concurrency=concurrency, progress=False)


def test_concurrency_of_another_type(ai: Any) -> None:
    with pytest.raises(TypeError, match="concurrency must be an int"):
        ai.map(["a"], "Say {text}", concurrency="8", progress=False)


@pytest.mark.parametrize("budget", [0, -1.5])
def test_budget_must_be_positive(ai: Any, budget: float) -> None:
    with pytest.raises(InvalidInput, match="budget_usd must be > 0"):
        ai.map(["a"], "Say {text}", budget_usd=budget, max_tokens=5, progress=False)


def test_an_empty_cell_names_the_row_and_the_column(ai: Any, fake_llm: Any) -> None:
    data = pd.DataFrame({"review": ["ok", None, "fine"]}, index=["r1", "r2", "r3"])
    with pytest.raises(InvalidInput, match=r"row 'r2': column 'review' is empty"):
        ai.map(data, "Classify: {review}", progress=False)
    assert llm_calls(fake_llm) == 0


def test_a_failing_lookup_names_the_row_and_the_column(ai: Any) -> None:
    data = pd.DataFrame({"meta": [{"title": "a"}, {"name": "b"}]})
    with pytest.raises(InvalidInput, match=r"row 1: \{meta\[title\]\} cannot be read from "
                                           r"column 'meta'"):
        ai.map(data, "Title: {meta[title]}", progress=False)


def test_a_failing_callable_names_the_row(ai: Any) -> None:
    def prompt(row: dict[str, Any]) -> str:
        return "x" + row["missing"]

    with pytest.raises(InvalidInput, match="row 0: the prompt callable raised KeyError"):
        ai.map(["a"], prompt, progress=False)
    with pytest.raises(TypeError, match="row 0: the prompt callable returned int"):
        ai.map(["a"], lambda row: 5, progress=False)


def test_an_empty_prompt_names_the_row(ai: Any) -> None:
    with pytest.raises(InvalidInput, match="row 1: the prompt is empty"):
        ai.map(["a", " "], "{text}", progress=False)


def test_a_prompt_of_another_type(ai: Any) -> None:
    with pytest.raises(TypeError, match="prompt must be a template str"):
        ai.map(["a"], 42, progress=False)


def test_the_output_column_may_not_overwrite_data(ai: Any) -> None:
    with pytest.raises(InvalidInput, match="already has column"):
        ai.map([{"answer": 1, "q": "x"}], "Say {q}", progress=False)
    out = ai.map([{"answer": 1, "q": "x"}], "Say {q}", output="label", progress=False)
    assert out["label"].tolist() == ["Echo: Say x"] and out["answer"].tolist() == [1]


def test_unknown_parameters_and_engines_fail_before_any_call(ai: Any, fake_llm: Any) -> None:
    from kite_lab import InvalidParameter

    with pytest.raises(InvalidParameter, match="temprature"):
        ai.map(["a"], "Say {text}", temprature=0, progress=False)
    with pytest.raises(InvalidInput, match="engine must be one of asyncio, ray"):
        ai.map(["a"], "Say {text}", engine="spark", progress=False)
    with pytest.raises(InvalidInput, match="retries must be an int >= 0"):
        ai.map(["a"], "Say {text}", retries=-1, progress=False)
    assert llm_calls(fake_llm) == 0


def test_agent_prompts_take_no_model_arguments(ai: Any) -> None:
    agent = ai.create_agent("a1", "x")
    with pytest.raises(InvalidInput, match="model, temperature do not apply"):
        ai.map(["a"], agent, model="gpt-4o", temperature=0, progress=False)
