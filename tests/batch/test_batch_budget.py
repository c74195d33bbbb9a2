"""budget_usd: no row starts beyond the budget; a partial frame and a warning, or
BudgetExceeded with strict=True. dry_run: an estimate and no call."""

from __future__ import annotations

from typing import Any

import pytest
from batch_helpers import llm_calls

from kite_lab import BudgetExceeded, InvalidInput
from kite_lab.batch.estimate import MapEstimate
from kite_lab.testing import Reply

pytestmark = pytest.mark.timeout(60)

PRICE_IN, PRICE_OUT = 0.15e-6, 0.60e-6  # gpt-4o-mini


def expensive(request: Any) -> Reply:
    return Reply(text="label", completion_tokens=1000)  # ~$0.0006 a row


def test_the_budget_stops_new_rows_and_warns(ai: Any, fake_llm: Any) -> None:
    fake_llm.set_handler(expensive)
    rows = [f"r{i}" for i in range(20)]
    with pytest.warns(UserWarning, match=r"stopped at budget_usd=0.002: spent \$0.0018"):
        out = ai.map(rows, "Say {text}", budget_usd=0.002, max_tokens=1000, concurrency=4,
                     progress=False)
    # each row's worst case is ~$0.000603: three fit in $0.002, the fourth never starts
    assert llm_calls(fake_llm) == 3
    assert out["answer"].tolist()[:3] == ["label"] * 3
    assert out["_error"].tolist() == [None] * 3 + ["budget exceeded"] * 17
    assert out["_cost_usd"].sum() == pytest.approx(3 * (2 * PRICE_IN + 1000 * PRICE_OUT))
    assert out["_cost_usd"].sum() <= 0.002
    assert len(out) == 20 and list(out.index) == list(range(20))


def test_rows_wait_for_in_flight_rows_rather_than_stop(ai: Any, fake_llm: Any) -> None:
    # worst case $0.000603 a row, real cost ~$0.0000018: with room for one worst case at a
    # time the map still finishes, one row after another
    rows = [f"r{i}" for i in range(6)]
    out = ai.map(rows, "Say {text}", budget_usd=0.0007, max_tokens=1000, concurrency=4,
                 progress=False)
    assert out["_error"].isna().all()
    assert llm_calls(fake_llm) == 6


def test_strict_raises_budget_exceeded_with_the_partial_frame(ai: Any, fake_llm: Any) -> None:
    fake_llm.set_handler(expensive)
    with pytest.raises(BudgetExceeded) as caught:
        ai.map([f"r{i}" for i in range(5)], "Say {text}", budget_usd=0.0013, max_tokens=1000,
               strict=True, progress=False)
    error = caught.value
    assert error.skipped == 3 and error.budget_usd == 0.0013
    assert error.spent_usd == pytest.approx(2 * (2 * PRICE_IN + 1000 * PRICE_OUT))
    assert error.partial["_error"].tolist() == [None, None] + ["budget exceeded"] * 3
    assert "raise budget_usd" in str(error)


def test_a_budget_needs_max_tokens_and_a_price(ai: Any, fake_llm: Any) -> None:
    with pytest.raises(InvalidInput, match="budget_usd needs max_tokens"):
        ai.map(["a"], "Say {text}", budget_usd=1.0, progress=False)
    with pytest.raises(InvalidInput, match="needs a price for openai/my-finetune"):
        ai.map(["a"], "Say {text}", budget_usd=1.0, max_tokens=5, model="my-finetune",
               progress=False)
    assert llm_calls(fake_llm) == 0


def test_dry_run_estimates_and_calls_nothing(ai: Any, fake_llm: Any) -> None:
    rows = ["one two three", "four"]
    estimate = ai.map(rows, "Say {text}", dry_run=True, max_tokens=50, system="Be brief.")
    assert isinstance(estimate, MapEstimate)
    assert llm_calls(fake_llm) == 0
    assert (estimate.rows, estimate.calls, estimate.done) == (2, 2, 0)
    assert (estimate.provider, estimate.model) == ("openai", "gpt-4o-mini")
    assert estimate.max_completion_tokens == 100
    # the worst case counts one token per UTF-8 byte of prompt + system, + 16 framing
    bytes_ = [len("Say one two three"), len("Say four")]
    worst = sum((b + len("Be brief.") + 16) * PRICE_IN + 50 * PRICE_OUT for b in bytes_)
    assert estimate.worst_case_usd == pytest.approx(worst)
    assert estimate.prompt_tokens_max == sum(b + len("Be brief.") + 16 for b in bytes_)
    assert 0 < estimate.prompt_tokens < estimate.prompt_tokens_max
    assert "2 calls" in str(estimate) and estimate.to_dict()["rows"] == 2


def test_dry_run_of_an_unpriced_model_or_without_max_tokens_is_none(ai: Any) -> None:
    unpriced = ai.map(["a"], "Say {text}", dry_run=True, max_tokens=5, model="my-finetune")
    assert unpriced.worst_case_usd is None
    unbounded = ai.map(["a"], "Say {text}", dry_run=True)
    assert unbounded.worst_case_usd is None and unbounded.max_completion_tokens is None


def test_dry_run_counts_rows_a_checkpoint_already_has(ai: Any, fake_llm: Any) -> None:
    ai.map(["a", "b"], "Say {text}", checkpoint="cp.sqlite", progress=False)
    estimate = ai.map(["a", "b", "c"], "Say {text}", checkpoint="cp.sqlite", dry_run=True)
    assert (estimate.calls, estimate.done) == (1, 2)
    assert llm_calls(fake_llm) == 2
