"""ai.evaluate end to end: real SDK, real HTTP to the fake server, real pandas/plotly."""

from __future__ import annotations

import json

import pytest

from kite_lab import InvalidInput, Kite, UnknownProvider
from kite_lab.evals import EvalResult, Prompt
from kite_lab.evals.scorers import contains, exact_match, llm_judge
from kite_lab.testing import FakeLLMServer, Reply

CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Italy": "Rome", "Spain": "Madrid",
    "Egypt": "Cairo", "Peru": "Lima", "Kenya": "Nairobi", "Chile": "Santiago",
    "Norway": "Oslo", "Cuba": "Havana", "Greece": "Athens", "Poland": "Warsaw",
}
DATA = [{"country": c, "answer": a} for c, a in CAPITALS.items()]


def _answer(request) -> Reply:
    """gpt-4o-mini knows every capital; gpt-4o answers 'unsure' to all; a judge grades 8."""
    text = request.last_user_text
    if "Rubric:" in text:
        return Reply(text='{"score": 8, "reason": "fine"}')
    if request.model == "gpt-4o":
        return Reply(text="unsure")
    country = next(c for c in CAPITALS if c in text)
    return Reply(text=f" {CAPITALS[country]} ")


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        fake.set_handler(_answer)
        yield fake


@pytest.fixture
def ai(server, tmp_path):
    kite = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-test",
                        "openai_base_url": server.openai_base_url,
                        "kite_home": str(tmp_path / "home")})
    yield kite
    kite.close()


GOOD = Prompt("Capital of {country}? One word.", model="openai/gpt-4o-mini", name="good")
BAD = Prompt("Capital of {country}?", model="openai/gpt-4o", name="bad")


def test_two_targets_are_scored_summarised_and_compared(ai, server):
    result = ai.evaluate(DATA, [GOOD, BAD], [exact_match("answer"), "contains:answer"],
                         progress=False, name="capitals")
    assert isinstance(result, EvalResult)
    assert len(server.requests) == 2 * len(DATA)
    df = result.df
    assert len(df) == 2 * len(DATA)
    assert list(df.columns[:4]) == ["sample", "target", "repeat", "output"]
    good = df[df["target"] == "good"]
    assert good["output"].str.strip().tolist() == list(CAPITALS.values())
    assert good["exact_match"].tolist() == [1.0] * len(DATA)
    assert df[df["target"] == "bad"]["contains"].tolist() == [0.0] * len(DATA)
    # tokens: the fake server counts words; cost from the price table; latency measured
    assert (df["total_tokens"] > 0).all() and (df["cost_usd"] > 0).all()
    assert df["latency_s"].notna().all() and df["error"].isna().all()

    summary = result.summary()
    assert summary.loc["good", "exact_match_mean"] == 1.0
    assert summary.loc["bad", "exact_match_mean"] == 0.0
    assert summary.loc["good", "pass_rate"] == 1.0 and summary.loc["bad", "pass_rate"] == 0.0
    assert summary.loc["good", "n"] == len(DATA)
    assert summary.loc["good", "cost_usd"] == pytest.approx(good["cost_usd"].sum())

    compared = result.compare("good", "bad")
    row = compared.loc["exact_match"]
    assert row["mean_diff"] == -1.0 and row["n"] == len(DATA)
    assert row["p_value"] < 0.01 and bool(row["significant"])
    with pytest.raises(InvalidInput, match="targets: good, bad"):
        result.compare("good", "nope")


def test_model_ids_use_the_eval_prompt_and_repeats_ask_again(ai, server):
    data = [{"input": f"Capital of {c}?", "answer": a} for c, a in list(CAPITALS.items())[:3]]
    result = ai.evaluate(data, ["openai/gpt-4o-mini"], ["exact_match:answer"], repeats=3,
                         progress=False)
    assert len(result.df) == 9 and sorted(set(result.df["repeat"])) == [0, 1, 2]
    assert len(server.requests) == 9  # uncached: every repeat is a new answer
    assert {r.last_user_text for r in server.requests} == {d["input"] for d in data}
    assert result.summary().loc["openai/gpt-4o-mini", "exact_match_mean"] == 1.0


def test_bad_input_fails_before_any_call(ai, server):
    with pytest.raises(InvalidInput, match=r"'expected'.*columns: 'country', 'answer'"):
        ai.evaluate(DATA, [GOOD], [exact_match("expected")], progress=False)
    with pytest.raises(UnknownProvider):
        ai.evaluate(DATA, [GOOD, Prompt("{country}", model="nosuch/model")],
                    [exact_match("answer")], progress=False)
    with pytest.raises(InvalidInput, match="no prompt for it"):
        ai.evaluate([{"a": 1, "b": 2, "answer": 3}], ["openai/gpt-4o-mini"], ["exact_match:answer"],
                    progress=False)
    with pytest.raises(TypeError, match="model ids"):
        ai.evaluate(DATA, [42], [exact_match("answer")], progress=False)
    with pytest.raises(TypeError, match="DataFrame, a list of dicts"):
        ai.evaluate(42, [GOOD], [exact_match("answer")], progress=False)
    with pytest.raises(InvalidInput, match="unknown scorer 'exactish'"):
        ai.evaluate(DATA, [GOOD], ["exactish:answer"], progress=False)
    assert server.requests == []


def test_budget_covers_the_whole_eval(ai, server):
    capped = [Prompt("Capital of {country}? One word.", model="openai/gpt-4o-mini",
                     max_tokens=5, name="a"),
              Prompt("Capital of {country}?", model="openai/gpt-4o", max_tokens=5, name="b")]
    budget = 0.0002  # a few gpt-4o rows' worst case: the second target runs out
    with pytest.warns(UserWarning, match="budget"):
        result = ai.evaluate(DATA, capped, [exact_match("answer")], budget_usd=budget,
                             concurrency=1, progress=False)
    assert 0 < result.df["cost_usd"].sum() <= budget
    skipped = result.df[result.df["error"] == "budget exceeded"]
    assert len(skipped) > 0 and set(skipped["target"]) == {"b"}
    assert (skipped["exact_match"] == 0).all()
    assert len(server.requests) == len(result.df) - len(skipped)


def test_llm_judge_calls_go_through_the_pipeline(ai, server):
    events: list[dict] = []
    ai.event_bus.subscribe("llm:response", lambda event: events.append(event.data))
    judge = llm_judge("openai/gpt-4o-mini", "names the right capital", expected="answer")
    result = ai.evaluate(DATA[:4], [GOOD], [judge], progress=False)
    assert result.df["llm_judge"].tolist() == [0.8] * 4
    judged = [r for r in server.requests if "Rubric: names the right capital" in r.last_user_text]
    references = {r.last_user_text.split("Reference answer:\n")[1].split("\n")[0] for r in judged}
    assert references == {d["answer"] for d in DATA[:4]}
    assert len(events) == 8  # 4 answers + 4 grades, each an accounted pipeline call
    # temperature 0: the judge is cached, so a second eval pays only the targets
    server.clear_requests()
    ai.evaluate(DATA[:4], [GOOD], [judge], progress=False)
    assert not [r for r in server.requests if "Rubric:" in r.last_user_text]


def test_every_call_carries_the_eval_run_id(ai):
    seen: list[dict] = []
    ai.event_bus.subscribe("llm:*", lambda event: seen.append(event.data))
    result = ai.evaluate(DATA[:3], [GOOD], [contains("answer")], progress=False)
    assert result.run_id and result.run_id.startswith("eval-")
    assert seen and {d.get("run_id") for d in seen} == {result.run_id}
    from kite_lab import frames

    ai.call_log.flush()
    logged = frames.calls_df(ai, run_id=result.run_id)  # from the persistent call log
    assert len(logged) == 3 and set(logged["run_id"]) == {result.run_id}
    assert logged["total_tokens"].sum() == result.df["total_tokens"].sum()


def test_datasets_from_files_and_results_to_files(ai, tmp_path):
    csv = tmp_path / "capitals.csv"
    csv.write_text("country,answer\nFrance,Paris\nJapan,Tokyo\n", encoding="utf-8")
    jsonl = tmp_path / "capitals.jsonl"
    jsonl.write_text("\n".join(json.dumps(d) for d in DATA[:2]), encoding="utf-8")
    from_csv = ai.evaluate(csv, [GOOD], [exact_match("answer")], progress=False)
    from_jsonl = ai.evaluate(str(jsonl), [GOOD], [exact_match("answer")], progress=False)
    assert from_csv.df["exact_match"].tolist() == from_jsonl.df["exact_match"].tolist() == [1, 1]
    with pytest.raises(InvalidInput, match="not found"):
        ai.evaluate(tmp_path / "missing.csv", [GOOD], [exact_match("answer")])

    html = from_csv.save(tmp_path / "out" / "r.html").read_text(encoding="utf-8")
    assert "exact_match_mean" in html and "plotly" in html.lower()
    saved = json.loads(from_csv.save(tmp_path / "out" / "r.json").read_text(encoding="utf-8"))
    assert saved["summary"][0]["exact_match_mean"] == 1.0 and len(saved["rows"]) == 2
    import pandas as pd

    rows = pd.read_csv(from_csv.save(tmp_path / "out" / "r.csv"))
    again = EvalResult.from_frame(rows, ["exact_match"])
    assert again.summary()["exact_match_mean"].tolist() == [1.0]
    with pytest.raises(InvalidInput, match=".html, .json or .csv"):
        from_csv.save(tmp_path / "r.txt")


def test_plot_has_a_bar_per_scorer_with_error_bars(ai):
    result = ai.evaluate(DATA[:4], [GOOD, BAD], [exact_match("answer"), contains("answer")],
                         progress=False)
    figure = result.plot()
    bars = [t for t in figure.data if t.type == "bar"]
    assert [b.name for b in bars] == ["exact_match", "contains"]
    assert list(bars[0].x) == ["good", "bad"] and list(bars[0].y) == [1.0, 0.0]
    assert bars[0].error_y.array is not None
    scatter = [t for t in figure.data if t.type == "scatter"][0]
    assert list(scatter.text) == ["good", "bad"]


def test_an_agent_target(ai, server):
    agent = ai.create_agent("geo", "You answer with a capital.", model="openai/gpt-4o-mini")
    result = ai.evaluate([{"country": c, "answer": a} for c, a in list(CAPITALS.items())[:3]],
                         [agent], [contains("answer")], progress=False)
    assert result.targets == ["geo"]
    assert result.df["contains"].tolist() == [1.0, 1.0, 1.0]
