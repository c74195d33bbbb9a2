"""``create_agent``: turn the options a user types into a configured Agent, or a clear error.

Why a factory rather than calling the classes: ``tools=`` accepts what is convenient in a
notebook (Tool objects, names of tools created on the Kite or built in, plain functions),
and every option is checked here, before the first run, so a typo in ``agent_type`` or a
``max_iterations=0`` fails at creation with a message that lists what is allowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput, ToolError

from .base import Agent
from .builtin_tools import BUILTIN_TOOLS, builtin_tool
from .guard import check_unique
from .plan_execute import PlanExecuteAgent
from .react import ReActAgent
from .tools import Tool, build_tool

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = ["AGENT_TYPES", "create_agent", "resolve_tools"]

AGENT_TYPES: dict[str, type[Agent]] = {
    "base": Agent,
    "react": ReActAgent,
    "plan_execute": PlanExecuteAgent,
}


def create_agent(
    kite: Kite,
    name: str,
    system_prompt: str = "",
    *,
    tools: Iterable[Tool | str | Callable[..., Any]] | None = None,
    model: str | None = None,
    agent_type: str = "base",
    max_iterations: int = 10,
    session_id: str | None = None,
    knowledge: Any = None,
    verbose: bool = False,
    **options: Any,
) -> Agent:
    """An agent of ``agent_type`` (base, react, plan_execute) allowed to call ``tools`` only.

    Extra ``options``: ``top_k`` (knowledge chunks, 3), ``history_messages`` (session
    messages read, 20); for plan_execute also ``max_replans`` (2), ``max_plan_steps`` (6),
    ``max_step_iterations`` (5).
    """
    cls = AGENT_TYPES.get(agent_type) if isinstance(agent_type, str) else None
    if cls is None:
        raise InvalidInput(
            f"unknown agent_type {agent_type!r}; choose one of: {', '.join(AGENT_TYPES)}"
        )
    allowed = _extra_options(cls)
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(
            f"create_agent() got unknown option(s) {', '.join(map(repr, unknown))}; "
            f"options for agent_type={agent_type!r}: tools, model, max_iterations, session_id, "
            f"knowledge, verbose, {', '.join(sorted(allowed))}"
        )
    if model is not None and (not isinstance(model, str) or not model.strip()):
        raise InvalidInput(
            f"model must be a non-empty str like 'openai/gpt-4o-mini', got {model!r}"
        )
    return cls(
        kite,
        name,
        system_prompt,
        tools=resolve_tools(kite, tools),
        model=model,
        max_iterations=max_iterations,
        session_id=session_id,
        knowledge=knowledge,
        verbose=verbose,
        known_tools=_KnownTools(kite),
        **options,
    )


def resolve_tools(
    kite: Kite, tools: Iterable[Tool | str | Callable[..., Any]] | None
) -> list[Tool]:
    """Tool objects for ``tools``: Tools, names (the Kite's tools, then built-ins), functions."""
    if tools is None:
        return []
    if isinstance(tools, str | Tool) or callable(tools):
        tools = [tools]  # type: ignore[list-item]
    resolved: list[Tool] = []
    for item in tools:
        if isinstance(item, Tool):
            resolved.append(item)
        elif isinstance(item, str):
            registry = kite.tools
            resolved.append(registry[item] if item in registry else builtin_tool(kite, item))
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


class _KnownTools:
    """Every tool name the Kite knows right now (its registry and the built-ins)."""

    def __init__(self, kite: Kite) -> None:
        self._kite = kite

    def __contains__(self, name: object) -> bool:
        return name in BUILTIN_TOOLS or name in self._kite.tools


def _extra_options(cls: type[Agent]) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind == param.KEYWORD_ONLY:
                names.add(param.name)
    return names - {
        "tools",
        "model",
        "max_iterations",
        "session_id",
        "knowledge",
        "verbose",
        "known_tools",
    }
