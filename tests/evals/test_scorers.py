"""The scorers on their own, and the statistics behind summary/compare."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel

from kite_lab import InvalidInput
from kite_lab.evals.scorers import (
    as_scorer,
    contains,
    exact_match,
    json_valid,
    parse_scorer,
    regex,
    similarity,
    unique_names,
)
from kite_lab.evals.stats import mean_se, paired_comparison


def test_text_scorers():
    row = {"answer": "Paris"}
    assert exact_match("answer").score("  paris \n", row) == 1.0
    assert exact_match("answer", ignore_case=False).score("paris", row) == 0.0
    assert contains("answer").score("It is PARIS, of course.", row) == 1.0
    assert contains("answer").score("Lyon", row) == 0.0
    assert regex(r"^\d+$").score("42", {}) == 1.0 and regex(r"^\d+$").score("4 2", {}) == 0.0
    assert exact_match("answer").score(None, row) == 0.0  # a failed row scores 0


def test_json_valid_with_and_without_a_schema():
    class City(BaseModel):
        name: str
        population: int

    assert json_valid().score('{"a": 1}', {}) == 1.0
    assert json_valid().score("not json", {}) == 0.0
    assert json_valid(City).score('{"name": "Oslo", "population": 700000}', {}) == 1.0
    assert json_valid(City).score('{"name": "Oslo"}', {}) == 0.0
    assert json_valid(City).score(City(name="Oslo", population=1), {}) == 1.0


def test_callables_and_specs():
    def shorter_than_10(output, row):
        return len(output) < 10

    scorer = as_scorer(shorter_than_10)
    assert scorer.name == "shorter_than_10" and scorer.score("short", {}) == 1.0
    assert parse_scorer("similarity:answer:0.9").threshold == 0.9
    assert parse_scorer("exact_match:answer").columns == ("answer",)
    assert parse_scorer("regex:a:b").score("xa:by", {}) == 1.0  # the pattern keeps its colons
    with pytest.raises(InvalidInput, match="scorers: contains, exact_match"):
        parse_scorer("fuzzy:answer")
    with pytest.raises(InvalidInput, match="needs a column"):
        parse_scorer("contains")
    with pytest.raises(InvalidInput, match="not a valid pattern"):
        regex("(")
    with pytest.raises(InvalidInput, match=r"in \(0, 1\]"):
        similarity("answer", 1.5)
    with pytest.raises(TypeError, match="exact_match:answer"):
        as_scorer(3)
    assert unique_names([exact_match("a"), exact_match("b"), contains("a")]) == [
        "exact_match:a", "exact_match:b", "contains"]


async def test_similarity_embeds_offline_with_fastembed(tmp_path):
    from kite_lab import Kite

    ai = Kite(config={"llm_provider": "local", "kite_home": str(tmp_path)})
    scorer = similarity("answer", 0.8)
    rows = [{"answer": "The capital of France is Paris."}] * 3
    scores = await scorer.ascore_many(
        ai, ["Paris is the capital of France.", "I like green bananas.", None], rows)
    assert scores[0] > 0.8 and scorer.passed(scores[0])
    assert scores[1] < 0.5 and not scorer.passed(scores[1])
    assert scores[2] == 0.0


def test_mean_and_standard_error():
    assert mean_se([1.0, 0.0, 1.0, 0.0]) == (0.5, pytest.approx(math.sqrt(1 / 3) / 2))
    assert mean_se([0.7]) == (0.7, 0.0)
    assert all(math.isnan(v) for v in mean_se([]))


def test_paired_comparison():
    same = paired_comparison([1, 0, 1, 0] * 5, [1, 0, 1, 0] * 5)
    assert same.mean_diff == 0 and same.p_value == 1.0 and not same.significant
    better = paired_comparison([0.0] * 20, [1.0] * 20)
    assert better.mean_diff == 1.0 and better.ci_low == better.ci_high == 1.0
    assert better.p_value < 0.001 and better.significant
    noisy = paired_comparison([0, 1, 0, 1, 1, 0], [1, 0, 0, 1, 1, 1])
    assert 0.2 < noisy.p_value <= 1.0 and noisy.ci_low < noisy.mean_diff < noisy.ci_high
    with pytest.raises(ValueError, match="same length"):
        paired_comparison([1, 2], [1])
