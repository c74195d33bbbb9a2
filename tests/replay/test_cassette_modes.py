"""Cassettes on real Kites (real SDKs, fake server over HTTP): record, replay, once, off;
misses, other parameters, malformed files, secrets, errors, streams, the decorator."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from kite_lab import CassetteError, CassetteMiss, InvalidInput, ServerError
from kite_lab.frames import calls_df
from kite_lab.testing import Fault, Reply, ToolCallSpec

OPENAI_KEY = "sk-test-cassette-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-cassette-0123456789"


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_record_then_replay_without_the_provider(make_kite: Any, fake_llm: Any,
                                                 wire: str) -> None:
    ai = make_kite(wire)
    fake_llm.enqueue(Reply(text="Paris", prompt_tokens=9, completion_tokens=1),
                     Reply(tool_calls=[ToolCallSpec("lookup", {"q": "x"}, id="call_1")]))
    tools = [{"name": "lookup", "description": "Look up.", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}]
    with ai.cassette("c.jsonl", mode="record") as cassette:
        live = ai.generate("Capital of France?", temperature=0.2)
        live_tool = ai.generate("Use the tool", tools=tools)
    assert cassette.recorded == 2 and len(fake_llm.requests) == 2
    with ai.cassette("c.jsonl", mode="replay") as cassette:
        again = ai.generate("Capital of France?", temperature=0.2)
        again_tool = ai.generate("Use the tool", tools=tools)
    assert len(fake_llm.requests) == 2 and cassette.replayed == 2
    assert again.to_dict() == live.to_dict()
    assert again_tool.tool_calls == live_tool.tool_calls
    lines = Path("c.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert all(line == json.dumps(json.loads(line), sort_keys=True, ensure_ascii=False)
               for line in lines)


def test_once_replays_what_is_recorded_and_records_the_rest(make_kite: Any,
                                                            fake_llm: Any) -> None:
    ai = make_kite()
    with ai.cassette("c.jsonl", mode="once"):
        first = ai.complete("one")
    with ai.cassette("c.jsonl", mode="once") as cassette:
        assert ai.complete("one") == first
        ai.complete("two")
    assert len(fake_llm.requests) == 2 and cassette.replayed == 1 and cassette.recorded == 1
    assert len(Path("c.jsonl").read_text().splitlines()) == 2


def test_answers_recorded_for_one_request_replay_in_order(make_kite: Any,
                                                          fake_llm: Any) -> None:
    ai = make_kite()
    fake_llm.enqueue("first", "second")
    with ai.cassette("c.jsonl", mode="record"):
        assert [ai.complete("again"), ai.complete("again")] == ["first", "second"]
    with ai.cassette("c.jsonl", mode="replay"):
        assert [ai.complete("again") for _ in range(3)] == ["first", "second", "second"]


def test_a_request_not_recorded_is_a_miss_naming_hash_model_and_prompt(make_kite: Any,
                                                                       fake_llm: Any) -> None:
    ai = make_kite()
    with ai.cassette("c.jsonl", mode="record"):
        ai.complete("What is the weather in Paris today?", temperature=0.2)
    with ai.cassette("c.jsonl", mode="replay"), pytest.raises(CassetteMiss) as info:
        ai.complete("What is the weather in Oslo today?", temperature=0.2)
    miss = info.value
    assert miss.request_hash.startswith("llm:") and miss.request_hash in str(miss)
    assert miss.model == "gpt-4o-mini" and "gpt-4o-mini" in str(miss)
    assert miss.prompt_head == "What is the weather in Oslo today?"
    assert "c.jsonl" in str(miss) and "mode='once'" in str(miss)
    assert len(fake_llm.requests) == 1  # a miss never reaches the provider


def test_other_parameters_are_a_miss_never_a_wrong_answer(make_kite: Any) -> None:
    ai = make_kite()
    with ai.cassette("c.jsonl", mode="record"):
        ai.complete("Summarize", temperature=0.2)
    for changed in ({"temperature": 0.9}, {"max_tokens": 5}, {"system": "Be terse."},
                    {"model": "gpt-4o"}):
        with ai.cassette("c.jsonl", mode="replay"), pytest.raises(CassetteMiss) as info:
            ai.complete("Summarize", **{"temperature": 0.2, **changed})
        if "model" not in changed:
            assert "differs in" in str(info.value)
    other = make_kite("anthropic")  # the same request to another provider
    with other.cassette("c.jsonl", mode="replay"), pytest.raises(CassetteMiss):
        other.complete("Summarize", temperature=0.2)


def test_a_malformed_line_names_the_file_and_the_line(make_kite: Any) -> None:
    ai = make_kite()
    with ai.cassette("c.jsonl", mode="record"):
        ai.complete("one")
    good = Path("c.jsonl").read_text()
    Path("c.jsonl").write_text(good + "\n{not json\n")
    with pytest.raises(CassetteError, match=r"c\.jsonl, line 3: not a JSON object") as info:
        ai.cassette("c.jsonl", mode="replay").start()
    assert info.value.line == 3 and info.value.path == "c.jsonl"
    Path("c.jsonl").write_text(good + '{"key": "llm:x", "request": {}}\n')
    with pytest.raises(CassetteError, match="line 2: an interaction needs a 'response'"):
        ai.cassette("c.jsonl", mode="once").start()
    Path("c.jsonl").write_text('{"key": "k", "request": {}, "response": {"text": "x"}}\n')
    with pytest.raises(CassetteError, match="line 1: the response cannot be read"):
        ai.cassette("c.jsonl", mode="replay").start()
    with pytest.raises(CassetteError, match=r"missing\.jsonl: no such cassette"):
        ai.cassette("missing.jsonl", mode="replay").start()


def test_bad_arguments_are_typed_errors(make_kite: Any) -> None:
    ai = make_kite()
    with pytest.raises(InvalidInput, match="unknown cassette mode 'replay-all'"):
        ai.cassette("c.jsonl", mode="replay-all")
    with pytest.raises(InvalidInput, match="speed must be a number > 0"):
        ai.cassette("c.jsonl", speed=0)
    with pytest.raises(InvalidInput, match="file path"):
        ai.cassette(" ")


def test_keys_tokens_and_authorization_are_never_written(make_kite: Any,
                                                         fake_llm: Any) -> None:
    for wire in ("openai", "anthropic"):
        ai = make_kite(wire)
        with ai.cassette(f"{wire}.jsonl", mode="record"):
            ai.complete(f"my key is {OPENAI_KEY}, the other {ANTHROPIC_KEY}; token "
                        "sk-live-abcdefghijklmnop and Bearer abcdefghijklmnopqrstu")
        assert any(r.headers.get("authorization") or r.headers.get("x-api-key")
                   for r in fake_llm.requests)  # the SDK did send its credentials...
        text = Path(f"{wire}.jsonl").read_text()  # ...and none of them reached the file
        for secret in (OPENAI_KEY, ANTHROPIC_KEY, "sk-live-abcdefghijklmnop",
                       "abcdefghijklmnopqrstu", "Authorization", "authorization",
                       "x-api-key", "Bearer"):
            assert secret not in text, secret
        assert "my key is ***" in text


def test_provider_errors_are_recorded_and_replayed_as_the_same_error(make_kite: Any,
                                                                     fake_llm: Any) -> None:
    ai = make_kite()
    fake_llm.enqueue(Fault(status=500, message="overloaded"))
    with ai.cassette("c.jsonl", mode="record"), pytest.raises(ServerError) as live:
        ai.complete("fails")
    with ai.cassette("c.jsonl", mode="replay"), pytest.raises(ServerError) as replayed:
        ai.complete("fails")
    assert str(replayed.value) == str(live.value) and replayed.value.status == 500
    assert len(fake_llm.requests) == 1


def test_replayed_calls_are_events_and_log_rows(make_kite: Any) -> None:
    ai = make_kite()
    with ai.cassette("c.jsonl", mode="record"):
        recorded = ai.generate("hello")
    seen: list[Any] = []
    ai.event_bus.subscribe("llm:response", seen.append)
    with ai.cassette("c.jsonl", mode="replay"):
        replayed = ai.generate("hello")
    assert seen[-1].data["replayed"] is True and replayed.latency_s == recorded.latency_s
    frame = calls_df(ai)
    assert frame["replayed"].tolist() == [False, True]
    assert frame["cost_usd"].tolist() == [recorded.cost_usd, recorded.cost_usd]


def test_off_mode_and_no_cassette_call_the_provider(make_kite: Any, fake_llm: Any) -> None:
    ai = make_kite()
    with ai.cassette("c.jsonl", mode="off"):
        ai.complete("one")
    assert not Path("c.jsonl").exists() and len(fake_llm.requests) == 1
    assert ai.active_cassette() is None


def test_the_decorator_form_sync_and_async(make_kite: Any, fake_llm: Any) -> None:
    ai = make_kite()

    @ai.cassette("sync.jsonl", mode="once")
    def ask() -> str:
        return ai.complete("decorated")

    @ai.cassette("async.jsonl", mode="once")
    async def aask() -> str:
        return await ai.acomplete("decorated async")

    assert ask() == ask() and asyncio.run(aask()) == asyncio.run(aask())
    assert len(fake_llm.requests) == 2 and ai.active_cassette() is None


def test_streams_replay_their_chunks_in_order_at_the_chosen_speed(make_kite: Any,
                                                                   fake_llm: Any) -> None:
    ai = make_kite()
    fake_llm.enqueue(Reply(text="one two three four", chunk_size=4))
    with ai.cassette("s.jsonl", mode="record"):
        live = list(ai.stream("count"))
    with ai.cassette("s.jsonl", mode="replay"):
        assert list(ai.stream("count")) == live
        assert ai.complete("count") == "".join(live)  # a stream answers a plain call too
    [line] = [json.loads(x) for x in Path("s.jsonl").read_text().splitlines()]
    assert [text for _, text in line["chunks"]] == live
    line["chunks"] = [[0.0, "a"], [0.15, "b"], [0.15, "c"]]
    Path("s.jsonl").write_text(json.dumps(line, sort_keys=True) + "\n")
    timings = {}
    for speed in (float("inf"), 2.0):
        with ai.cassette("s.jsonl", mode="replay", speed=speed):
            started = time.perf_counter()
            assert list(ai.stream("count")) == ["a", "b", "c"]
            timings[speed] = time.perf_counter() - started
    assert timings[float("inf")] < 0.1 and 0.14 <= timings[2.0] < 0.6


def test_a_recorded_plain_answer_replays_as_a_stream(make_kite: Any) -> None:
    ai = make_kite()
    with ai.cassette("c.jsonl", mode="record"):
        text = ai.complete("plain")
    with ai.cassette("c.jsonl", mode="replay"):
        assert "".join(ai.stream("plain")) == text
