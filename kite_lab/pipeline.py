"""The one path every provider call takes: kill switch -> replay -> cache -> breaker ->
provider -> usage/cost -> events -> log.

Nothing calls a provider any other way, so a notebook cell, an exported script and the
HTTP service get identical caching, protection, accounting and telemetry.

Caching policy: a call is cached when ``cache=True``, or when ``cache`` is None (the
default) and the call is deterministic (temperature 0). ``cache=False`` bypasses it.

Replay (``kite_lab.replay``): with a cassette active, a recorded request is answered from
it (streams chunk by chunk) before the cache is asked, and a live answer is recorded.
Log (``kite_lab.log``): every call, answered, failed, cached or replayed, is handed to the
call log after accounting; the log writes it on its own thread and never fails a call.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

from kite_lab.core.errors import KiteError, ProviderError
from kite_lab.core.types import Completion, Message, StreamChunk
from kite_lab.providers.pricing import cost_usd

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import Event, EventBus
    from kite_lab.log.stage import CallLog
    from kite_lab.providers.base import LLMProvider, LLMRequest
    from kite_lab.replay.cassette import Cassette, Interaction

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

    @property
    def settings(self) -> KiteSettings: ...

    def active_cassette(self) -> Cassette | None: ...

    def attach_telemetry(self) -> None: ...


def should_cache(request: LLMRequest, cache: bool | None) -> bool:
    if cache is not None:
        return cache
    return request.params.get("temperature") == 0


class CallPipeline:
    def __init__(self, parts: PipelineParts) -> None:
        self._parts = parts
        self._log: CallLog | None = None
        self._log_key: tuple[object, ...] | None = None
        try:  # listen from now on (an agent's first run starts before its first call)
            self.call_log  # noqa: B018
        except KiteError:  # unreadable settings: the first call reports them
            self._log_key = None

    @property
    def call_log(self) -> CallLog | None:
        """The call log (None with KITE_CALL_LOG=none); rebuilt when its settings change."""
        from kite_lab.log.build import settings_key

        settings = self._parts.settings
        key = settings_key(settings)
        if key != self._log_key:
            if self._log_key is None:  # the first call: observers that need settings
                self._parts.attach_telemetry()
            old, self._log, self._log_key = self._log, None, key
            if old is not None:
                old.detach()
            try:
                from kite_lab.log.build import build_call_log

                self._log = build_call_log(settings, self._parts.event_bus)
            except KiteError as exc:  # a wrong log setting never fails the call
                import warnings

                from kite_lab.log.stage import CallLogWarning

                warnings.warn(f"call log off: {exc}", CallLogWarning, stacklevel=2)
        return self._log

    async def generate(
        self, provider: LLMProvider, request: LLMRequest, *, cache: bool | None = None
    ) -> Completion:
        await self._check_kill_switch()
        cassette = self._parts.active_cassette()
        if cassette is None:
            return await self._generate(provider, request, cache)
        namespace = provider.cache_namespace(request)
        hit = cassette.lookup(request, namespace)  # CassetteMiss in replay mode
        if hit is not None:
            return self._replay(provider, namespace, request, hit)
        try:
            completion = await self._generate(provider, request, cache)
        except Exception as exc:
            cassette.record(request, namespace, error=exc, secrets=self._secrets())
            raise
        cassette.record(request, namespace, completion=completion, secrets=self._secrets())
        return completion

    async def _generate(
        self, provider: LLMProvider, request: LLMRequest, cache: bool | None
    ) -> Completion:
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
        self._answered(provider, request, completion, uuid.uuid4().hex, latency=0.0)
        return completion

    async def stream(
        self, provider: LLMProvider, request: LLMRequest, *, cache: bool | None = None
    ) -> AsyncIterator[StreamChunk]:
        """Stream chunks; a cache hit arrives as one chunk. The last chunk has the Completion."""
        await self._check_kill_switch()
        cassette = self._parts.active_cassette()
        if cassette is None:
            async for chunk in self._stream(provider, request, cache):
                yield chunk
            return
        namespace = provider.cache_namespace(request)
        hit = cassette.lookup(request, namespace)
        if hit is not None:
            async for text in hit.replay_chunks(cassette.speed):
                yield StreamChunk(text=text)
            yield StreamChunk(completion=self._replay(provider, namespace, request, hit, True))
            return
        recorder = cassette.recorder()
        try:
            async for chunk in self._stream(provider, request, cache):
                recorder.add(chunk)
                yield chunk
        except Exception as exc:
            cassette.record(request, namespace, error=exc, secrets=self._secrets())
            raise
        cassette.record(request, namespace, completion=recorder.completion,
                        chunks=recorder.chunks, secrets=self._secrets())

    async def _stream(
        self, provider: LLMProvider, request: LLMRequest, cache: bool | None
    ) -> AsyncIterator[StreamChunk]:
        store = self._parts.response_cache() if should_cache(request, cache) else None
        key = request.cache_key(provider.cache_namespace(request))
        if store is not None:
            stored = await store.aget(key)
            if stored is not None:
                completion = _from_cache(stored)
                self._answered(provider, request, completion, uuid.uuid4().hex, 0.0, stream=True)
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
            self._failed(provider, request, request_id, exc, started, stream=True)
            raise
        if final is None:  # a provider must end with a completion
            raise ProviderError("stream ended without a final completion", provider=provider.name)
        self._answered(provider, request, final, request_id, final.latency_s, stream=True)
        if store is not None:
            await store.aset(key, final.to_dict(), ttl=self._parts.cache_ttl)

    async def validated(
        self,
        provider: LLMProvider,
        request: LLMRequest,
        completion: Completion,
        *,
        cache: bool | None = None,
    ) -> Completion:
        """A ``schema=`` answer with ``.parsed`` set, after at most one repair call (through
        this pipeline, so it is cached, logged and accounted like the first);
        ``OutputValidationError`` when the repaired answer still does not fit."""
        from dataclasses import replace

        from kite_lab.structured.repair import parse_or_repair

        async def again(messages: list[Message]) -> Completion:
            retry = replace(request, messages=messages)
            return await self.generate(provider, retry, cache=cache)

        return await parse_or_repair(request.messages, request.schema, completion, again)

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
            self._failed(provider, request, request_id, exc, started)
            raise
        self._account(completion, provider, request, started)
        self._answered(provider, request, completion, request_id, completion.latency_s)
        return completion

    # -- replay and log stages ------------------------------------------------------------
    def _replay(
        self,
        provider: LLMProvider,
        namespace: str,
        request: LLMRequest,
        hit: Interaction,
        stream: bool = False,
    ) -> Completion:
        """Answer from a cassette: the recorded completion, or the recorded error raised."""
        request_id = uuid.uuid4().hex
        self._emit_request(provider, request, request_id)
        error = hit.error()
        if error is not None:
            event = self._emit_error(provider, request, request_id, error, None, hit.latency_s)
            self._log_call(provider, request, event, error=error, stream=stream, replayed=True)
            raise error
        completion = hit.completion()
        self._answered(provider, request, completion, request_id, completion.latency_s,
                       stream=stream, replayed=True)
        return completion

    def _answered(
        self,
        provider: LLMProvider,
        request: LLMRequest,
        completion: Completion,
        request_id: str,
        latency: float,
        *,
        stream: bool = False,
        replayed: bool = False,
    ) -> None:
        event = self._emit_response(
            completion, request_id=request_id, latency=latency, replayed=replayed
        )
        self._log_call(provider, request, event, completion=completion, stream=stream,
                       replayed=replayed)

    def _failed(
        self,
        provider: LLMProvider,
        request: LLMRequest,
        request_id: str,
        exc: BaseException,
        started: float,
        *,
        stream: bool = False,
    ) -> None:
        event = self._emit_error(provider, request, request_id, exc, started)
        if event is not None:
            self._log_call(provider, request, event, error=exc, stream=stream)

    def _log_call(
        self,
        provider: LLMProvider,
        request: LLMRequest,
        event: Event | None,
        *,
        completion: Completion | None = None,
        error: BaseException | None = None,
        stream: bool = False,
        replayed: bool = False,
    ) -> None:
        log = self.call_log
        if log is None or event is None:
            return
        data = event.data
        log.record_call(
            provider=provider.name,
            namespace=provider.cache_namespace(request),
            request=request,
            request_id=data["request_id"],
            context=data,
            completion=completion,
            error=error,
            latency_s=data.get("latency_s"),
            stream=stream,
            replayed=replayed,
        )

    def _secrets(self) -> list[str]:
        return self._parts.settings.secret_values()

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

    def _emit_response(
        self, completion: Completion, *, request_id: str, latency: float, replayed: bool = False
    ) -> Event:
        extra = {"replayed": True} if replayed else {}
        return self._parts.event_bus.emit(
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
            **extra,
        )

    def _emit_error(
        self,
        provider: LLMProvider,
        request: LLMRequest,
        request_id: str,
        exc: BaseException,
        started: float | None,
        latency: float | None = None,
    ) -> Event | None:
        if not isinstance(exc, Exception):  # cancellation / interrupt: not a provider error
            return None
        if started is not None:
            latency = time.perf_counter() - started
        return self._parts.event_bus.emit(
            "llm:error",
            provider=provider.name,
            model=request.model,
            request_id=request_id,
            error=type(exc).__name__,
            kite_error=isinstance(exc, KiteError),
            status=getattr(exc, "status", None),
            latency_s=latency,
        )


def _from_cache(stored: dict[str, Any]) -> Completion:
    """A cached answer: nothing was paid and no time spent at the provider for it."""
    completion = Completion.from_dict(stored)
    completion.cached = True
    completion.cost_usd = 0.0
    completion.latency_s = 0.0
    return completion
