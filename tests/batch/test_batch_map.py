"""ai.map over the three kinds of data and the three kinds of prompt, against the fake
OpenAI server over real HTTP: answers and metadata by value, index and order kept."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from batch_helpers import llm_calls

from kite_lab.batch.plan import META_COLUMNS

pytestmark = pytest.mark.timeout(60)

# gpt-4o-mini: $0.15 / $0.60 per million tokens; the fake server counts words as tokens
PRICE_IN, PRICE_OUT = 0.15e-6, 0.60e-6


def cost(prompt_words: int, answer_words: int) -> float:
    return prompt_words * PRICE_IN + answer_words * PRICE_OUT


def test_answers_and_metadata_by_value(ai: Any, fake_llm: Any) -> None:
    data = pd.DataFrame({"review": ["good", "bad", "meh"], "stars": [5, 1, 3]}, index=[10, 5, 7])
    out = ai.map(data, "Classify: {review}", progress=False)

    assert list(out.columns) == ["review", "stars", "answer", *META_COLUMNS]
    assert list(out.index) == [10, 5, 7]
    assert out["review"].tolist() == ["good", "bad", "meh"]
    assert out["answer"].tolist() == ["Echo: Classify: good", "Echo: Classify: bad",
                                      "Echo: Classify: meh"]
    assert out["_error"].isna().all()
    assert out["_total_tokens"].tolist() == [5, 5, 5]  # 2 prompt words + 3 answer words
    assert out["_cost_usd"].tolist() == pytest.approx([cost(2, 3)] * 3)
    assert out["_cached"].tolist() == [False, False, False]
    assert (out["_latency_s"] > 0).all()
    assert out["_row_key"].str.fullmatch(r"[0-9a-f]{64}").all()
    assert out["_row_key"].nunique() == 3
    assert "answer" not in data.columns  # the caller's frame is not changed
    assert llm_calls(fake_llm) == 3
    sent = sorted(r.last_user_text for r in fake_llm.requests)
    assert sent == ["Classify: bad", "Classify: good", "Classify: meh"]


def test_order_is_kept_whatever_order_answers_arrive_in(ai: Any, fake_llm: Any) -> None:
    from kite_lab.testing import Reply

    def slow_first(request: Any) -> Reply:  # earlier rows answer later
        n = int(request.last_user_text.split()[-1])
        return Reply(text=f"#{n}", latency=0.02 * (8 - n))

    fake_llm.set_handler(slow_first)
    data = pd.DataFrame({"n": range(8)}, index=list("hgfedcba"))
    out = ai.map(data, "row {n}", concurrency=8, progress=False)
    assert list(out.index) == list("hgfedcba")
    assert out["answer"].tolist() == [f"#{n}" for n in range(8)]


def test_a_list_of_dicts(ai: Any) -> None:
    out = ai.map([{"city": "Paris", "x": 1}, {"city": "Rome"}], "Visit {city}", progress=False)
    assert list(out.columns[:2]) == ["city", "x"]
    assert out["answer"].tolist() == ["Echo: Visit Paris", "Echo: Visit Rome"]
    assert pd.isna(out.loc[1, "x"])


def test_an_iterable_of_strings_is_one_column_text(ai: Any) -> None:
    out = ai.map((f"w{i}" for i in range(3)), "Say {text}", progress=False)
    assert list(out.columns) == ["text", "answer", *META_COLUMNS]
    assert out["answer"].tolist() == ["Echo: Say w0", "Echo: Say w1", "Echo: Say w2"]


def test_a_callable_prompt_gets_the_row_as_a_dict(ai: Any) -> None:
    seen: list[dict[str, Any]] = []

    def prompt(row: dict[str, Any]) -> str:
        seen.append(row)
        return f"{row['a']} plus {row['b']}"

    out = ai.map(pd.DataFrame({"a": [1, 2], "b": [3, 4]}), prompt, progress=False)
    assert out["answer"].tolist() == ["Echo: 1 plus 3", "Echo: 2 plus 4"]
    assert seen == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]


def test_an_agent_gets_the_row_as_its_input(ai: Any, fake_llm: Any) -> None:
    agent = ai.create_agent("labeler", "You label things.")
    out = ai.map(["apple", "stone"], agent, progress=False)
    assert out["answer"].tolist() == ["Echo: apple", "Echo: stone"]
    assert out["_error"].isna().all()
    assert out["_total_tokens"].gt(0).all()
    several = ai.map([{"name": "apple", "color": "red"}], agent, progress=False)
    assert several.loc[0, "answer"] == "Echo: name: apple\ncolor: red"
    system = fake_llm.requests[-1].messages[0]
    assert system["role"] == "system" and "You label things." in system["content"]


def test_unknown_braces_stay_literal_and_double_braces_escape(ai: Any, fake_llm: Any) -> None:
    template = 'Return {"label": "x"} for {text}; keep {{text}} and {missing.attr as is'
    out = ai.map(["a"], template, progress=False)
    assert fake_llm.requests[-1].last_user_text == (
        'Return {"label": "x"} for a; keep {text} and {missing.attr as is')
    assert out.loc[0, "_error"] is None


def test_rows_with_the_same_key_are_asked_once(ai: Any, fake_llm: Any) -> None:
    out = ai.map(["same", "other", "same"], "Say {text}", progress=False)
    assert llm_calls(fake_llm) == 2
    assert out["answer"].tolist() == ["Echo: Say same", "Echo: Say other", "Echo: Say same"]
    assert out["_row_key"][0] == out["_row_key"][2]
    assert out["_cached"].tolist() == [False, False, True]
    assert out["_cost_usd"][2] == 0.0


def test_model_system_and_params_reach_the_request(ai: Any, fake_llm: Any) -> None:
    ai.map(["x"], "Say {text}", model="gpt-4.1-nano", system="Be brief.", temperature=0.5,
           max_tokens=7, progress=False)
    body = fake_llm.requests[-1].json
    assert body["model"] == "gpt-4.1-nano"
    assert body["temperature"] == 0.5 and body["max_tokens"] == 7
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_amap_is_the_same_map(ai: Any) -> None:
    out = await ai.amap(["q"], "Say {text}", progress=False)
    assert out["answer"].tolist() == ["Echo: Say q"]


def test_the_progress_bar_counts_rows_and_cost(ai: Any, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    ai.map(["a", "b"], "Say {text}")
    err = capsys.readouterr().err
    assert "ai.map" in err and "2/2" in err and "0 errors" in err and "row/s" in err
    ai.map(["c"], "Say {text}", progress=False)
    assert capsys.readouterr().err == ""
