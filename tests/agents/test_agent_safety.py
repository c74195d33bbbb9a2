"""Breaker and kill switch during runs: the run ends with success False and a clear error,
never a hang or an exception out of run()."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from kite_lab import Kite
from kite_lab.testing import Fault, FakeLLMServer, Reply, ToolCallSpec

from test_agent_concurrency import has_tool_result


async def test_a_breaker_that_opens_mid_run_ends_the_run(
    make_kite: Callable[..., Kite], fake_llm: FakeLLMServer
) -> None:
    ai = make_kite(circuit_breaker_threshold=1)
    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "1 + 1"})]),
        Fault(status=500),
    )
    agent = ai.create_agent("fragile", tools=["calculator"])
    first = await agent.run("add")
    assert not first.success and first.error.startswith("ServerError")
    assert first.iterations == 2 and first.tool_calls[0].ok

    # the failure opened the breaker: the next run stops at once, without a request
    second = await agent.run("add again")
    assert not second.success
    assert second.error.startswith("CircuitBreakerError: circuit breaker")
    assert "open" in second.error and len(fake_llm.requests) == 2
    assert agent.failure_count == 2 and agent.get_metrics()["last_error"] == second.error


async def test_breaker_tripped_while_a_tool_runs(ai: Kite, fake_llm: FakeLLMServer) -> None:
    @ai.tool
    async def maintenance() -> str:
        """Starts maintenance."""
        await ai.breaker_for(ai.provider_name).atrip("maintenance window")
        return "started"

    fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("maintenance", {})]), Reply(text="never"))
    result = await ai.create_agent("m", tools=["maintenance"]).run("start maintenance")
    assert not result.success and result.error.startswith("CircuitBreakerError")
    assert result.tool_calls[0].ok and len(fake_llm.requests) == 1


async def test_kill_switch_activated_mid_run_stops_every_running_agent(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    def endless(request: Any) -> Reply:  # always another tool call: only the switch stops it
        return Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "1 + 1"})])

    fake_llm.set_handler(endless)
    fake_llm.latency = 0.05
    agents = [ai.create_agent(f"a{i}", tools=["calculator"], max_iterations=1000) for i in range(20)]
    runs = [asyncio.ensure_future(a.run("loop forever")) for a in agents]
    await asyncio.sleep(0.3)
    ai.kill_switch.activate("incident 42")
    try:
        results = await asyncio.wait_for(asyncio.gather(*runs), timeout=10)
    finally:
        ai.kill_switch.deactivate()
    for result in results:
        assert not result.success
        assert result.error.startswith("KillSwitchError") and "incident 42" in result.error
        assert 1 <= result.iterations < 1000

    # with the switch active nothing starts; after deactivation runs work again
    ai.kill_switch.activate("maintenance")
    blocked = await agents[0].run("x")
    assert blocked.error.startswith("KillSwitchError") and blocked.iterations in (0, 1)
    ai.kill_switch.deactivate()
    fake_llm.set_handler(lambda r: Reply(text="back"))
    assert (await agents[0].run("x")).response == "back"


def repeat_model(request: Any) -> Reply:
    return Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "1 + 1"})])


@pytest.mark.parametrize(
    ("limit", "value", "message"),
    [
        ("max_same_action", 2, "repeated the same action calculator"),
        ("max_iterations", 3, "kill switch limit max_iterations=3 reached"),
        ("max_cost_usd", 1e-9, "cost limit reached"),
    ],
)
async def test_kill_switch_limits(
    ai: Kite, fake_llm: FakeLLMServer, limit: str, value: float, message: str
) -> None:
    fake_llm.set_handler(repeat_model)
    setattr(ai.kill_switch.limits, limit, value)
    try:
        result = await ai.create_agent("limited", tools=["calculator"], max_iterations=50).run("go")
    finally:
        setattr(ai.kill_switch.limits, limit, None)
    assert not result.success
    assert result.error.startswith("AgentLimitReached") and message in result.error
    assert result.iterations <= 3


async def test_kill_switch_max_seconds_bounds_a_slow_call(ai: Kite, fake_llm: FakeLLMServer) -> None:
    fake_llm.enqueue(Reply(text="too late", latency=5))
    ai.kill_switch.limits.max_seconds = 0.3
    try:
        result = await asyncio.wait_for(ai.create_agent("slow").run("hurry"), timeout=4)
    finally:
        ai.kill_switch.limits.max_seconds = None
    assert not result.success and "max_seconds=0.3" in result.error
