"""The one path every provider call takes: kill switch -> cache -> breaker -> provider
-> usage/cost -> events.

Nothing calls a provider any other way, so a notebook cell, an exported script and the
HTTP service get identical caching, protection, accounting and telemetry.

Caching policy: a call is cached when ``cache=True``, or when ``cache`` is None (the
default) and the call is deterministic (temperature 0). ``cache=False`` bypasses it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from kite_lab.core.errors import KiteError, ProviderError
from kite_lab.core.types import Completion, StreamChunk
from kite_lab.providers.pricing import cost_usd

if TYPE_CHECKING:
    from kite_lab.core.events import EventBus
    from kite_lab.providers.base import LLMProvider, LLMRequest

__all__ = ["Breaker", "CallPipeline", "KillSwitchCheck", "PipelineParts", "ResponseStore"]


# What the pipeline needs of each component, as protocols: the pipeline sits below
# safety/ and memory/, so it names what it calls, not their classes.
class Breaker(Protocol):
    """A circuit breaker: ``async with breaker.guard():`` around each provider call."""

    def guard(self) -> AbstractAsyncContextManager[object]: ...


class ResponseStore(Protocol):
    """The response cache (``memory.cache.ResponseCache``)."""

    async def aget(self, key: str, default: Any = None) -> Any: ...

    async def aset(self, key: str, value: Any, ttl: float | None = None) -> None: ...

    async def aget_or_set(
        self, key: str, func: Callable[[], Any], ttl: float | None = None
    ) -> Any: ...


class KillSwitchCheck(Protocol):
    """The kill switch: ``acheck()`` raises KillSwitchError while it is active."""

    async def acheck(self) -> None: ...


class PipelineParts(Protocol):
    """What the pipeline needs from the facade (the Kite object provides it)."""

    @property
    def event_bus(self) -> EventBus: ...

    def breaker_for(self, provider: str) -> Breaker: ...

    def response_cache(self) -> ResponseStore | None: ...

    @property
    def kill_switch(self) -> KillSwitchCheck: ...

    @property
    def cache_ttl(self) -> int: ...


def should_cache(request: LLMRequest, cache: bool | None) -> bool:
    if cache is not None:
        return cache
    return request.params.get("temperature") == 0


class CallPipeline:
    def __init__(self, parts: PipelineParts) -> None:
        self._parts = parts

    async def generate(
        self, provider: LLMProvider, request: LLMRequest, *, cache: bool | None = None
    ) -> Completion:
        await self._check_kill_switch()
        store = self._parts.response_cache() if should_cache(request, cache) else None
        if store is None:
            return await self._call(provider, request)

        produced: list[Completion] = []

        async def _miss() -> dict[str, Any]:
            completion = await self._call(provider, request)
            produced.append(completion)
            return completion.to_dict()

        stored = await store.aget_or_set(
            request.cache_key(provider.cache_namespace(request)), _miss, ttl=self._parts.cache_ttl
        )
        if produced:
            return produced[0]
        completion = _from_cache(stored)
        self._emit_response(completion, request_id=uuid.uuid4().hex, latency=0.0)
        return completion

    async def stream(
        self, provider: LLMProvider, request: LLMRequest, *, cache: bool | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Stream chunks; a cache hit arrives as one chunk. The last chunk has the Completion."""
        await self._check_kill_switch()
        store = self._parts.response_cache() if should_cache(request, cache) else None
        key = request.cache_key(provider.cache_namespace(request))
        if store is not None:
            stored = await store.aget(key)
            if stored is not None:
                completion = _from_cache(stored)
                self._emit_response(completion, request_id=uuid.uuid4().hex, latency=0.0)
                yield StreamChunk(text=completion.text)
                yield StreamChunk(completion=completion)
                return
        request_id = uuid.uuid4().hex
        self._emit_request(provider, request, request_id)
        started = time.perf_counter()
        final: Completion | None = None
        try:
            async with self._parts.breaker_for(provider.name).guard():
                async for chunk in provider.stream(request):
                    if chunk.completion is not None:
                        final = chunk.completion
                        self._account(final, provider, request, started)
                    yield chunk
        except BaseException as exc:
            self._emit_error(provider, request, request_id, exc, started)
            raise
        if final is None:  # a provider must end with a completion
            raise ProviderError("stream ended without a final completion", provider=provider.name)
        self._emit_response(final, request_id=request_id, latency=final.latency_s)
        if store is not None:
            await store.aset(key, final.to_dict(), ttl=self._parts.cache_ttl)

    # -- internals -------------------------------------------------------------------
    async def _check_kill_switch(self) -> None:
        await self._parts.kill_switch.acheck()

    async def _call(self, provider: LLMProvider, request: LLMRequest) -> Completion:
        request_id = uuid.uuid4().hex
        self._emit_request(provider, request, request_id)
        started = time.perf_counter()
        try:
            async with self._parts.breaker_for(provider.name).guard():
                completion = await provider.generate(request)
        except BaseException as exc:
            self._emit_error(provider, request, request_id, exc, started)
            raise
        self._account(completion, provider, request, started)
        self._emit_response(completion, request_id=request_id, latency=completion.latency_s)
        return completion

    @staticmethod
    def _account(
        completion: Completion, provider: LLMProvider, request: LLMRequest, started: float
    ) -> None:
        completion.provider = provider.name
        completion.model = completion.model or request.model
        completion.latency_s = time.perf_counter() - started
        completion.cost_usd = cost_usd(provider.name, request.model, completion.usage)

    def _emit_request(self, provider: LLMProvider, request: LLMRequest, request_id: str) -> None:
        self._parts.event_bus.emit(
            "llm:request",
            provider=provider.name,
            model=request.model,
            request_id=request_id,
            messages=len(request.messages),
            tools=len(request.tools),
        )

    def _emit_response(self, completion: Completion, *, request_id: str, latency: float) -> None:
        self._parts.event_bus.emit(
            "llm:response",
            provider=completion.provider,
            model=completion.model,
            request_id=request_id,
            prompt_tokens=completion.usage.prompt_tokens,
            completion_tokens=completion.usage.completion_tokens,
            cost_usd=completion.cost_usd,
            latency_s=latency,
            cached=completion.cached,
            finish_reason=completion.finish_reason,
            tool_calls=len(completion.tool_calls),
        )

    def _emit_error(
        self,
        provider: LLMProvider,
        request: LLMRequest,
        request_id: str,
        exc: BaseException,
        started: float,
    ) -> None:
        if not isinstance(exc, Exception):  # cancellation / interrupt: not a provider error
            return
        self._parts.event_bus.emit(
            "llm:error",
            provider=provider.name,
            model=request.model,
            request_id=request_id,
            error=type(exc).__name__,
            kite_error=isinstance(exc, KiteError),
            status=getattr(exc, "status", None),
            latency_s=time.perf_counter() - started,
        )


def _from_cache(stored: dict[str, Any]) -> Completion:
    """A cached answer: nothing was paid and no time spent at the provider for it."""
    completion = Completion.from_dict(stored)
    completion.cached = True
    completion.cost_usd = 0.0
    completion.latency_s = 0.0
    return completion
