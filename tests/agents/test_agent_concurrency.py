"""Many runs at once: 200 concurrent agent.run calls, ai.process with a bound, bad tasks."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from agents_helpers import two_step_model

from kite_lab import Kite, KiteError
from kite_lab.testing import FakeLLMServer, Reply


async def test_200_concurrent_runs_overlap(ai: Kite, fake_llm: FakeLLMServer) -> None:
    fake_llm.set_handler(two_step_model)
    fake_llm.latency = 0.1
    agent = ai.create_agent("many", tools=["calculator"])
    await agent.run("warm-up")  # connection set-up is not what this measures
    started = time.perf_counter()
    results = await asyncio.gather(*(agent.run(f"task {i}") for i in range(200)))
    elapsed = time.perf_counter() - started

    assert all(r.success for r in results), [r.error for r in results if not r.success][:3]
    assert [r.response for r in results] == [f"done: task {i}" for i in range(200)]
    assert all(r.iterations == 2 and r.tool_calls[0].result == 42 for r in results)
    # serial would take 200 runs x 2 calls x 100 ms = 40 s; concurrent runs take ~0.2 s plus
    # framework and SDK overhead on a shared CI machine
    assert elapsed < 10, f"200 concurrent runs took {elapsed:.1f} s"
    assert agent.call_count == 201 and agent.success_count == 201


async def test_process_bounds_concurrency_and_keeps_order(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    in_flight = peak = 0

    async def slow_echo(request: Any) -> Reply:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return Reply(text=f"echo {request.last_user_text}")

    fake_llm.set_handler(slow_echo)
    first = ai.create_agent("first")
    ai.create_agent("second")
    tasks: list[Any] = [(first, "a"), ("second", "b"), {"agent": "first", "input": "c"}]
    tasks += [("second", f"n{i}", {"note": i}) for i in range(9)]
    results = await ai.aprocess(tasks, concurrency=3)
    assert [r.response for r in results] == ["echo a", "echo b", "echo c"] + [
        f"echo n{i}" for i in range(9)
    ]
    assert [r.agent for r in results[:3]] == ["first", "second", "first"]
    assert 1 < peak <= 3


def test_process_sync(ai: Kite, fake_llm: FakeLLMServer) -> None:
    ai.create_agent("echo")
    results = ai.process([("echo", "x"), ("echo", "y")], concurrency=2)
    assert [r.response for r in results] == ["Echo: x", "Echo: y"]


async def test_process_bad_tasks_fail_before_any_run(ai: Kite, fake_llm: FakeLLMServer) -> None:
    ai.create_agent("known")
    bad: list[tuple[Any, str]] = [
        ([("known", "ok"), ("unknown", "x")], "task 1: no agent named 'unknown'; agents: known"),
        ([("known",)], "task 0: expected"),
        ([{"agent": "known"}], "task 0: expected keys agent, input"),
        ([{"agent": "known", "input": "x", "colour": 1}], "task 0: expected keys"),
        ([("known", "")], "task 0: input must be a non-empty str"),
        ([(42, "x")], "task 0: agent must be an Agent"),
    ]
    for tasks, message in bad:
        with pytest.raises(KiteError, match=message):
            await ai.aprocess(tasks)
    with pytest.raises(KiteError, match="concurrency must be an int >= 1"):
        await ai.aprocess([("known", "x")], concurrency=0)
    assert fake_llm.requests == []
