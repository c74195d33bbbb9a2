"""Every call through a real Kite (real SDKs, fake server over HTTP) lands in the log."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import OPENAI_KEY
from kite_lab.log.frame import calls_frame

from kite_lab import ServerError
from kite_lab.core.events import event_context
from kite_lab.testing import Fault, Reply, ToolCallSpec


def _stage(ai):
    return ai._pipeline.log


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_call_is_logged_with_its_accounting(make_kite, wire: str) -> None:
    ai = make_kite(wire, kite_log_prompts=True)
    answer = ai.generate("What is 2+2?", temperature=0.5, max_tokens=20)
    stage = _stage(ai)
    assert stage.flush()
    [row] = stage.store.records()
    assert row.kind == "llm" and row.provider == wire and row.model == answer.model
    assert row.prompt_tokens == answer.usage.prompt_tokens
    assert row.completion_tokens == answer.usage.completion_tokens
    assert row.cost_usd == answer.cost_usd and row.latency_s == pytest.approx(answer.latency_s)
    assert row.answer == answer.text and not row.cached and row.error is None
    assert json.loads(row.params) == {"temperature": 0.5, "max_tokens": 20}
    assert json.loads(row.messages) == [{"role": "user", "content": "What is 2+2?"}]
    assert row.prompt_hash and row.prompt_hash.startswith("llm:")


def test_prompts_are_hashes_only_by_default_and_secrets_never_stored(make_kite) -> None:
    ai = make_kite()
    ai.complete(f"the launch code is banana-42, key {OPENAI_KEY}")
    stage = _stage(ai)
    stage.flush()
    [row] = stage.store.records()
    assert json.loads(row.messages)[0]["content"].startswith("sha256:")
    assert row.answer.startswith("sha256:")
    stage.close()
    raw = Path(".kite/logs.db").read_bytes() + b"".join(
        p.read_bytes() for p in Path(".kite").glob("logs.db-*")
    )
    assert b"banana-42" not in raw and OPENAI_KEY.encode() not in raw


def test_with_prompts_on_secrets_are_redacted(make_kite) -> None:
    ai = make_kite(kite_log_prompts=True)
    ai.complete(f"echo my key {OPENAI_KEY} please")
    stage = _stage(ai)
    stage.close()
    [row] = stage.store.records()
    assert "please" in row.messages and OPENAI_KEY not in row.messages
    assert OPENAI_KEY not in (row.answer or "")


def test_a_failed_call_is_logged_and_still_raises_its_own_error(make_kite, fake_llm) -> None:
    ai = make_kite()
    fake_llm.enqueue(Fault(status=500))
    with pytest.raises(ServerError):
        ai.complete("hello")
    stage = _stage(ai)
    stage.flush()
    [row] = stage.store.records()
    assert row.error == "ServerError" and row.error_message and row.prompt_tokens is None


def test_cache_hits_and_streams_are_logged(make_kite) -> None:
    ai = make_kite(cache_backend="memory")
    ai.complete("same question", temperature=0)
    hit = ai.generate("same question", temperature=0)
    assert hit.cached
    text = "".join(ai.stream("tell me a story"))
    stage = _stage(ai)
    stage.flush()
    rows = stage.store.records()
    assert [(r.cached, r.stream) for r in rows] == [(False, False), (True, False), (False, True)]
    assert rows[1].cost_usd == 0.0 and text.startswith("Echo")


def test_agent_runs_and_tool_calls_link_to_their_calls(make_kite, fake_llm) -> None:
    ai = make_kite(kite_log_prompts=True)

    @ai.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    agent = ai.create_agent("calc", "You add numbers.", tools=[add])
    fake_llm.enqueue(Reply(tool_calls=[ToolCallSpec("add", {"a": 2, "b": 3})]), "It is 5.")
    result = agent.run_sync("what is 2+3?")
    assert result.success
    stage = _stage(ai)
    stage.flush()
    rows = stage.store.records()
    kinds = sorted(r.kind for r in rows)
    assert kinds == ["agent", "llm", "llm", "tool"]
    [run] = [r for r in rows if r.kind == "agent"]
    assert run.name == "calc" and run.request_id == run.run_id
    for row in rows:
        assert row.run_id == run.run_id
    [tool] = [r for r in rows if r.kind == "tool"]
    assert tool.name == "add" and tool.parent_id == run.run_id and tool.answer == "5"
    assert all(r.parent_id == run.run_id for r in rows if r.kind == "llm")


def test_a_nested_run_names_its_parent_and_context_fields_are_kept(make_kite) -> None:
    ai = make_kite()
    inner = ai.create_agent("inner", "")

    async def outer() -> None:
        with event_context(run_id="outer-run", agent="outer", cell_id="cell-7"):
            await ai.acomplete("direct call inside the outer run")
            await inner.run("nested")

    asyncio.run(outer())
    stage = _stage(ai)
    stage.flush()
    rows = stage.store.records()
    direct = rows[0]
    assert direct.run_id == "outer-run" and direct.cell_id == "cell-7"
    [run] = [r for r in rows if r.kind == "agent"]
    assert run.parent_id == "outer-run"
    assert ai.close() is None


def test_calls_frame_filters(make_kite) -> None:
    ai = make_kite()
    ai.complete("one", model="gpt-4o-mini")
    ai.complete("two", model="gpt-4o")
    stage = _stage(ai)
    stage.flush()
    frame = calls_frame(stage.store)
    assert list(frame["model"]) == ["gpt-4o-mini", "gpt-4o"]
    assert str(frame.index.tz) == "UTC" and frame["total_tokens"].dtype == "Int64"
    assert list(calls_frame(stage.store, model="gpt-4o")["model"]) == ["gpt-4o"]
    assert len(calls_frame(stage.store, since="1h")) == 2
    assert len(calls_frame(stage.store, until=frame.index[1].timestamp())) == 1
    assert len(calls_frame(stage.store, since=frame.index[1].timestamp() + 1)) == 0
