"""``AgentHost``: the few things an agent needs from the object it runs on.

Why a Protocol and not ``Kite``: the facade (``kite_lab.kite``) sits above the agents and
builds them; if the agents named ``Kite`` (even for type checking only) the two would
import each other. They name this instead, and a ``Kite`` satisfies it structurally, as
would a test double or a service's own host. The list is what agents actually touch:
the model call (through the pipeline), the kill switch, the memories, the event bus, the
tools created on the host and the settings they read (``kite_log_prompts`` and the secret
values to scrub from messages). Looking agents up by name needs one more thing, the
host's named agents: that is ``agents.lookup.AgentDirectory``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kite_lab.agents.tools import ToolRegistry
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus
    from kite_lab.core.types import Completion
    from kite_lab.memory.sessions import SessionStore
    from kite_lab.memory.vector import VectorMemory
    from kite_lab.safety.kill_switch import KillSwitch

__all__ = ["AgentHost"]


class AgentHost(Protocol):
    """What an agent uses from its host (a ``Kite`` is one)."""

    @property
    def event_bus(self) -> EventBus:
        """Where agents emit agent:*, tool:* events (llm:* come from the pipeline)."""

    @property
    def settings(self) -> KiteSettings:
        """Read for ``kite_log_prompts`` and ``secret_values()`` (scrubbed from errors)."""

    @property
    def kill_switch(self) -> KillSwitch:
        """Checked before tools run; its ``limits`` bound every run."""

    @property
    def session_memory(self) -> SessionStore:
        """Conversation history for runs with a ``session_id``."""

    @property
    def vector_memory(self) -> VectorMemory:
        """Searched for ``knowledge=True`` and by the ``search_memory`` tool."""

    @property
    def tools(self) -> ToolRegistry:
        """Tools created on the host, found by name before the built-ins."""

    async def agenerate(
        self, prompt: str | None = None, *, cache: bool | None = None, **kwargs: Any
    ) -> Completion:
        """One model call through the call pipeline (kill switch, breaker, cost, events)."""
