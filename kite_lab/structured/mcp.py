"""MCP servers' tools as kite tools: ``ai.mcp_tools(command=[...])`` / ``(url=...)``.

Why a session task: the ``mcp`` SDK's transports and ``ClientSession`` are anyio context
managers that must be entered and left by one task. So each server gets one long-lived
task (on the loop that connected) that opens the transport, initializes, lists the tools,
then waits to be closed. Tool calls from any loop or thread are sent to that task's loop,
so an agent running elsewhere (a test's loop, a worker) can call them.

The tools are ordinary kite tools (``SchemaTool``: name, description and JSON schema as
the server gives them), registered on the Kite's ``ai.tools`` so ``create_agent(tools=...)``
and ``%%kite --tools name`` find them. Calls go through the agent's tool guard like any
other: whitelist, ``timeout`` per call, arguments checked against the server's schema
(a mismatch goes back to the model), and a server-side error comes back as the tool's
failure, never a crash. A server that cannot start raises ``MCPServerError`` with the
tail of its stderr. The session closes with ``ai.close()``, ``toolset.close()`` or a
``with`` block; its tools leave ``ai.tools`` then.

Needs the optional ``mcp`` package (``pip install 'kite-lab[mcp]'``), imported here only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from kite_lab.core.errors import ConfigError, MCPServerError, ToolError

__all__ = ["MCPToolset", "connect"]

_BAD_NAME = re.compile(r"[^A-Za-z0-9_-]")
_STDERR_LINES = 20


def _require_mcp() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ConfigError(
            "MCP tools need the mcp package: pip install 'kite-lab[mcp]'"
        ) from None


class _Session:
    """The task holding one MCP client session open, and calls into it."""

    def __init__(self, label: str, open_transport: Any, errlog: Any) -> None:
        self.label = label
        self.loop = asyncio.get_running_loop()
        self._open_transport = open_transport
        self.errlog = errlog
        self.ready = asyncio.Event()
        self.stop = asyncio.Event()
        self.session: Any = None
        self.tools: list[Any] = []
        self.error: BaseException | None = None
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        from mcp import ClientSession

        try:
            async with contextlib.AsyncExitStack() as stack:
                streams = await stack.enter_async_context(self._open_transport(stack))
                session = await stack.enter_async_context(ClientSession(streams[0], streams[1]))
                await session.initialize()
                self.tools = await _list_tools(session)
                self.session = session
                self.ready.set()
                await self.stop.wait()
        except Exception as exc:
            if not self.ready.is_set():
                self.error = exc
        finally:
            self.session = None
            self.ready.set()

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        """Call tool ``name`` on the session's loop, from whichever loop this runs on."""
        if asyncio.get_running_loop() is self.loop:
            return await self._call(name, arguments)
        future = asyncio.run_coroutine_threadsafe(self._call(name, arguments), self.loop)
        return await asyncio.wrap_future(future)

    async def _call(self, name: str, arguments: dict[str, Any]) -> Any:
        if self.session is None:
            raise ToolError(f"the MCP session of {self.label} is closed")
        result = await self.session.call_tool(name, arguments)
        return _result_value(name, result)

    def stderr_tail(self) -> str:
        if self.errlog is None:
            return ""
        try:
            self.errlog.flush()
            self.errlog.seek(0)
            lines = self.errlog.read().splitlines()
        except (OSError, ValueError):
            return ""
        return "\n".join(lines[-_STDERR_LINES:])

    async def close(self) -> None:
        if asyncio.get_running_loop() is not self.loop:
            if self.loop.is_closed():  # the loop that opened it is gone, and its task too
                self._close_errlog()
                return
            future = asyncio.run_coroutine_threadsafe(self.close(), self.loop)
            await asyncio.wrap_future(future)
            return
        self.stop.set()
        if self.task is not None and self.session is None:
            self.task.cancel()  # still starting (or stuck): stop waiting for the server
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await self.task
        self._close_errlog()

    def _close_errlog(self) -> None:
        if self.errlog is not None:
            self.errlog.close()
            self.errlog = None


async def _list_tools(session: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    while True:
        page = await (session.list_tools(cursor) if cursor else session.list_tools())
        tools.extend(page.tools)
        cursor = getattr(page, "next_cursor", None) or getattr(page, "nextCursor", None)
        if not cursor:
            return tools


def _result_value(name: str, result: Any) -> Any:
    """A tool result for the model: its text (or structured content); an error raises."""
    texts = []
    for item in getattr(result, "content", None) or ():
        text = getattr(item, "text", None)
        if isinstance(text, str):
            texts.append(text)
        else:
            kind = getattr(item, "mimeType", None) or getattr(item, "mime_type", None)
            texts.append(f"[{getattr(item, 'type', 'content')} {kind or ''}]".strip())
    text = "\n".join(texts)
    failed = getattr(result, "is_error", None)
    if failed is None:
        failed = getattr(result, "isError", False)
    if failed:
        raise ToolError(f"the MCP server reported an error: {text or 'no message'}")
    if text:
        return text
    structured = getattr(result, "structured_content", None)
    if structured is None:
        structured = getattr(result, "structuredContent", None)
    return structured if structured is not None else ""


class MCPToolset(Sequence[Any]):
    """The tools of one MCP server (kite ``Tool`` objects), and its open session.

    A sequence: pass it as ``create_agent(tools=toolset)`` or pick tools by name with
    ``toolset["search"]``. Close it with ``close()`` / ``await aclose()``, a ``with`` /
    ``async with`` block, or by closing the Kite.
    """

    def __init__(self, server: str, tools: list[Any], session: _Session, registry: Any) -> None:
        self.server = server
        self._tools = tools
        self._session = session
        self._registry = registry
        self.closed = False

    @property
    def names(self) -> list[str]:
        return [tool.name for tool in self._tools]

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            for tool in self._tools:
                if tool.name == key:
                    return tool
            raise KeyError(f"{self.server} has no tool {key!r}; it has: {', '.join(self.names)}")
        return self._tools[key]

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._tools)

    async def aclose(self) -> None:
        """End the session (stop a stdio server) and take the tools off ``ai.tools``."""
        if self.closed:
            return
        self.closed = True
        for tool in self._tools:
            with contextlib.suppress(ToolError):
                if self._registry.get(tool.name) is tool:
                    self._registry.remove(tool.name)
        await self._session.close()

    def close(self) -> None:
        from kite_lab.core.runner import run_sync

        run_sync(self.aclose())

    def __enter__(self) -> MCPToolset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> MCPToolset:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"MCPToolset({self.server}, {state}: {', '.join(self.names) or 'no tools'})"


async def connect(
    registry: Any,
    *,
    command: Sequence[str] | None = None,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    startup_timeout: float = 20.0,
    allow: Sequence[str] | None = None,
    prefix: str = "",
) -> MCPToolset:
    """Open a session with one MCP server and register its tools on ``registry``."""
    if (command is None) == (url is None):
        raise TypeError("pass command=[...] (a stdio server) or url=... (streamable HTTP)")
    if isinstance(command, str):
        raise TypeError("command= is a list of words: ['python', 'server.py'], not a string")
    if command is not None and not command:
        raise TypeError("command= is empty; pass the program and its arguments")
    _require_mcp()
    label = " ".join(command) if command is not None else str(url)
    errlog = None
    if command is not None:
        errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
        transport = _stdio_transport(list(command), env, errlog)
    else:
        transport = _http_transport(str(url), headers)
    session = _Session(label, transport, errlog)
    session.task = asyncio.create_task(session.run(), name=f"kite-mcp {label[:40]}")
    try:
        await asyncio.wait_for(session.ready.wait(), startup_timeout)
    except TimeoutError:
        tail = session.stderr_tail()
        await session.close()
        raise MCPServerError(
            f"did not answer within {startup_timeout:g} s (startup_timeout=)",
            server=label, stderr=tail,
        ) from None
    if session.error is not None or session.session is None:
        tail = session.stderr_tail()
        await session.close()
        raise MCPServerError(_why(session.error), server=label, stderr=tail) from None
    try:
        tools = _register(registry, session, timeout, allow, prefix)
    except BaseException:
        await session.close()
        raise
    return MCPToolset(label, tools, session, registry)


def _why(error: BaseException | None) -> str:
    if isinstance(error, FileNotFoundError | PermissionError):
        return f"cannot start the command ({error}); check the program name and PATH"
    detail = f"{type(error).__name__}: {error}" if error is not None else "no session"
    return f"did not start or closed the connection ({detail})"


def _register(registry: Any, session: _Session, timeout: float, allow: Sequence[str] | None,
              prefix: str) -> list[Any]:
    offered = {tool.name: tool for tool in session.tools}
    wanted = list(offered) if allow is None else list(allow)
    unknown = [name for name in wanted if name not in offered]
    if unknown:
        raise ToolError(
            f"MCP server {session.label} has no tool {', '.join(map(repr, unknown))}; "
            f"it offers: {', '.join(offered) or 'none'}"
        )
    tools: list[Any] = []
    try:
        for name in wanted:
            spec = offered[name]
            schema = getattr(spec, "input_schema", None) or getattr(spec, "inputSchema", None)

            local = _BAD_NAME.sub("_", prefix + name)[:64]
            tools.append(registry.create_from_schema(
                local, spec.description or "", schema or {}, _caller(session, name),
                timeout=timeout,
            ))
    except BaseException:
        for tool in tools:
            registry.remove(tool.name)
        raise
    return tools


def _caller(session: _Session, name: str) -> Any:
    async def call(**arguments: Any) -> Any:
        return await session.call(name, arguments)

    return call


def _stdio_transport(command: list[str], env: Mapping[str, str] | None, errlog: Any) -> Any:
    from mcp.client.stdio import StdioServerParameters, stdio_client

    params = StdioServerParameters(command=command[0], args=command[1:],
                                   env=dict(env) if env is not None else None)

    def open_transport(stack: contextlib.AsyncExitStack) -> Any:
        return stdio_client(params, errlog=errlog)

    return open_transport


def _http_transport(url: str, headers: Mapping[str, str] | None) -> Any:
    from mcp.client import streamable_http

    def open_transport(stack: contextlib.AsyncExitStack) -> Any:
        modern = getattr(streamable_http, "streamable_http_client", None)
        if modern is None:  # mcp 1.x
            legacy: Any = getattr(streamable_http, "streamablehttp_client")  # noqa: B009
            return legacy(url, headers=dict(headers or {}))
        client = None
        if headers:
            from mcp.shared._httpx_utils import create_mcp_http_client

            client = create_mcp_http_client(headers=dict(headers))
            stack.push_async_callback(client.aclose)
        return modern(url, http_client=client)

    return open_transport
