"""``ai.mcp_tools``: a real MCP server (FastMCP, ``mcp_test_server.py``) over stdio and over
streamable HTTP, its tools used by an agent on the fake provider, through the tool guard."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kite_lab import ConfigError, Kite, MCPServerError, ToolError
from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec

pytest.importorskip("mcp")

SERVER = str(Path(__file__).with_name("mcp_test_server.py"))
COMMAND = [sys.executable, SERVER]


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def ai(llm: FakeLLMServer) -> Iterator[Kite]:
    kite = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-test-mcp-0123456789",
                        "openai_base_url": llm.openai_base_url, "cache_backend": "none"},
                env_file=None)
    yield kite
    kite.close()


@pytest.fixture(scope="module")
def stdio_tools(ai: Kite):
    """One stdio server for the module (starting one costs ~2 s of imports)."""
    tools = ai.mcp_tools(command=COMMAND, timeout=10)
    yield tools
    tools.close()


@pytest.fixture(autouse=True)
def fresh_script(llm: FakeLLMServer) -> None:
    llm.reset()


def tool_message(request) -> str:
    """The newest tool result the model was sent."""
    return [m["content"] for m in request.messages if m["role"] == "tool"][-1]


def test_stdio_server_tools_carry_the_servers_names_and_schemas(ai, stdio_tools) -> None:
    assert set(stdio_tools.names) == {"add", "shout", "explode", "slow"}
    add = stdio_tools["add"]
    assert add.description == "Add two integers."
    assert add.spec.parameters["required"] == ["a", "b"]
    assert ai.tools["add"] is add  # %%kite --tools add and create_agent(tools=["add"]) find it
    assert add.invoke({"a": 2, "b": 40}) == "42"


def test_an_agent_on_the_fake_provider_calls_the_mcp_tool(ai, llm, stdio_tools) -> None:
    llm.enqueue(Reply(tool_calls=[ToolCallSpec("add", {"a": 2, "b": 3})]), Reply("It is 5."))
    agent = ai.create_agent("calc-mcp", "Use the tools.", tools=stdio_tools)
    result = agent.run_sync("What is 2 + 3?")
    assert result.success and result.response == "It is 5."
    assert [(c.name, c.result, c.ok) for c in result.tool_calls] == [("add", "5", True)]
    sent = llm.requests[0].tools
    assert {t["function"]["name"] for t in sent} == {"add", "shout", "explode", "slow"}
    assert tool_message(llm.requests[1]) == "5"


def test_bad_arguments_server_errors_and_timeouts_go_back_to_the_model(
    ai, llm, stdio_tools
) -> None:
    llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("add", {"a": "two"})]),
        Reply(tool_calls=[ToolCallSpec("explode", {"reason": "kaboom"})]),
        Reply(tool_calls=[ToolCallSpec("slow", {"seconds": 30})]),
        Reply("Gave up."),
    )
    agent = ai.create_agent("guarded-mcp", tools=["add", "explode", "slow"])
    stdio_tools["slow"].timeout = 0.5  # per tool; the others keep the toolset's 10 s
    try:
        result = agent.run_sync("try things")
    finally:
        stdio_tools["slow"].timeout = 10
    assert result.success and result.response == "Gave up."
    first, second, third = (tool_message(r) for r in llm.requests[1:4])
    assert "invalid arguments for tool 'add'" in first and "'two' is not of type" in first
    assert "tool 'explode' failed" in second and "kaboom" in second
    assert "did not finish within 0.5 s" in third
    assert [c.ok for c in result.tool_calls] == [False, False, False]


def test_only_whitelisted_tools_reach_the_model(ai, llm, stdio_tools) -> None:
    llm.enqueue(Reply(tool_calls=[ToolCallSpec("shout", {"text": "x"})]), Reply("ok"))
    agent = ai.create_agent("adder-only", tools=["add"])
    result = agent.run_sync("shout")
    assert "not available to this agent" in tool_message(llm.requests[1])
    assert not result.tool_calls[0].ok


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen([*COMMAND, "http", str(port)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(10)
        process.stderr.close()


async def test_streamable_http_server_and_async_context_manager(ai, llm, http_server) -> None:
    async with await ai.amcp_tools(url=http_server, allow=["add", "shout"], prefix="web_") as tools:
        assert tools.names == ["web_add", "web_shout"]  # beside the stdio server's add/shout
        llm.enqueue(Reply(tool_calls=[ToolCallSpec("web_shout", {"text": "hi"})]), Reply("HI"))
        agent = ai.create_agent("http-mcp", tools=tools)
        result = await agent.run("shout hi")
        assert result.tool_calls[0].result == "HI"
    assert tools.closed and "web_shout" not in ai.tools
    with pytest.raises(ToolError, match="closed"):
        await tools[0].ainvoke({"a": 1, "b": 2})


def test_a_server_that_fails_to_start_reports_its_stderr_tail(ai) -> None:
    crash = [sys.executable, "-c",
             "import sys; print('boom: no config file', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(MCPServerError) as caught:
        ai.mcp_tools(command=crash)
    assert "boom: no config file" in str(caught.value)
    assert "boom" in caught.value.stderr and caught.value.server.endswith("sys.exit(3)")
    with pytest.raises(MCPServerError, match="cannot start the command"):
        ai.mcp_tools(command=["/nonexistent/mcp-server"])
    silent = [sys.executable, "-c", "import time; time.sleep(30)"]
    with pytest.raises(MCPServerError, match="did not answer within 0.5 s"):
        ai.mcp_tools(command=silent, startup_timeout=0.5)


def test_bad_arguments_to_mcp_tools_themselves(ai, stdio_tools) -> None:
    with pytest.raises(TypeError, match=r"command=\[...\] \(a stdio server\) or url="):
        ai.mcp_tools()
    with pytest.raises(TypeError, match="list of words"):
        ai.mcp_tools(command="python server.py")
    with pytest.raises(ToolError, match="no tool 'nope'"):
        ai.mcp_tools(command=COMMAND, allow=["nope"])
    with pytest.raises(ToolError, match="already exists"):  # the module's server has "add"
        ai.mcp_tools(command=COMMAND, allow=["add"])


def test_closing_the_kite_closes_its_sessions(llm) -> None:
    kite = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-test-mcp-0123456789",
                        "openai_base_url": llm.openai_base_url}, env_file=None)
    with kite:
        tools = kite.mcp_tools(command=COMMAND, allow=["shout"])
        assert tools["shout"].invoke({"text": "a"}) == "A"
    assert tools.closed and len(kite.tools) == 0


def test_without_the_mcp_package_the_error_names_the_extra(ai, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mcp", None)  # what `import mcp` sees when absent
    with pytest.raises(ConfigError, match=r"kite-lab\[mcp\]"):
        ai.mcp_tools(command=COMMAND)
