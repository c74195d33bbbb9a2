"""Names to objects: tools, agents and aliases, resolved the same way everywhere.

Why one module: ``create_agent(tools=[...])``, a ``%%kite --tools`` cell, an exported
script and ``ai.process`` all turn names into objects. When each did it its own way, a
name that worked in a notebook could fail in the exported script. These functions are
the only lookup rules; callers add their own prefix to the message ("%%kite: ",
"task 3: ") when they re-raise.

Rules:
- a tool name is, in order: a tool created on the host (``ai.tools``), a built-in
  (calculator, current_datetime, search_memory), then ``namespace[name]`` (the notebook's
  or script's variables) if it is a Tool or a function;
- an agent name is ``namespace[name]`` if it holds an Agent, else ``host.agents[name]``;
- an alias may name another alias; a cycle is an error, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any, Protocol

from kite_lab.core.errors import InvalidInput, ToolError

from .base import Agent
from .builtin_tools import BUILTIN_TOOLS, builtin_tool
from .guard import check_unique
from .host import AgentHost
from .tools import Tool, build_tool

__all__ = [
    "AgentDirectory",
    "ToolLike",
    "known_tool_names",
    "resolve_agent",
    "resolve_alias",
    "resolve_tool",
    "resolve_tools",
]

#: what ``tools=`` accepts: a Tool, the name of one, or a plain (annotated) function
ToolLike = Tool | str | Callable[..., Any]


class AgentDirectory(AgentHost, Protocol):
    """A host that also keeps agents by name (a Kite's ``ai.agents``)."""

    @property
    def agents(self) -> Mapping[str, Agent]: ...


def resolve_tool(host: AgentHost, name: str, namespace: Mapping[str, Any] | None = None) -> Tool:
    """The tool called ``name``: the host's, a built-in, or a Tool / function in ``namespace``."""
    if not isinstance(name, str):
        raise TypeError(f"a tool name must be a str, not {type(name).__name__}")
    registry = host.tools
    if name in registry:
        return registry[name]
    if name in BUILTIN_TOOLS:
        return builtin_tool(host, name)
    value = namespace.get(name) if namespace is not None else None
    if isinstance(value, Tool):
        return value
    if value is not None and callable(value):
        return build_tool(name, value)
    created = ", ".join(registry) or "none"
    raise ToolError(
        f"no tool named {name!r}; create it with ai.create_tool({name!r}, func) or use a "
        f"built-in: {', '.join(BUILTIN_TOOLS)} (tools created: {created})"
    )


def resolve_tools(
    host: AgentHost,
    tools: Iterable[ToolLike] | ToolLike | None,
    namespace: Mapping[str, Any] | None = None,
) -> list[Tool]:
    """Tool objects for ``tools``: Tools, names (``resolve_tool``) and plain functions.

    Two different tools with one name is a ToolError (the model could not tell them apart).
    """
    if tools is None:
        return []
    items: Iterable[ToolLike] = (
        [tools] if isinstance(tools, str | Tool) or callable(tools) else tools
    )
    resolved: list[Tool] = []
    for item in items:
        if isinstance(item, Tool):
            resolved.append(item)
        elif isinstance(item, str):
            resolved.append(resolve_tool(host, item, namespace))
        elif callable(item):
            name = getattr(item, "__name__", None)
            if not name or name == "<lambda>":
                raise ToolError(
                    f"cannot name the tool {item!r}; use ai.create_tool('name', func) for lambdas"
                )
            resolved.append(build_tool(name, item))
        else:
            raise TypeError(
                f"tools must hold Tool objects, tool names or functions, not {type(item).__name__}"
            )
    return list(check_unique(resolved).values())


def known_tool_names(host: AgentHost) -> Container[str]:
    """Every tool name the host knows *at lookup time* (its tools and the built-ins)."""
    return _KnownTools(host)


class _KnownTools:
    def __init__(self, host: AgentHost) -> None:
        self._host = host

    def __contains__(self, name: object) -> bool:
        return name in BUILTIN_TOOLS or name in self._host.tools


def resolve_agent(
    host: AgentDirectory, target: str | Agent, namespace: Mapping[str, Any] | None = None
) -> Agent:
    """The agent ``target`` names: an Agent passes through; a name is looked up in
    ``namespace`` (variables holding an Agent), then in ``host.agents``."""
    if isinstance(target, Agent):
        return target
    if not isinstance(target, str):
        raise InvalidInput(f"agent must be an Agent or an agent name, got {type(target).__name__}")
    candidate = namespace.get(target) if namespace is not None else None
    if isinstance(candidate, Agent):
        return candidate
    agents = host.agents
    agent = agents.get(target)
    if agent is not None:
        return agent
    visible = {k for k, v in (namespace or {}).items() if isinstance(v, Agent)}
    names = ", ".join(sorted({*agents, *visible})) or "none yet (use ai.create_agent)"
    raise InvalidInput(f"no agent named {target!r}; agents: {names}")


def resolve_alias(target: str | None, aliases: Mapping[str, str]) -> str | None:
    """Follow ``aliases`` from ``target`` (an alias may name another alias).

    A cycle is InvalidInput naming it (``alias cycle: a -> b -> a``).
    """
    seen: list[str] = []
    while target is not None and target in aliases:
        if target in seen:
            raise InvalidInput(f"alias cycle: {' -> '.join([*seen, target])}")
        seen.append(target)
        target = aliases[target]
    return target
