"""The ``Kite`` methods for typed answers and MCP tools, mixed into the facade.

Why a mixin: the facade stays one small module while each capability keeps its public
methods next to its implementation; the methods name a host Protocol, not ``Kite``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

from kite_lab.core.runner import run_sync

if TYPE_CHECKING:
    from kite_lab.core.types import Completion

    from .mcp import MCPToolset

__all__ = ["StructuredHost", "StructuredMethods"]

T = TypeVar("T")


class StructuredHost(Protocol):
    """What these methods use of the facade."""

    async def agenerate(
        self, prompt: str | None = None, *, cache: bool | None = None, **kwargs: Any
    ) -> Completion: ...

    @property
    def tools(self) -> Any: ...

    #: closed with the facade (``aclose`` closes every component that has ``aclose``)
    _components: dict[str, object]


class StructuredMethods:
    """``ai.extract`` / ``ai.aextract`` / ``ai.mcp_tools``."""

    @overload
    async def aextract(
        self, prompt: str | None, schema: type[T], **kwargs: Any
    ) -> T: ...

    @overload
    async def aextract(
        self, prompt: str | None, schema: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]: ...

    @overload
    async def aextract(self, prompt: str | None, schema: Any, **kwargs: Any) -> Any: ...

    async def aextract(self, prompt: str | None, schema: Any, **kwargs: Any) -> Any:
        """The answer to ``prompt`` as a validated ``schema`` instance (a dict for a
        JSON-schema dict); one repair round, then ``OutputValidationError``.

        Takes what ``ai.generate`` takes (``model=``, ``messages=``, ``images=``, ...).
        """
        host: StructuredHost = self  # type: ignore[assignment]
        completion = await host.agenerate(prompt, schema=schema, **kwargs)
        return completion.parsed

    @overload
    def extract(self, prompt: str | None, schema: type[T], **kwargs: Any) -> T: ...

    @overload
    def extract(
        self, prompt: str | None, schema: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]: ...

    @overload
    def extract(self, prompt: str | None, schema: Any, **kwargs: Any) -> Any: ...

    def extract(self, prompt: str | None, schema: Any, **kwargs: Any) -> Any:
        """``ai.extract("Ada, 36, London", Person)`` -> ``Person(name="Ada", ...)``."""
        return run_sync(self.aextract(prompt, schema, **kwargs))

    # -- MCP -----------------------------------------------------------------------------
    async def amcp_tools(
        self,
        command: Sequence[str] | None = None,
        *,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        startup_timeout: float = 20.0,
        allow: Sequence[str] | None = None,
        prefix: str = "",
    ) -> MCPToolset:
        """Connect to an MCP server and return its tools (see ``mcp_tools``)."""
        from .mcp import connect

        host: StructuredHost = self  # type: ignore[assignment]
        toolset = await connect(
            host.tools,
            command=command,
            url=url,
            env=env,
            headers=headers,
            timeout=timeout,
            startup_timeout=startup_timeout,
            allow=allow,
            prefix=prefix,
        )
        for key, value in list(host._components.items()):  # forget closed sessions
            if key.startswith("mcp:") and getattr(value, "closed", False):
                del host._components[key]
        host._components[f"mcp:{id(toolset)}"] = toolset
        return toolset

    def mcp_tools(
        self,
        command: Sequence[str] | None = None,
        *,
        url: str | None = None,
        env: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        startup_timeout: float = 20.0,
        allow: Sequence[str] | None = None,
        prefix: str = "",
    ) -> MCPToolset:
        """The tools of an MCP server, as kite tools for ``create_agent(tools=...)``.

        ``command=["python", "server.py"]`` starts a stdio server; ``url=...`` connects
        to a streamable-HTTP one. ``allow`` keeps only the named tools; ``timeout`` bounds
        each call; ``prefix`` goes before each tool's name (two servers, one name).
        The session closes with ``ai.close()`` or ``with ai.mcp_tools(...)``.
        Needs ``pip install 'kite-lab[mcp]'``.
        """
        return run_sync(
            self.amcp_tools(
                command,
                url=url,
                env=env,
                headers=headers,
                timeout=timeout,
                startup_timeout=startup_timeout,
                allow=allow,
                prefix=prefix,
            )
        )
