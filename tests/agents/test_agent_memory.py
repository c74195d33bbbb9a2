"""Knowledge (vector memory) and sessions (session store) in agent runs, with the real
stores: FAISS + the offline embedding model, SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from agents_helpers import first_user_text

from kite_lab import Kite
from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec

DOCS = {
    "kites": "Kites were invented in China about 2,400 years ago, made of silk and bamboo.",
    "bread": "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
}


def system_text(request: Any) -> str:
    if request.wire == "anthropic":
        system = request.json.get("system") or ""
        return system if isinstance(system, str) else " ".join(b["text"] for b in system)
    return " ".join(m["content"] for m in request.messages if m["role"] == "system")


@pytest.fixture
def ai_with_docs(ai: Kite) -> Kite:
    for doc_id, text in DOCS.items():
        ai.vector_memory.add_document(doc_id, text)
    return ai


async def test_knowledge_puts_the_top_chunks_into_the_context(
    ai_with_docs: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.enqueue(Reply(text="About 2,400 years ago, in China."))
    agent = ai_with_docs.create_agent("historian", "Answer from the knowledge.", knowledge=1)
    result = await agent.run("When and where were kites invented?")
    assert result.success
    retrieve = result.steps[0]
    assert retrieve["kind"] == "retrieve" and [h["doc_id"] for h in retrieve["hits"]] == ["kites"]
    system = system_text(fake_llm.requests[0])
    assert "Answer from the knowledge." in system
    assert "[1] (kites) Kites were invented in China" in system and "Sourdough" not in system


async def test_search_memory_tool(ai_with_docs: Kite, fake_llm: FakeLLMServer) -> None:
    fake_llm.enqueue(
        Reply(
            tool_calls=[ToolCallSpec("search_memory", {"query": "how does bread rise", "top_k": 1})]
        ),
        Reply(text="Wild yeast."),
    )
    result = await ai_with_docs.create_agent("baker", tools=["search_memory"]).run("bread?")
    assert result.success
    (call,) = result.tool_calls
    assert (
        call.ok and call.result[0]["doc_id"] == "bread" and "wild yeast" in call.result[0]["text"]
    )


async def test_knowledge_accepts_any_memory_with_asearch(ai: Kite, fake_llm: FakeLLMServer) -> None:
    @dataclass
    class Hit:
        doc_id: str
        chunk_id: str
        text: str
        score: float
        metadata: dict[str, Any] = field(default_factory=dict)

    class Memory:
        def __init__(self) -> None:
            self.queries: list[tuple[str, int]] = []

        async def asearch(self, query: str, top_k: int) -> list[Hit]:
            self.queries.append((query, top_k))
            return [Hit("faq", "faq:0", "Opening hours: 9 to 5.", 0.9)]

    memory = Memory()
    fake_llm.enqueue(Reply(text="9 to 5"))
    agent = ai.create_agent("desk", knowledge=memory, top_k=2)
    assert (await agent.run("When are you open?")).success
    assert memory.queries == [("When are you open?", 2)]
    assert "Opening hours: 9 to 5." in system_text(fake_llm.requests[0])


@pytest.fixture(params=["sqlite", "postgres"])
def session_kite(request: pytest.FixtureRequest, make_kite: Callable[..., Kite]) -> Kite:
    if request.param == "postgres":
        return make_kite(postgres_url=request.getfixturevalue("postgres_url"))
    return make_kite()


async def test_sessions_read_and_append_the_conversation(
    session_kite: Kite, fake_llm: FakeLLMServer
) -> None:
    ai = session_kite
    fake_llm.set_handler(lambda r: Reply(text=f"noted: {r.last_user_text}"))
    agent = ai.create_agent("memo", "Remember what the user says.", session_id="user-42")
    first = await agent.run("My name is Ada.")
    second = await agent.run("What is my name?")
    assert first.success and second.success

    sent = fake_llm.requests[1].messages
    texts = [(m["role"], m["content"]) for m in sent if m["role"] != "system"]
    assert texts == [
        ("user", "My name is Ada."),
        ("assistant", "noted: My name is Ada."),
        ("user", "What is my name?"),
    ]
    stored = await ai.session_memory.awindow("user-42")
    assert [(m.role, m.content) for m in stored] == [
        ("user", "My name is Ada."),
        ("assistant", "noted: My name is Ada."),
        ("user", "What is my name?"),
        ("assistant", "noted: What is my name?"),
    ]
    assert second.steps[0] == {"kind": "history", "session_id": "user-42", "messages": 2}

    # another session (per call) sees nothing of this one
    other = await agent.run("Who am I?", session_id="user-7")
    assert other.success and first_user_text(fake_llm.requests[-1]) == "Who am I?"
    assert len(await ai.session_memory.awindow("user-42")) == 4


async def test_failed_runs_are_not_written_to_the_session(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    from kite_lab.testing import Fault

    fake_llm.enqueue(Fault(status=400))
    result = await ai.create_agent("s", session_id="s1").run("hello")
    assert not result.success and result.error.startswith("BadRequestError")
    assert await ai.session_memory.awindow("s1") == []


def test_history_is_made_valid_for_every_wire() -> None:
    from kite_lab.agents.base import _usable_history
    from kite_lab.core.types import Message, ToolCall

    history = [
        Message("assistant", "an orphan answer"),  # the window cut off its question
        Message("user", "q"),
        Message("assistant", ""),
        Message("assistant", "calling", tool_calls=[ToolCall("c1", "t", {})]),
        Message("tool", "result", tool_call_id="c1"),
        Message("system", "old system prompt"),
        Message("assistant", "a"),
    ]
    assert [(m.role, m.content) for m in _usable_history(history)] == [
        ("user", "q"),
        ("assistant", "a"),
    ]
