"""Helpers shared by the agent tests (a uniquely named module, not a conftest import)."""

from __future__ import annotations

from typing import Any

from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec

OPENAI_KEY = "sk-test-agents-0123456789"
ANTHROPIC_KEY = "sk-ant-test-agents-0123456789"


def kite_config(server: FakeLLMServer, wire: str, **extra: Any) -> dict[str, Any]:
    """Kite settings pointing at the fake server in ``wire``'s format, no response cache."""
    if wire == "openai":
        config = {
            "llm_provider": "openai",
            "openai_api_key": OPENAI_KEY,
            "openai_base_url": server.openai_base_url,
        }
    else:
        config = {
            "llm_provider": "anthropic",
            "anthropic_api_key": ANTHROPIC_KEY,
            "anthropic_base_url": server.anthropic_base_url,
        }
    config.update(cache_backend="none", breaker_backend="memory")
    config.update(extra)
    return config


def has_tool_result(request: Any) -> bool:
    """Whether a recorded request carries a tool result (either wire format)."""
    for message in request.messages:
        if message.get("role") == "tool":
            return True
        content = message.get("content")
        if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
            return True
    return False


def first_user_text(request: Any) -> str:
    """The task: tool results are user turns in Anthropic's format, so not the last one."""
    message = next(m for m in request.messages if m.get("role") == "user")
    content = message["content"]
    return content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)


def two_step_model(request: Any) -> Reply:
    """Call the calculator once, then answer: every run takes exactly two model calls."""
    if has_tool_result(request):
        return Reply(text=f"done: {first_user_text(request)}")
    return Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "6 * 7"})])
