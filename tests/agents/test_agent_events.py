"""Events on ai.event_bus during runs, and JSON Lines traces with secrets redacted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from agents_helpers import ANTHROPIC_KEY, OPENAI_KEY

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec


def script_one_tool_call(fake_llm: FakeLLMServer) -> None:
    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("calculator", {"expression": "2 + 2"})]),
        Reply(text="4"),
    )


async def test_events_of_a_run_in_order(ai: Kite, fake_llm: FakeLLMServer) -> None:
    script_one_tool_call(fake_llm)
    seen: list[Any] = []
    agent_only: list[str] = []
    async_seen: list[str] = []

    async def async_subscriber(event: Any) -> None:
        async_seen.append(event.name)

    def broken(event: Any) -> None:
        raise RuntimeError("a broken subscriber")

    ai.event_bus.subscribe("*", seen.append)
    ai.event_bus.subscribe("agent:*", lambda e: agent_only.append(e.name))
    ai.event_bus.subscribe("tool:result", async_subscriber)
    ai.event_bus.subscribe("*", broken)  # logged, never breaks the run

    result = await ai.create_agent("events", tools=["calculator"]).run("2 + 2?")
    await asyncio.sleep(0)  # let the async subscriber's task run
    assert result.success and result.response == "4"
    names = [e.name for e in seen]
    assert names == [
        "agent:start",
        "agent:step",
        "llm:request",
        "llm:response",
        "tool:call",
        "tool:result",
        "agent:step",
        "llm:request",
        "llm:response",
        "agent:end",
    ]
    assert agent_only == ["agent:start", "agent:step", "agent:step", "agent:end"]
    assert async_seen == ["tool:result"]
    run_ids = {e.data["run_id"] for e in seen if e.name.startswith(("agent:", "tool:"))}
    assert len(run_ids) == 1
    by_name = {e.name: e.data for e in seen}
    assert by_name["tool:call"]["arguments"] == {"expression": "2 + 2"}
    assert by_name["tool:result"]["result"] == 4 and by_name["tool:result"]["ok"] is True
    end = by_name["agent:end"]
    assert end["success"] is True and end["iterations"] == 2 and end["agent"] == "events"
    assert end["prompt_tokens"] == result.prompt_tokens and end["error"] is None


async def test_tracing_writes_redacted_json_lines_as_events_happen(
    ai: Kite, fake_llm: FakeLLMServer, wire: str, tmp_path: Path
) -> None:
    key = OPENAI_KEY if wire == "openai" else ANTHROPIC_KEY

    @ai.tool
    def leak(note: str) -> str:
        """Returns something containing the provider key."""
        return f"the key is {key}; a stranger's key is sk-abcdefghijklmnop"

    fake_llm.enqueue(
        Reply(tool_calls=[ToolCallSpec("leak", {"note": f"pass {key} along"})]),
        Reply(text="done"),
    )
    path = tmp_path / "traces" / "run.jsonl"
    tracer = ai.enable_tracing(str(path))
    ai.event_bus.emit("custom:event", api_key=key, nested={"url": f"https://x?k={key}"})
    result = await ai.create_agent("tracer", tools=["leak"]).run("go")
    assert result.success

    # readable while tracing is still on: every event was flushed when it happened
    text = path.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == tracer.count == 11
    assert [line["event"] for line in lines][:3] == ["custom:event", "agent:start", "agent:step"]
    assert lines[-1]["event"] == "agent:end"
    assert {"llm:request", "llm:response", "tool:call", "tool:result"} <= {
        line["event"] for line in lines
    }
    assert key not in text and "sk-abcdefghijklmnop" not in text
    assert lines[0]["api_key"] == "***" and "***" in lines[0]["nested"]["url"]
    tool_result = next(line for line in lines if line["event"] == "tool:result")
    assert tool_result["result"] == "the key is ***; a stranger's key is ***"
    assert all("time" in line and "id" in line for line in lines)

    tracer.close()
    tracer.close()  # idempotent
    ai.event_bus.emit("after:close")
    assert len(path.read_text(encoding="utf-8").splitlines()) == 11


def test_tracing_appends_and_rejects_a_directory(tmp_path: Path) -> None:
    import pytest

    ai = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-test-trace-0000"})
    path = tmp_path / "t.jsonl"
    with ai.enable_tracing(path) as tracer:
        ai.event_bus.emit("one", value=object())  # not JSON: stringified
    assert tracer.closed
    with ai.enable_tracing(path):
        ai.event_bus.emit("two")
    events = [json.loads(line)["event"] for line in path.read_text().splitlines()]
    assert events == ["one", "two"]
    with pytest.raises(IsADirectoryError, match="is a directory"):
        ai.enable_tracing(tmp_path)
