"""Widgets with ipywidgets' comm-less backend: construct, click, and read the traits."""

from __future__ import annotations

from typing import Any

import pytest

from kite_lab.core.errors import ServerError
from kite_lab.notebook.widgets import AgentRunWidget, BreakerInspector, MemoryExplorer
from kite_lab.testing import Fault, Reply, ToolCallSpec


def test_agent_run_widget_click_run(fake_kite: Any, fake_llm: Any) -> None:
    agent = fake_kite.create_agent("calc", "You compute.", tools=["calculator"])
    fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "6*7"})]),
                     Reply(text="It is 42."))
    widget = AgentRunWidget(agent)
    assert widget.status == "idle"
    widget.prompt.value = "What is 6*7?"
    widget.run_button.click()
    result = widget.wait(30)
    assert result.success and widget.status == "done" and widget.answer == "It is 42."
    kinds = [e["event"] for e in widget.events]
    for expected in ("agent:start", "agent:step", "llm:response", "tool:call", "tool:result",
                     "agent:end"):
        assert expected in kinds
    call = next(e for e in widget.events if e["event"] == "tool:call")
    assert call["arguments"] == {"expression": "6*7"}
    assert "calculator" in widget.timeline.value and "42" in widget.answer_box.value
    assert widget.totals["tool_calls"] == 1 and widget.totals["iterations"] == 2
    assert not widget.run_button.disabled
    bundle = widget._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "It is 42." in bundle["text/markdown"]


def test_agent_run_widget_failure_and_empty_prompt(fake_kite: Any, fake_llm: Any) -> None:
    widget = AgentRunWidget(fake_kite.create_agent("bot"))
    widget.run_button.click()
    assert widget.status == "error"
    fake_llm.enqueue(Fault(status=400, message="nope"))
    result = widget.run("hi", timeout=30)
    assert not result.success and widget.status == "failed"
    assert "failed" in widget.status_label.value


def test_breaker_inspector_buttons_and_events(fake_kite: Any, fake_llm: Any) -> None:
    inspector = BreakerInspector(fake_kite)
    assert inspector.state == "closed" and "closed" in inspector.badge.value
    inspector.reason.value = "maintenance"
    inspector.trip_button.click()
    assert inspector.state == "open" and "open" in inspector.badge.value
    assert fake_kite.circuit_breaker.state.value == "open"
    move = inspector.events[-1]
    assert move["event"] == "breaker:state" and move["new"] == "open"
    assert move["reason"] == "maintenance"
    inspector.reset_button.click()
    assert inspector.state == "closed" and fake_kite.circuit_breaker.state.value == "closed"
    assert [e["new"] for e in inspector.events if e["event"] == "breaker:state"] == [
        "open", "closed"]
    assert list(inspector.plot.data[0].y) == [2, 0]
    assert "closed" in inspector._repr_mimebundle_()["text/markdown"]


def test_breaker_inspector_counts_real_failures(fake_kite: Any, fake_llm: Any) -> None:
    inspector = BreakerInspector(fake_kite)
    inspector.threshold.value = 2
    assert fake_kite.circuit_breaker.config.failure_threshold == 2
    fake_llm.enqueue(Fault(status=500), Fault(status=500))
    for _ in range(2):
        with pytest.raises(ServerError):
            fake_kite.complete("hi")
    assert inspector.state == "open"  # pushed by the breaker:state event, no refresh
    assert sum(e["event"] == "breaker:failure" for e in inspector.events) == 2
    inspector.refresh_button.click()
    assert inspector.stats["failed_calls"] == 2
    inspector.timeout.value = 5
    assert fake_kite.circuit_breaker.config.timeout_seconds == 5.0


def test_memory_explorer(tmp_path: Any) -> None:
    from kite_lab import Kite

    ai = Kite(config={"kite_home": str(tmp_path / "home")}, env_file=None)
    ai.vector_memory.add_document("kites", "Kites fly when the wind is steady.")
    ai.vector_memory.add_document("tea", "Green tea is brewed at 80 degrees.")
    explorer = MemoryExplorer(ai, top_k=1)
    explorer.search_box.value = "wind for flying"
    assert explorer.query == "wind for flying"
    assert [h["doc_id"] for h in explorer.hits] == ["kites"]
    assert "kites" in explorer.table.value
    explorer.search_button.click()
    assert len(explorer.hits) == 1
    assert "kites" in explorer._repr_mimebundle_()["text/markdown"]


def test_breaker_inspector_on_a_redis_breaker(fake_llm: Any, redis_url: str,
                                              redis_prefix: str) -> None:
    from kite_lab import Kite
    from kite_lab.frames import breakers_df

    ai = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-fake-redis-0123456",
                      "openai_base_url": fake_llm.openai_base_url, "redis_url": redis_url,
                      "kite_redis_prefix": redis_prefix}, env_file=None)
    try:
        inspector = BreakerInspector(ai)
        assert ai.circuit_breaker.backend != "memory"
        inspector.trip_button.click()
        assert inspector.state == "open" and inspector.stats["state"] == "open"
        assert breakers_df(ai)["state"].tolist() == ["open"]
        inspector.reset_button.click()
        assert inspector.state == "closed" and ai.circuit_breaker.refresh().value == "closed"
    finally:
        ai.close()
