"""map:start / map:row / map:done on the Kite's bus, the pipeline's llm:* events tagged
with the run, and kite_map_rows_total{outcome} fed from them."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from kite_lab.observability.metric_catalogue import MetricCatalogue
from kite_lab.observability.metric_events import MetricEventHandlers
from kite_lab.observability.metric_labels import LabelPolicy
from kite_lab.testing import Fault, Reply

pytestmark = pytest.mark.timeout(60)


def test_events_describe_the_run(ai: Any, fake_llm: Any) -> None:
    fake_llm.set_handler(lambda r: Fault(status=400) if "b" in r.last_user_text
                         else Reply(text="ok"))
    out = ai.map(["a", "b", "c"], "Say {text}", concurrency=2, progress=False)
    start, = ai.event_bus.history("map:start")
    run = start.data["map_run"]
    assert start.data | {"map_run": None} == {
        "map_run": None, "rows": 3, "unique": 3, "resumed": 0, "pending": 3, "concurrency": 2,
        "budget_usd": None, "engine": "asyncio", "provider": "openai", "model": "gpt-4o-mini"}
    rows = ai.event_bus.history("map:row")
    assert sorted(e.data["outcome"] for e in rows) == ["error", "success", "success"]
    assert {e.data["row_key"] for e in rows} == set(out["_row_key"])
    assert [e.data["error"] for e in rows if e.data["outcome"] == "error"] == ["BadRequestError"]
    assert all(e.data["map_run"] == run for e in rows)
    done, = ai.event_bus.history("map:done")
    assert done.data["status"] == "completed" and done.data["skipped"] == 0
    assert done.data["success"] == 2 and done.data["error"] == 1
    assert done.data["spent_usd"] == pytest.approx(out["_cost_usd"].sum())
    llm = ai.event_bus.history("llm:*")
    assert llm and all(e.data.get("map_run") == run for e in llm)


def test_map_rows_total_counts_outcomes(ai: Any, fake_llm: Any) -> None:
    metrics = MetricCatalogue(CollectorRegistry())
    MetricEventHandlers(metrics).attach(ai.event_bus, LabelPolicy(providers=["openai"]))

    def sample(outcome: str) -> float:
        value = metrics.registry.get_sample_value("kite_map_rows_total", {"outcome": outcome})
        return value or 0.0

    fake_llm.set_handler(lambda r: Fault(status=400) if "x" in r.last_user_text
                         else Reply(text="ok"))
    ai.map(["a", "x", "a"], "Say {text}", checkpoint="m.sqlite", progress=False)
    assert (sample("success"), sample("error")) == (1, 1)
    ai.map(["a", "x", "b"], "Say {text}", checkpoint="m.sqlite", progress=False)
    assert (sample("resumed"), sample("success"), sample("error")) == (1, 2, 2)
    fake_llm.set_handler(lambda r: Reply(text="big", completion_tokens=1000))
    with pytest.warns(UserWarning):
        ai.map(["p", "q", "r"], "Say {text}", budget_usd=0.0007, max_tokens=1000,
               progress=False)
    assert sample("budget") == 2


def test_maps_df_has_a_row_per_run(ai: Any, fake_llm: Any) -> None:
    from kite_lab import frames

    fake_llm.set_handler(lambda r: Fault(status=400) if "b" in r.last_user_text
                         else Reply(text="ok"))
    first = ai.map(["a", "b", "c"], "Say {text}", checkpoint="runs.sqlite", progress=False)
    ai.map(["a", "b", "c", "d"], "Say {text}", checkpoint="runs.sqlite", progress=False)
    runs = frames.maps_df(ai)
    assert list(runs["status"]) == ["completed", "completed"]
    assert list(runs["rows"]) == [3, 4]
    assert list(runs["success"]) == [2, 1] and list(runs["error"]) == [1, 1]
    assert list(runs["resumed"]) == [0, 2]  # the second run reused the checkpoint's rows
    assert list(runs["skipped"]) == [0, 0]
    assert runs["spent_usd"].iloc[0] == pytest.approx(first["_cost_usd"].sum())
    assert list(runs["model"]) == ["gpt-4o-mini"] * 2 and list(runs["engine"]) == ["asyncio"] * 2
    assert runs["elapsed_s"].gt(0).all() and runs.index.is_monotonic_increasing
