"""The call pipeline (kite_lab.pipeline): kill switch -> cache -> breaker -> provider ->
accounting -> events, against the real SDK and the fake server (no mocks)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest

from kite_lab import Kite
from kite_lab.core.errors import CircuitBreakerError, KillSwitchError, ProviderError, ServerError
from kite_lab.core.events import Event
from kite_lab.core.types import Completion, StreamChunk, Usage
from kite_lab.pipeline import should_cache
from kite_lab.providers.base import LLMProvider, LLMRequest
from kite_lab.providers.registry import register_provider
from kite_lab.testing import FakeLLMServer, Fault, Reply


@pytest.fixture
def ai(fake_llm: FakeLLMServer) -> Iterator[Kite]:
    kite = Kite(
        config={
            "llm_provider": "openai",
            "llm_model": "gpt-4o-mini",
            "openai_api_key": "sk-test-pipeline-0123456789",
            "openai_base_url": fake_llm.openai_base_url,
            "cache_backend": "memory",
            "breaker_backend": "memory",
            "circuit_breaker_threshold": 2,
        },
        env_file=None,
    )
    yield kite
    kite.close()


def events(ai: Kite) -> list[Event]:
    seen: list[Event] = []
    ai.event_bus.subscribe("llm:*", seen.append)
    return seen


async def test_a_call_is_priced_timed_and_reported(ai: Kite, fake_llm: FakeLLMServer) -> None:
    seen = events(ai)
    fake_llm.enqueue(Reply(text="Paris", prompt_tokens=1000, completion_tokens=100, latency=0.05))
    completion = await ai.agenerate("Capital of France?")
    assert (completion.text, completion.provider, completion.model) == (
        "Paris",
        "openai",
        "gpt-4o-mini",
    )
    assert completion.usage == Usage(1000, 100)
    assert completion.cost_usd == pytest.approx((1000 * 0.15 + 100 * 0.60) / 1e6)
    assert completion.latency_s >= 0.05 and completion.cached is False
    request, response = seen
    assert (request.name, response.name) == ("llm:request", "llm:response")
    assert request.data["request_id"] == response.data["request_id"]
    assert request.data["messages"] == 1 and request.data["tools"] == 0
    assert (
        response.data["prompt_tokens"] == 1000 and response.data["cost_usd"] == completion.cost_usd
    )
    assert response.data["latency_s"] == completion.latency_s and response.data["cached"] is False


async def test_deterministic_calls_are_cached_by_default(ai: Kite, fake_llm: FakeLLMServer) -> None:
    seen = events(ai)
    fake_llm.enqueue(Reply(text="one"), Reply(text="two"), Reply(text="three"))
    first = await ai.agenerate("same", temperature=0)
    again = await ai.agenerate("same", temperature=0)
    assert (first.text, again.text) == ("one", "one") and len(fake_llm.requests) == 1
    assert (again.cached, again.cost_usd, again.latency_s) == (True, 0.0, 0.0)
    assert seen[-1].name == "llm:response" and seen[-1].data["cached"] is True
    # not deterministic: not cached unless asked; cache=False bypasses even at temperature 0
    assert (await ai.agenerate("same", temperature=0.7)).text == "two"
    assert (await ai.agenerate("same", temperature=0, cache=False)).text == "three"
    assert len(fake_llm.requests) == 3


def test_should_cache_policy() -> None:
    request = LLMRequest(model="m", messages=[], params={"temperature": 0})
    assert should_cache(request, None) and not should_cache(request, False)
    hot = LLMRequest(model="m", messages=[], params={"temperature": 1})
    assert not should_cache(hot, None) and should_cache(hot, True)
    assert not should_cache(LLMRequest(model="m", messages=[]), None)


async def test_concurrent_identical_calls_reach_the_provider_once(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.set_handler(lambda request: Reply(text="shared", latency=0.1))
    results = await asyncio.gather(*(ai.agenerate("stampede", temperature=0) for _ in range(10)))
    assert {r.text for r in results} == {"shared"} and len(fake_llm.requests) == 1


async def test_the_kill_switch_stops_calls_before_the_cache_and_the_network(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.enqueue(Reply(text="cached"))
    await ai.agenerate("q", temperature=0)
    ai.kill_switch.activate("budget")
    with pytest.raises(KillSwitchError):
        await ai.agenerate("q", temperature=0)  # even a cache hit is refused
    with pytest.raises(KillSwitchError):
        [c async for c in ai.astream_chunks("q")]
    ai.kill_switch.deactivate()
    assert len(fake_llm.requests) == 1


async def test_failures_open_the_breaker_and_emit_llm_error(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    seen = events(ai)
    fake_llm.enqueue(Fault(status=500), Fault(status=500))
    for _ in range(2):
        with pytest.raises(ServerError):
            await ai.agenerate("x")
    with pytest.raises(CircuitBreakerError):
        await ai.agenerate("x")
    assert len(fake_llm.requests) == 2  # the open breaker failed fast
    errors = [e for e in seen if e.name == "llm:error"]
    assert [e.data["error"] for e in errors] == [
        "ServerError",
        "ServerError",
        "CircuitBreakerError",
    ]
    assert errors[0].data["status"] == 500 and errors[0].data["kite_error"] is True


async def test_a_stream_ends_with_the_completion_and_fills_the_cache(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    fake_llm.enqueue(Reply(text="streamed answer", chunk_size=4))
    chunks = [c async for c in ai.astream_chunks("s", temperature=0)]
    assert "".join(c.text for c in chunks if c.text) == "streamed answer"
    final = chunks[-1].completion
    assert final is not None and final.cost_usd is not None and final.provider == "openai"
    # the stored answer comes back as one chunk, then the completion, without a request
    again = [c async for c in ai.astream_chunks("s", temperature=0)]
    assert [c.text for c in again] == ["streamed answer", ""]
    assert again[-1].completion is not None and again[-1].completion.cached
    assert len(fake_llm.requests) == 1


class _NoFinal(LLMProvider):
    """A provider whose stream forgets its final completion (a broken third-party one)."""

    name: ClassVar[str] = "nofinal-test"
    default_model: ClassVar[str] = "m"

    async def generate(self, request: LLMRequest) -> Completion:
        return Completion(text="x")

    async def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        yield StreamChunk(text="x")


async def test_a_stream_without_a_final_completion_is_a_provider_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kite_lab.providers import registry

    monkeypatch.setattr(registry, "_registry", dict(registry._registry))  # undone afterwards
    register_provider("nofinal-test", _NoFinal)
    ai = Kite(config={"llm_provider": "nofinal-test", "cache_backend": "none"}, env_file=None)
    with pytest.raises(ProviderError, match="without a final completion"):
        [c async for c in ai.astream_chunks("x")]


async def test_cancellation_is_not_reported_as_a_provider_error(
    ai: Kite, fake_llm: FakeLLMServer
) -> None:
    seen = events(ai)
    fake_llm.latency = 5.0
    task = asyncio.ensure_future(ai.agenerate("slow"))
    while not fake_llm.requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [e.name for e in seen] == ["llm:request"]
