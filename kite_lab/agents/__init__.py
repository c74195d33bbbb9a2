"""Agents and tools: tools from type hints, guarded tool calls, and three agent loops.

    ai = Kite()

    @ai.tool
    def get_weather(city: str) -> str:
        '''Current weather in a city.'''
        ...

    agent = ai.create_agent("helper", "Be brief.", tools=["get_weather", "calculator"])
    result = await agent.run("Is it warmer in Paris or Rome?")   # a RunResult

Agent types: ``base`` (tool-calling loop), ``react`` (thought / action / observation),
``plan_execute`` (plan, execute the steps, re-plan on failure).
"""

from __future__ import annotations

from .base import Agent, RunState
from .batch import process
from .builtin_tools import BUILTIN_TOOLS, calculate, current_datetime, memory_search_tool
from .factory import AGENT_TYPES, create_agent, resolve_tools
from .guard import GuardOutcome, ToolGuard
from .plan_execute import PlanExecuteAgent, parse_plan
from .react import ReActAgent
from .tools import Tool, ToolArgumentsError, ToolRegistry, build_tool, serialize_result

__all__ = [
    "AGENT_TYPES",
    "BUILTIN_TOOLS",
    "Agent",
    "GuardOutcome",
    "PlanExecuteAgent",
    "ReActAgent",
    "RunState",
    "Tool",
    "ToolArgumentsError",
    "ToolGuard",
    "ToolRegistry",
    "build_tool",
    "calculate",
    "create_agent",
    "current_datetime",
    "memory_search_tool",
    "parse_plan",
    "process",
    "resolve_tools",
    "serialize_result",
]
