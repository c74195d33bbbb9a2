"""ReAct and plan-and-execute against the fake server, and create_agent's bad-input errors."""

from __future__ import annotations

from typing import Any

import pytest

from kite_lab import Kite, KiteError, ToolError
from kite_lab.agents import AGENT_TYPES, PlanExecuteAgent, ReActAgent, parse_plan
from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec

WEATHER = {"Paris": "21C sunny", "Rome": "25C cloudy"}


def add_weather(ai: Kite) -> None:
    @ai.tool
    def get_weather(city: str) -> str:
        """Current weather in a city."""
        return WEATHER[city]  # KeyError for unknown cities


def system_text(request: Any) -> str:
    if request.wire == "anthropic":
        system = request.json.get("system") or ""
        return system if isinstance(system, str) else " ".join(b["text"] for b in system)
    return " ".join(m["content"] for m in request.messages if m["role"] == "system")


async def test_react_records_thoughts_actions_and_observations(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    add_weather(ai)
    fake_llm.enqueue(
        Reply(
            text="Thought: I need the current weather in Paris.",
            tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"})],
        ),
        Reply(text="Thought: now I know.\nFinal Answer: It is 21C and sunny in Paris."),
    )
    agent = ai.create_agent("reacts", "Be precise.", tools=["get_weather"], agent_type="react")
    assert isinstance(agent, ReActAgent)
    result = await agent.run("Weather in Paris?")
    assert result.success and result.response == "It is 21C and sunny in Paris."
    act, answer = result.steps
    assert act["kind"] == "act" and act["thought"] == "I need the current weather in Paris."
    assert act["observations"] == ["21C sunny"]
    assert answer["kind"] == "reason" and answer["thought"].startswith("now I know")
    system = system_text(fake_llm.requests[0])
    assert "Be precise." in system and "Final Answer" in system and "Thought" in system


async def test_plan_execute_replans_after_a_failed_step(ai: Kite, fake_llm: FakeLLMServer) -> None:
    add_weather(ai)
    fake_llm.enqueue(
        Reply(text='{"steps": ["look up the weather in Atlantis", "compare it with Rome"]}'),
        Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Atlantis"})]),
        Reply(text="STEP FAILED: there is no weather data for Atlantis"),
        Reply(
            text='Here is the new plan:\n```json\n{"steps": ["look up the weather in Rome"]}\n```'
        ),
        Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Rome"})]),
        Reply(text="Rome: 25C cloudy"),
        Reply(text="Atlantis has no data; Rome is 25C and cloudy."),
    )
    plans: list[dict[str, Any]] = []
    ai.event_bus.subscribe("agent:plan", lambda e: plans.append(e.data))
    agent = ai.create_agent("planner", tools=["get_weather"], agent_type="plan_execute")
    assert isinstance(agent, PlanExecuteAgent)
    result = await agent.run("Compare the weather in Atlantis and Rome")

    assert result.success, result.error
    assert result.response == "Atlantis has no data; Rome is 25C and cloudy."
    assert [s["kind"] for s in result.steps] == [
        "plan",
        "execute",
        "execute",
        "replan",
        "execute",
        "execute",
        "synthesize",
    ]
    assert result.steps[2]["step_failed"] == "there is no weather data for Atlantis"
    assert result.steps[3]["plan"] == ["look up the weather in Rome"]
    assert [p["replan"] for p in plans] == [0, 1]
    assert [(c.name, c.ok) for c in result.tool_calls] == [
        ("get_weather", False),
        ("get_weather", True),
    ]
    assert result.iterations == 7 == len(fake_llm.requests)

    requests = fake_llm.requests
    assert requests[0].tools == [] and requests[3].tools == []  # planning offers no tools
    assert requests[1].tools and requests[4].tools
    replan_prompt = requests[3].last_user_text
    assert "This step failed: look up the weather in Atlantis" in replan_prompt
    assert "no weather data for Atlantis" in replan_prompt
    assert "Step 1: look up the weather in Rome" in requests[4].last_user_text
    assert "Rome: 25C cloudy" in system_text(requests[6])


async def test_plan_execute_gives_up_after_max_replans(ai: Kite, fake_llm: FakeLLMServer) -> None:
    fake_llm.enqueue(
        Reply(text='["do the impossible"]'),
        Reply(text="STEP FAILED: impossible"),
    )
    agent = ai.create_agent("stubborn", agent_type="plan_execute", max_replans=0)
    result = await agent.run("do it")
    assert not result.success
    assert result.error.startswith("AgentError: step 'do the impossible' failed after 0 re-plan(s)")


async def test_plan_repair_then_single_step_fallback(ai: Kite, fake_llm: FakeLLMServer) -> None:
    fake_llm.enqueue(
        Reply(text="Sure! I would start by thinking hard."),  # not a plan
        Reply(text="Still no plan, sorry."),  # the repair fails too
        Reply(text="42"),  # the whole task as one step
        Reply(text="The answer is 42."),
    )
    agent = ai.create_agent("vague", agent_type="plan_execute")
    result = await agent.run("What is six times seven?")
    assert result.success and result.response == "The answer is 42."
    assert [s["kind"] for s in result.steps] == ["plan", "plan_repair", "execute", "synthesize"]
    assert "not a valid plan" in fake_llm.requests[1].last_user_text
    assert "Step 1: What is six times seven?" in fake_llm.requests[2].last_user_text


async def test_plan_execute_respects_max_iterations(ai: Kite, fake_llm: FakeLLMServer) -> None:
    fake_llm.enqueue(Reply(text='{"steps": ["a", "b", "c"]}'), "A", "B", "C", "done")
    agent = ai.create_agent("short", agent_type="plan_execute", max_iterations=3)
    result = await agent.run("three steps")
    assert not result.success and result.iterations == 3
    assert "max_iterations=3 reached" in result.error


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ('{"steps": ["a", "b"]}', ["a", "b"]),
        ('["a", "b"]', ["a", "b"]),
        ('Plan: {"plan": [{"step": "a"}, {"description": "b"}]} done', ["a", "b"]),
        ('```json\n{"steps": ["x"]}\n```', ["x"]),
        ("1. first\n2) second\n- third", ["first", "second", "third"]),
        ('{"steps": []}', []),
        ("no plan here", None),
        ('{"answer": 42}', None),
    ],
)
def test_parse_plan(text: str, steps: list[str] | None) -> None:
    assert parse_plan(text) == steps


# -- create_agent: bad input ----------------------------------------------------------


@pytest.fixture
def offline() -> Kite:
    return Kite(config={"llm_provider": "openai", "openai_api_key": "sk-test-offline-0000"})


def test_unknown_agent_type_lists_the_types(offline: Kite) -> None:
    with pytest.raises(
        KiteError, match="unknown agent_type 'planner'; choose one of: base, react, plan_execute"
    ):
        offline.create_agent("a", agent_type="planner")
    with pytest.raises(ValueError):  # InvalidInput is a ValueError too
        offline.create_agent("a", agent_type="planner")
    assert set(AGENT_TYPES) == {"base", "react", "plan_execute"}


@pytest.mark.parametrize("value", [0, -3])
def test_max_iterations_below_one(offline: Kite, value: int) -> None:
    with pytest.raises(KiteError, match=f"max_iterations must be >= 1, got {value}"):
        offline.create_agent("a", max_iterations=value)


def test_other_bad_options(offline: Kite) -> None:
    with pytest.raises(TypeError, match="max_iterations must be an int"):
        offline.create_agent("a", max_iterations="5")
    with pytest.raises(TypeError, match="unknown option.*'temperatur'"):
        offline.create_agent("a", temperatur=0.2)
    with pytest.raises(TypeError, match="'max_replans'"):  # a plan_execute option on base
        offline.create_agent("a", max_replans=1)
    with pytest.raises(KiteError, match="max_replans must be an int >= 0"):
        offline.create_agent("a", agent_type="plan_execute", max_replans=-1)
    with pytest.raises(ToolError, match="no tool named 'weather'.*built-in: calculator"):
        offline.create_agent("a", tools=["weather"])
    with pytest.raises(TypeError, match="tools must hold"):
        offline.create_agent("a", tools=[42])
    with pytest.raises(KiteError, match="non-empty name"):
        offline.create_agent("")


def test_tools_accept_objects_names_and_functions(offline: Kite) -> None:
    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    tool = offline.create_tool("repeat", _repeat)
    agent = offline.create_agent("a", tools=[tool, "calculator", shout, "repeat"])
    assert [t.name for t in agent.tools] == ["repeat", "calculator", "shout"]
    assert offline.agents["a"] is agent
    with pytest.raises(ToolError, match="two different tools are named 'shout'"):
        offline.create_agent("b", tools=[shout, offline.create_tool("shout", _repeat)])


def _repeat(text: str, times: int = 2) -> str:
    """Repeat a text."""
    return text * times
