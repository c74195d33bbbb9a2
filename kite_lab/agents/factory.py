"""``create_agent``: turn the options a user types into a configured Agent, or a clear error.

Why a factory rather than calling the classes: ``tools=`` accepts what is convenient in a
notebook (Tool objects, names of tools created on the host or built in, plain functions;
``agents.lookup.resolve_tools`` resolves them), and every option is checked here, before
the first run, so a typo in ``agent_type`` or a ``max_iterations=0`` fails at creation
with a message that lists what is allowed.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput

from .base import Agent
from .lookup import ToolLike, known_tool_names, resolve_tools
from .plan_execute import PlanExecuteAgent
from .react import ReActAgent

if TYPE_CHECKING:
    from .host import AgentHost

__all__ = ["AGENT_TYPES", "create_agent"]

AGENT_TYPES: dict[str, type[Agent]] = {
    "base": Agent,
    "react": ReActAgent,
    "plan_execute": PlanExecuteAgent,
}


def create_agent(
    kite: AgentHost,
    name: str,
    system_prompt: str = "",
    *,
    tools: Iterable[ToolLike] | ToolLike | None = None,
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
        known_tools=known_tool_names(kite),
        **options,
    )


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
