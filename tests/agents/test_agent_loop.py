"""The base tool-calling loop against the fake server, in both wire formats: multi-step
tool use, parallel calls, bad calls fed back to the model, limits and accounting."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from kite_lab import Kite
from kite_lab.providers.pricing import cost_usd
from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec

WEATHER = {"Paris": "21C sunny", "Rome": "25C cloudy"}


def weather_tool(ai: Kite) -> None:
    @ai.tool
    def get_weather(city: str) -> str:
        """Current weather in a city.

        Args:
            city: the city name.
        """
        return WEATHER[city]


def tool_results(request: Any, wire: str) -> list[tuple[str, str]]:
    """(call id, content) of every tool result a request sent, in either wire format."""
    out = []
    for message in request.messages:
        if wire == "openai" and message["role"] == "tool":
            out.append((message["tool_call_id"], message["content"]))
        if wire == "anthropic" and isinstance(message["content"], list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    content = block["content"]
                    if isinstance(content, list):
                        content = " ".join(part.get("text", "") for part in content)
                    out.append((block["tool_use_id"], content))
    return out


def tool_names(request: Any, wire: str) -> list[str]:
    if wire == "openai":
        return [t["function"]["name"] for t in request.tools]
    return [t["name"] for t in request.tools]


async def test_multi_step_tool_use_to_a_final_answer(
    ai: Kite, fake_llm: FakeLLMServer, wire: str
) -> None:
    weather_tool(ai)
    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"}, id="call_1")]),
        Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "21 * 2"}, id="call_2")]),
        Reply(text="Paris is 21C; doubled that is 42."),
    )
    agent = ai.create_agent(
        "weather", "You answer weather questions.", tools=["get_weather", "calculator"]
    )
    result = await agent.run("How warm is Paris, doubled?")

    assert result.success, result.error
    assert result.response == "Paris is 21C; doubled that is 42."
    assert result.iterations == 3 and result.error is None
    assert [(c.name, c.arguments, c.result, c.ok) for c in result.tool_calls] == [
        ("get_weather", {"city": "Paris"}, "21C sunny", True),
        ("calculator", {"expression": "21 * 2"}, 42, True),
    ]
    assert all(c.latency_s >= 0 for c in result.tool_calls)
    # dict-compatible
    assert result["response"] == result.response and result["tool_calls"][1]["result"] == 42
    assert json.loads(json.dumps(result.to_dict()))["success"] is True

    requests = fake_llm.requests
    assert len(requests) == 3
    assert sorted(tool_names(requests[0], wire)) == ["calculator", "get_weather"]
    assert tool_results(requests[1], wire) == [("call_1", "21C sunny")]
    assert tool_results(requests[2], wire) == [("call_1", "21C sunny"), ("call_2", "42")]
    assert [s["kind"] for s in result.steps] == ["act", "act", "act"]
    assert agent.call_count == 1 and agent.success_count == 1


async def test_several_tool_calls_in_one_turn_run_concurrently(
    ai: Kite, fake_llm: FakeLLMServer, wire: str
) -> None:
    barrier = asyncio.Barrier(3)  # passes only if all three calls are in flight together

    @ai.tool
    async def fetch(item: int) -> int:
        """Fetch an item."""
        async with asyncio.timeout(5):
            await barrier.wait()
        return item * 10

    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("fetch", {"item": i}, id=f"call_{i}") for i in range(3)]),
        Reply(text="0, 10 and 20"),
    )
    result = await ai.create_agent("par", tools=["fetch"]).run("fetch 0, 1, 2")
    assert result.success, result.error
    assert [c.result for c in result.tool_calls] == [0, 10, 20]
    assert all(c.ok for c in result.tool_calls)
    # the results go back in one turn, each answering its own call id
    assert tool_results(fake_llm.requests[1], wire) == [
        ("call_0", "0"),
        ("call_1", "10"),
        ("call_2", "20"),
    ]


async def test_invalid_arguments_are_fed_back_and_corrected(
    ai: Kite, fake_llm: FakeLLMServer, wire: str
) -> None:
    weather_tool(ai)
    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("get_weather", {"town": "Paris"}, id="call_a")]),
        Reply(tool_calls=[ToolCallSpec("get_weather", '{"city": ', id="call_b")]),
        Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"}, id="call_c")]),
        Reply(text="21C"),
    )
    agent = ai.create_agent("fixer", tools=["get_weather"])
    result = await agent.run("weather in Paris?")
    assert result.success and result.response == "21C"
    first, second, third = result.tool_calls
    assert not first.ok and "missing required argument 'city'" in first.error
    assert "unexpected argument 'town'" in first.error
    assert not second.ok and "not a JSON object" in second.error
    assert third.ok and third.result == "21C sunny"
    fed_back = dict(tool_results(fake_llm.requests[1], wire))
    assert fed_back["call_a"].startswith("ERROR: invalid arguments for tool 'get_weather'")
    assert "not a JSON object" in dict(tool_results(fake_llm.requests[2], wire))["call_b"]
    assert agent.get_metrics()["tool_outcomes"] == {"invalid_arguments": 2, "ok": 1}


async def test_unknown_tool_and_a_tool_that_raises(
    ai: Kite, fake_llm: FakeLLMServer, wire: str
) -> None:
    @ai.tool
    def divide(a: float, b: float) -> float:
        """Divide a by b."""
        return a / b

    fake_llm.enqueue(
        Reply(
            tool_calls=[
                ToolCallSpec("teleport", {"to": "Mars"}, id="call_u"),
                ToolCallSpec("divide", {"a": 1, "b": 0}, id="call_d"),
            ]
        ),
        Reply(text="I cannot do that."),
    )
    agent = ai.create_agent("careful", tools=["divide"])
    result = await agent.run("go to Mars and divide by zero")
    assert result.success and result.response == "I cannot do that."
    unknown, raised = result.tool_calls
    assert not unknown.ok and "no tool named 'teleport'; available tools: divide" in unknown.error
    assert not raised.ok and "ZeroDivisionError" in raised.error
    fed_back = dict(tool_results(fake_llm.requests[1], wire))
    assert "no tool named 'teleport'" in fed_back["call_u"]
    assert "ZeroDivisionError" in fed_back["call_d"]
    assert agent.get_metrics()["tool_outcomes"] == {"unknown_tool": 1, "tool_error": 1}


async def test_a_tool_not_on_the_whitelist_is_refused(
    ai: Kite, fake_llm: FakeLLMServer, wire: str
) -> None:
    weather_tool(ai)
    deleted: list[str] = []

    @ai.tool
    def delete_everything(confirm: bool) -> str:
        """Delete all data."""
        deleted.append("yes")
        return "deleted"

    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("delete_everything", {"confirm": True}, id="call_x")]),
        Reply(text="ok, I will not."),
    )
    agent = ai.create_agent("safe", tools=["get_weather"])
    result = await agent.run("delete everything")
    assert deleted == []  # never ran, although it exists on the Kite
    (refused,) = result.tool_calls
    assert not refused.ok and "not available to this agent" in refused.error
    assert tool_names(fake_llm.requests[0], wire) == ["get_weather"]  # never offered either
    assert agent.get_metrics()["tool_outcomes"] == {"refused": 1}
    # a built-in the agent was not given is refused the same way
    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "1+1"})]), Reply(text="no")
    )
    result = await agent.run("compute")
    assert "not available to this agent" in result.tool_calls[0].error


async def test_max_iterations_reached(ai: Kite, fake_llm: FakeLLMServer) -> None:
    weather_tool(ai)
    for city in ("Paris", "Rome", "Paris"):
        fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", {"city": city})]))
    agent = ai.create_agent("loopy", tools=["get_weather"], max_iterations=2)
    result = await agent.run("keep checking")
    assert not result.success
    assert result.iterations == 2 and len(fake_llm.requests) == 2
    assert result.error.startswith("AgentLimitReached: max_iterations=2 reached")
    assert len(result.tool_calls) == 2
    assert agent.call_count == 1 and agent.success_count == 0 and agent.failure_count == 1


async def test_token_and_cost_totals_are_the_sum_over_the_calls(
    ai: Kite, fake_llm: FakeLLMServer, wire: str
) -> None:
    weather_tool(ai)
    fake_llm.enqueue(
        Reply(
            tool_calls=[ToolCallSpec("get_weather", {"city": "Rome"})],
            prompt_tokens=120,
            completion_tokens=15,
        ),
        Reply(
            tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})],
            prompt_tokens=160,
            completion_tokens=17,
        ),
        Reply(text="Rome is warmer.", prompt_tokens=210, completion_tokens=5),
    )
    responses: list[dict[str, Any]] = []
    ai.event_bus.subscribe("llm:response", lambda e: responses.append(e.data))
    agent = ai.create_agent("sums", tools=["get_weather"])
    result = await agent.run("Rome or Paris?")
    assert result.success
    assert (result.prompt_tokens, result.completion_tokens) == (490, 37)
    assert result.total_tokens == result["total_tokens"] == 527
    assert sum(r["prompt_tokens"] for r in responses) == 490
    provider, model = ai.resolve()
    expected = sum(
        cost_usd(provider, model, _usage(p, c)) for p, c in ((120, 15), (160, 17), (210, 5))
    )
    assert math.isclose(result.cost_usd, expected, rel_tol=1e-9) and result.cost_usd > 0
    assert math.isclose(result.cost_usd, sum(r["cost_usd"] for r in responses), rel_tol=1e-9)
    assert [s["prompt_tokens"] for s in result.steps] == [120, 160, 210]
    metrics = agent.get_metrics()
    assert metrics["total_tokens"] == 527 and math.isclose(metrics["cost_usd"], expected)


def _usage(prompt: int, completion: int) -> Any:
    from kite_lab.core.types import Usage

    return Usage(prompt, completion)


async def test_unpriced_model_makes_the_cost_unknown_not_zero(
    ai: Kite, fake_llm: FakeLLMServer, wire: str
) -> None:
    fake_llm.enqueue(Reply(text="hi"))
    agent = ai.create_agent("x", model=f"{wire}/some-unpriced-model")
    result = await agent.run("hello")
    assert result.success and result.cost_usd is None
    assert fake_llm.requests[0].model == "some-unpriced-model"


async def test_context_and_system_prompt_reach_the_model(
    ai: Kite, fake_llm: FakeLLMServer, wire: str
) -> None:
    fake_llm.enqueue(Reply(text="Bonjour Ada"))
    agent = ai.create_agent("greeter", "Greet the user by name.")
    result = await agent.run("Say hello", context={"user": "Ada", "language": "fr"})
    assert result.success
    request = fake_llm.requests[0]
    system = request.json["system"] if wire == "anthropic" else request.messages[0]["content"]
    system = system if isinstance(system, str) else " ".join(b["text"] for b in system)
    assert "Greet the user by name." in system and "user: Ada" in system
    assert request.last_user_text == "Say hello"


async def test_empty_tool_call_ids_are_filled_in(ai: Kite, fake_llm: FakeLLMServer) -> None:
    from kite_lab.agents.base import _with_id
    from kite_lab.core.types import ToolCall

    call = _with_id(ToolCall("", "x", {}))
    assert call.id.startswith("call_") and len(call.id) > 10


def test_run_sync_from_plain_code(ai: Kite, fake_llm: FakeLLMServer) -> None:
    fake_llm.enqueue(Reply(text="sync works"))
    agent = ai.create_agent("sync")
    result = agent.run_sync("hello")
    assert result.success and str(result) == "sync works"


async def test_bad_run_input_raises_before_anything_starts(ai: Kite) -> None:
    from kite_lab import KiteError

    agent = ai.create_agent("strict")
    with pytest.raises(TypeError, match="user_input must be str"):
        await agent.run(42)  # type: ignore[arg-type]
    with pytest.raises(KiteError, match="user_input is empty"):
        await agent.run("   ")
    assert agent.call_count == 0


async def test_run_sync_inside_a_running_loop_like_jupyter(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.enqueue(Reply(text="from a notebook cell"))
    agent = ai.create_agent("cell")
    assert agent.run_sync("hi").response == "from a notebook cell"  # this loop is running


async def test_verbose_prints_each_step(
    ai: Kite, fake_llm: FakeLLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "2 * 21"})]), Reply(text="42")
    )
    await ai.create_agent("loud", tools=["calculator"], verbose=True).run("2 * 21?")
    out = capsys.readouterr().out
    assert "[loud] start: 2 * 21?" in out
    assert "[loud] step 1 (act): calls calculator(expression='2 * 21')" in out
    assert "[loud]   calculator -> 42" in out and "[loud] done in 2 step(s)" in out
