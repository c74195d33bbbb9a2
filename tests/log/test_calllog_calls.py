"""Every call through a real Kite (real SDKs, fake server over HTTP) lands in the log,
with its accounting, its links to agent runs and tool calls, and no secret."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from kite_lab import ServerError
from kite_lab.core.events import event_context
from kite_lab.log import LogQuery
from kite_lab.testing import Fault, Reply, ToolCallSpec

OPENAI_KEY = "sk-test-calllog-0123456789abcdef"


def rows(ai: Any, **query: Any) -> list[Any]:
    assert ai.call_log.flush()
    return ai.call_log.store.records(LogQuery(**query))


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_call_is_logged_with_its_accounting(make_kite: Any, wire: str) -> None:
    ai = make_kite(wire, kite_log_prompts=True)
    answer = ai.generate("What is 2+2?", temperature=0.5, max_tokens=20, system="Be brief.")
    [row] = rows(ai)
    assert (row.kind, row.provider, row.model) == ("llm", wire, answer.model)
    assert (row.prompt_tokens, row.completion_tokens) == (
        answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert row.cost_usd == answer.cost_usd and row.latency_s == pytest.approx(answer.latency_s)
    assert row.answer == answer.text and not row.cached and row.error is None
    assert json.loads(row.params) == {"temperature": 0.5, "max_tokens": 20}
    assert json.loads(row.messages) == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "What is 2+2?"}]
    assert row.prompt_hash.startswith("llm:") and len(row.request_id) == 32
    assert row.script is not None and row.breaker_state == "closed"
    assert ai.call_log.stats()["written"] == 1


def test_prompts_are_hashes_only_by_default_and_secrets_never_stored(make_kite: Any) -> None:
    ai = make_kite()
    ai.complete(f"the launch code is banana-42, key {OPENAI_KEY}")
    [row] = rows(ai)
    assert row.messages.startswith("sha256:") and row.answer.startswith("sha256:")
    ai.call_log.close()
    raw = b"".join(p.read_bytes() for p in Path(".kite").glob("logs.db*"))
    assert b"banana-42" not in raw and OPENAI_KEY.encode() not in raw


def test_with_prompts_on_secrets_are_still_redacted(make_kite: Any) -> None:
    ai = make_kite(kite_log_prompts=True)
    ai.complete(f"echo my key {OPENAI_KEY} please")
    [row] = rows(ai)
    assert "please" in row.messages and OPENAI_KEY not in row.messages
    assert OPENAI_KEY not in row.answer and "***" in row.answer


def test_a_failed_call_is_logged_and_still_raises_its_own_error(make_kite: Any,
                                                                fake_llm: Any) -> None:
    ai = make_kite()
    fake_llm.enqueue(Fault(status=500))
    with pytest.raises(ServerError):
        ai.complete("hello")
    [row] = rows(ai)
    assert row.error == "ServerError" and "HTTP 500" in row.error_message
    assert row.prompt_tokens is None and row.latency_s is not None


def test_cache_hits_and_streams_are_logged(make_kite: Any) -> None:
    ai = make_kite(cache_backend="memory", kite_log_prompts=True)
    ai.complete("same question", temperature=0)
    assert ai.generate("same question", temperature=0).cached
    text = "".join(ai.stream("tell me a story"))
    logged = rows(ai)
    assert [(r.cached, r.stream) for r in logged] == [(False, False), (True, False),
                                                      (False, True)]
    assert logged[1].cost_usd == 0.0 and logged[2].answer == text


def test_agent_runs_and_tool_calls_link_to_their_calls(make_kite: Any, fake_llm: Any) -> None:
    ai = make_kite(kite_log_prompts=True)

    @ai.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent = ai.create_agent("calc", "You add numbers.", tools=[add])
    fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("add", {"a": 2, "b": 3})]), "It is 5.")
    result = agent.run_sync("what is 2+3?")
    assert result.success
    logged = rows(ai, kind=None)
    assert sorted(r.kind for r in logged) == ["agent", "llm", "llm", "tool"]
    [run] = [r for r in logged if r.kind == "agent"]
    assert run.name == "calc" and run.request_id == run.run_id and run.parent_id is None
    assert run.answer == "It is 5." and run.prompt_tokens == result.prompt_tokens
    assert all(r.run_id == run.run_id for r in logged)
    [tool] = [r for r in logged if r.kind == "tool"]
    assert tool.name == "add" and tool.parent_id == run.run_id and tool.answer == "5"
    assert json.loads(tool.params) == {"a": 2, "b": 3}
    calls = [r for r in logged if r.kind == "llm"]
    assert all(r.parent_id == run.run_id and r.name == "calc" for r in calls)
    assert json.loads(calls[0].tool_calls)[0]["name"] == "add"
    assert [r.request_id for r in rows(ai, run_id=run.run_id, kind="llm")] == [
        c.request_id for c in calls]


def test_a_nested_run_names_its_parent_and_context_fields_are_kept(make_kite: Any) -> None:
    ai = make_kite()
    inner = ai.create_agent("inner", "")

    async def outer() -> None:
        with event_context(run_id="outer-run", agent="outer", cell_id="cell-7"):
            await ai.acomplete("direct call inside the outer run")
            await inner.run("nested")

    asyncio.run(outer())
    logged = rows(ai, kind=None)
    direct = logged[0]
    assert direct.run_id == "outer-run" and direct.cell_id == "cell-7"
    [run] = [r for r in logged if r.kind == "agent"]
    assert run.parent_id == "outer-run" and run.cell_id == "cell-7"
    [nested_call] = [r for r in logged if r.kind == "llm" and r.run_id == run.run_id]
    assert nested_call.parent_id == run.run_id


def test_map_rows_from_events_are_linked_rows(make_kite: Any) -> None:
    ai = make_kite()
    ai.complete("build the log")  # the log listens once it exists
    bus = ai.event_bus
    # the events ai.map emits (kite_lab.batch.runner), and a call made inside the map
    bus.emit("map:start", map_run="m1", rows=2)
    with event_context(map_run="m1"):
        ai.complete("a row's prompt")
    bus.emit("map:row", map_run="m1", row_key="r0", outcome="success", cost_usd=0.01,
             latency_s=0.1, error=None)
    bus.emit("map:row", map_run="m1", row_key="r1", outcome="error", cost_usd=None,
             latency_s=0.2, error="ServerError")
    bus.emit("map:done", map_run="m1", status="completed", rows=2, spent_usd=0.01,
             elapsed_s=0.3, success=1, error=1)
    logged = rows(ai, run_id="m1", kind=None)
    assert [(r.kind, r.request_id, r.error) for r in logged[1:]] == [
        ("map_row", "r0", None), ("map_row", "r1", "ServerError"), ("map", "m1", None)]
    assert logged[0].kind == "llm" and logged[0].parent_id == "m1"
    assert logged[1].parent_id == "m1" and logged[1].name == "success"
    assert logged[3].cost_usd == 0.01 and json.loads(logged[3].answer)["rows"] == 2


def test_kite_call_log_none_writes_nothing_and_frames_use_the_events(make_kite: Any) -> None:
    from kite_lab.frames import calls_df

    ai = make_kite(kite_call_log="none")
    ai.complete("not logged")
    assert ai.call_log is None and not Path(".kite/logs.db").exists()
    assert len(calls_df(ai)) == 1  # this process's events


def test_switching_the_log_off_through_config_takes_effect(make_kite: Any) -> None:
    ai = make_kite()
    ai.complete("one")
    assert len(rows(ai)) == 1
    log = ai.call_log
    ai.config["kite_call_log"] = "none"
    ai.complete("two")
    assert ai.call_log is None
    log.flush()
    assert log.store.count() == 1
