"""A failed run says what failed in fields, not only in text: ``error_type``, ``retry_after``."""

from __future__ import annotations

from kite_lab import Kite
from kite_lab.agents.run_state import retry_after_of
from kite_lab.core.errors import AgentError, RateLimitError
from kite_lab.testing import FakeLLMServer, Fault, Reply


async def test_a_rate_limited_run_carries_the_providers_retry_after(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.enqueue(Fault(status=429, retry_after=7))
    result = await ai.create_agent("limited").run("hello")
    assert not result.success
    assert result.error_type == "RateLimitError"
    assert result.error is not None and result.error.startswith("RateLimitError: ")
    assert result.retry_after == 7.0


async def test_other_failures_have_a_type_and_no_retry_after(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.enqueue(Fault(status=500))
    result = await ai.create_agent("broken").run("hello")
    assert (result.success, result.error_type, result.retry_after) == (False, "ServerError", None)

    ai.kill_switch.activate("maintenance")
    stopped = await ai.create_agent("stopped").run("hello")
    assert stopped.error_type == "KillSwitchError" and stopped.retry_after is None
    ai.kill_switch.deactivate()

    fake_llm.enqueue(Reply(text="fine"))
    ok = await ai.create_agent("fine").run("hello")
    assert (ok.success, ok.error, ok.error_type, ok.retry_after) == (True, None, None, None)


async def test_a_limit_is_typed_too(ai: Kite, fake_llm: FakeLLMServer) -> None:
    from kite_lab.testing import ToolCallSpec

    fake_llm.set_handler(
        lambda request: Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "1+1"})])
    )
    result = await ai.create_agent("loop", tools=["calculator"], max_iterations=2).run("go")
    assert result.error_type == "AgentLimitReached"
    assert result.error is not None and "max_iterations=2" in result.error


def test_retry_after_is_found_through_the_cause_chain() -> None:
    limited = RateLimitError("slow down", provider="openai", status=429, retry_after=3)
    try:
        try:
            raise limited
        except RateLimitError as exc:
            raise AgentError("the step failed") from exc
    except AgentError as outer:
        assert retry_after_of(outer) == 3.0
    assert retry_after_of(RateLimitError("no header", provider="openai")) is None
    assert retry_after_of(ValueError("x")) is None
