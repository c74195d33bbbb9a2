"""Breaker and kill switch during runs: the run ends with success False and a clear error,
never a hang or an exception out of run()."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer, Fault, Reply, ToolCallSpec


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
    assert first.steps[-1]["error"].startswith("ServerError") and first.steps[-1]["iteration"] == 2

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

    switch = ai.kill_switch
    switch.limits.max_iterations = switch.limits.max_same_action = None  # no other stop
    fake_llm.set_handler(endless)
    fake_llm.latency = 0.05
    agents = [
        ai.create_agent(f"a{i}", tools=["calculator"], max_iterations=1000) for i in range(20)
    ]
    runs = [asyncio.ensure_future(a.run("loop forever")) for a in agents]
    await asyncio.sleep(0.3)
    await switch.aactivate("incident 42")
    try:
        results = await asyncio.wait_for(asyncio.gather(*runs), timeout=10)
    finally:
        await switch.adeactivate()
    for result in results:
        assert not result.success
        assert result.error.startswith("KillSwitchError") and "incident 42" in result.error
        assert 1 <= result.iterations < 1000

    # with the switch active nothing starts; after deactivation runs work again
    await switch.aactivate("maintenance")
    blocked = await agents[0].run("x")
    assert blocked.error.startswith("KillSwitchError") and blocked.iterations == 1
    await switch.adeactivate()
    fake_llm.set_handler(lambda r: Reply(text="back"))
    assert (await agents[0].run("x")).response == "back"


def repeat_model(request: Any) -> Reply:
    return Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "1 + 1"})])


def no_limits(ai: Kite) -> Any:
    limits = ai.kill_switch.limits
    limits.max_iterations = limits.max_same_action = None
    limits.max_cost_usd = limits.max_seconds = None
    return limits


@pytest.mark.parametrize(
    ("limit", "value", "message", "iterations"),
    [
        ("max_same_action", 2, "the same action was repeated 2 times", 2),
        ("max_iterations", 3, "kill switch limit: max_iterations (3) reached", 3),
        ("max_cost_usd", 1e-9, "kill switch limit: max_cost_usd", 1),
    ],
)
async def test_kill_switch_limits(
    ai: Kite, fake_llm: FakeLLMServer, limit: str, value: float, message: str, iterations: int
) -> None:
    fake_llm.set_handler(repeat_model)
    setattr(no_limits(ai), limit, value)
    agent = ai.create_agent("limited", tools=["calculator"], max_iterations=50)
    result = await agent.run("go")
    assert not result.success and result.iterations == iterations
    assert result.error.startswith("AgentLimitReached") and message in result.error
    assert "ai.kill_switch.limits" in result.error


async def test_same_action_counts_repeats_in_a_row_only(ai: Kite, fake_llm: FakeLLMServer) -> None:
    limits = no_limits(ai)
    limits.max_same_action = 2
    expressions = ["1 + 1", "2 + 2", "1 + 1", "2 + 2", "1 + 1", "1 + 1"]
    for expression in expressions:
        fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("calculator", {"expression": expression})]))
    result = await ai.create_agent("alt", tools=["calculator"]).run("go")
    # alternating calls go on; the second "1 + 1" in a row stops the run before it runs
    assert result.iterations == 6 and len(result.tool_calls) == 5
    assert (
        "repeated 2 times" in result.error
        and "[action: calculator(expression='1 + 1')]" in result.error
    )


async def test_the_global_iteration_cap_applies_to_every_agent(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_handler(
        lambda r: Reply(
            tool_calls=[ToolCallSpec("calculator", {"expression": f"{len(r.messages)} + 1"})]
        )
    )
    assert ai.kill_switch.limits.max_iterations is None  # by default each agent's own governs
    ai.kill_switch.limits.max_iterations = 10
    result = await ai.create_agent("long", tools=["calculator"], max_iterations=50).run("go")
    assert result.iterations == 10
    assert "kill switch limit: max_iterations (10) reached" in result.error


async def test_an_agents_own_max_iterations_governs_by_default(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_handler(
        lambda r: Reply(
            tool_calls=[ToolCallSpec("calculator", {"expression": f"{len(r.messages)} + 1"})]
        )
    )
    result = await ai.create_agent("long", tools=["calculator"], max_iterations=12).run("go")
    assert result.iterations == 12 and not result.success
    assert "max_iterations" in result.error


async def test_kill_switch_max_seconds_bounds_a_slow_call(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.enqueue(Reply(text="too late", latency=5))
    no_limits(ai).max_seconds = 0.3
    started = asyncio.get_running_loop().time()
    result = await asyncio.wait_for(ai.create_agent("slow").run("hurry"), timeout=4)
    assert asyncio.get_running_loop().time() - started < 2
    assert not result.success and "max_seconds (0.3 s) reached" in result.error
