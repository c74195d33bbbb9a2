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

Agents run on an ``AgentHost`` (``agents.host``; a ``Kite`` is one). Names become tools,
agents and alias targets through ``agents.lookup`` only (``resolve_tool``,
``resolve_tools``, ``resolve_agent``, ``resolve_alias``): the notebook, exported scripts
and ``create_agent`` share those rules.
"""

from __future__ import annotations

from .base import Agent
from .batch import process
from .builtin_tools import BUILTIN_TOOLS, calculate, current_datetime, memory_search_tool
from .factory import AGENT_TYPES, create_agent
from .guard import GuardOutcome, ToolGuard
from .host import AgentHost
from .lookup import AgentDirectory, resolve_agent, resolve_alias, resolve_tool, resolve_tools
from .plan_execute import PlanExecuteAgent, parse_plan
from .react import ReActAgent
from .run_state import RunState
from .tools import Tool, ToolArgumentsError, ToolRegistry, build_tool, serialize_result

__all__ = [
    "AGENT_TYPES",
    "BUILTIN_TOOLS",
    "Agent",
    "AgentDirectory",
    "AgentHost",
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
    "resolve_agent",
    "resolve_alias",
    "resolve_tool",
    "resolve_tools",
    "serialize_result",
]
