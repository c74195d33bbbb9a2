"""A small MCP server for the tests, written with the mcp package's FastMCP (called
MCPServer in mcp 2). Run: ``python mcp_test_server.py`` (stdio) or ``... http PORT``."""

from __future__ import annotations

import asyncio
import sys

try:
    from mcp.server.fastmcp import FastMCP
    from mcp.server.fastmcp.exceptions import ToolError
except ImportError:  # mcp 2 renamed it
    from mcp.server.mcpserver import MCPServer as FastMCP
    from mcp.server.mcpserver.exceptions import ToolError

server = FastMCP("kite-test-tools")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()


@server.tool()
def explode(reason: str) -> str:
    """Always fails with the reason (a ToolError: its message reaches the client)."""
    raise ToolError(reason)


@server.tool()
async def slow(seconds: float) -> str:
    """Answers after a while."""
    await asyncio.sleep(seconds)
    return "done"


if __name__ == "__main__":
    print("mcp test server starting", file=sys.stderr)
    if sys.argv[1:2] == ["http"]:
        port = int(sys.argv[2])
        try:
            server.run("streamable-http", host="127.0.0.1", port=port)
        except TypeError:  # mcp 1.x: host and port are settings
            server.settings.host, server.settings.port = "127.0.0.1", port
            server.run("streamable-http")
    else:
        server.run()
