"""The ``Kite`` methods for tools and agents, mixed into the facade.

Why a mixin: the facade (``kite.py``) keeps settings, components and the model calls; what
creates tools and agents on it lives here, one concept per module, like the batch, eval,
structured and recording methods. The methods name ``AgentsHost``, not ``Kite``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, overload

from kite_lab.core.runner import run_sync

if TYPE_CHECKING:
    from kite_lab.agents.base import Agent
    from kite_lab.agents.lookup import AgentDirectory
    from kite_lab.agents.tools import Tool, ToolRegistry
    from kite_lab.core.types import RunResult
    from kite_lab.observability.tracing import Tracer

    class AgentsHost(AgentDirectory, Protocol):
        """What these methods use of the facade: an agents' host keeping them by name."""

        @property
        def agents(self) -> dict[str, Agent]: ...

        def _prepare_calls(self, model: str | None) -> None: ...


__all__ = ["AgentMethods"]


class AgentMethods:
    """``ai.tools``, ``ai.create_tool``, ``@ai.tool``, ``ai.create_agent``, ``ai.process``."""

    _tool_registry: ToolRegistry | None = None

    @property
    def tools(self) -> ToolRegistry:
        """The tools created on this Kite (``ai.create_tool`` / ``@ai.tool``)."""
        if self._tool_registry is None:
            from kite_lab.agents.tools import ToolRegistry

            self._tool_registry = ToolRegistry()
        return self._tool_registry

    def create_tool(
        self,
        name: str,
        func: Callable[..., Any],
        description: str | None = None,
        *,
        run_in_thread: bool | None = None,
        timeout: float | None = None,
    ) -> Tool:
        """A tool whose JSON schema comes from ``func``'s type hints and docstring.

        Options: ``run_in_thread`` (sync functions), ``timeout`` (seconds).
        """
        return self.tools.create(
            name, func, description, run_in_thread=run_in_thread, timeout=timeout
        )

    @overload
    def tool(self, func: Callable[..., Any], /) -> Tool: ...

    @overload
    def tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        run_in_thread: bool | None = None,
        timeout: float | None = None,
    ) -> Callable[[Callable[..., Any]], Tool]: ...

    def tool(
        self,
        func: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        run_in_thread: bool | None = None,
        timeout: float | None = None,
    ) -> Tool | Callable[[Callable[..., Any]], Tool]:
        """Decorator form of ``create_tool``: ``@ai.tool`` or ``@ai.tool(name=...)``."""

        def register(f: Callable[..., Any]) -> Tool:
            return self.create_tool(
                name or f.__name__, f, description, run_in_thread=run_in_thread, timeout=timeout
            )

        return register(func) if func is not None else register

    def create_agent(self: AgentsHost, name: str, system_prompt: str = "",
                     **options: Any) -> Agent:
        """An agent (types: base, react, plan_execute); see ``kite_lab.agents``."""
        from kite_lab.agents.factory import create_agent

        agent = create_agent(self, name, system_prompt, **options)
        self.agents[name] = agent
        self._prepare_calls(agent.model)
        return agent

    async def aprocess(self: AgentsHost, tasks: Iterable[Any],
                       concurrency: int = 10) -> list[RunResult]:
        from kite_lab.agents.batch import process

        return await process(self, tasks, concurrency=concurrency)

    def process(self: AgentsHost, tasks: Iterable[Any],
                concurrency: int = 10) -> list[RunResult]:
        """Run many agent tasks concurrently, at most ``concurrency`` at a time."""
        return run_sync(AgentMethods.aprocess(self, tasks, concurrency))

    def enable_tracing(self: AgentsHost, path: str | Path) -> Tracer:
        """Write every event as a JSON line to ``path`` (secrets redacted)."""
        from kite_lab.observability.tracing import enable_tracing

        return enable_tracing(self.event_bus, path, secrets=lambda: self.settings.secret_values())
