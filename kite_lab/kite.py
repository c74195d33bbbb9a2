"""The ``Kite`` facade: one object that notebooks, scripts and the service all use.

Components (providers, breakers, cache, idempotency, kill switch, embeddings, vector and
session memory) are built on first use, so ``Kite()`` loads no heavy package. Settings
are read on first use too, unless ``config=`` is given, which is validated at once.

Every method has an async form (``acomplete``) and a sync form (``complete``). The sync
form runs the async one on kite_lab's background loop, so it also works inside Jupyter's
running loop. Every LLM call goes through ``kite_lab.pipeline.CallPipeline``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from kite_lab.agent_methods import AgentMethods
from kite_lab.batch.methods import BatchMethods
from kite_lab.core.errors import ConfigError
from kite_lab.core.events import EventBus
from kite_lab.core.runner import iterate_sync, run_sync
from kite_lab.evals.methods import EvalMethods
from kite_lab.replay.methods import RecordingMethods
from kite_lab.structured.methods import StructuredMethods

if TYPE_CHECKING:
    from pathlib import Path

    from kite_lab.agents.base import Agent
    from kite_lab.agents.tools import Tool
    from kite_lab.core.config import KiteConfig, KiteSettings
    from kite_lab.core.types import Completion, Message, StreamChunk, ToolSpec
    from kite_lab.memory.cache import ResponseCache
    from kite_lab.memory.documents import LoadSummary, ProgressCallback
    from kite_lab.memory.sessions import SessionStore
    from kite_lab.memory.vector import VectorMemory
    from kite_lab.pipeline import CallPipeline
    from kite_lab.providers.base import LLMProvider, LLMRequest
    from kite_lab.providers.embeddings import EmbeddingProvider
    from kite_lab.safety.breaker import CircuitBreaker
    from kite_lab.safety.idempotency import IdempotencyManager
    from kite_lab.safety.kill_switch import KillSwitch

__all__ = ["Kite"]

_T = TypeVar("_T")

# Which settings each lazily built component is made from: changing one rebuilds it.
_COMPONENT_KEYS: dict[str, tuple[str, ...]] = {
    "providers": ("llm_", "openai_", "anthropic_", "groq_", "ollama_", "local_model_path"),
    "breakers": ("breaker_backend", "redis_url", "kite_redis_prefix"),
    "cache": ("cache_", "redis_url", "kite_redis_prefix"),
    "idempotency": ("idempotency_", "redis_url", "kite_redis_prefix"),
    "kill_switch": ("breaker_backend", "redis_url", "kite_redis_prefix"),
    "embeddings": ("embedding_", "fastembed_cache_path", "vector_dimension", "kite_home"),
    "vector_memory": ("embedding_", "vector_", "kite_home"),
    "session_memory": ("postgres_url", "kite_home"),
}


class Kite(AgentMethods, BatchMethods, StructuredMethods, RecordingMethods, EvalMethods):
    """Build, run and inspect LLM calls and agents.

    >>> ai = Kite()                                  # settings from env / .env
    >>> ai = Kite(config={"llm_provider": "local"})  # overrides, validated now
    >>> ai.complete("What is the capital of France? Answer in one sentence.")
    """

    def __init__(
        self, config: Mapping[str, Any] | None = None, *, env_file: str | None = ".env"
    ) -> None:
        self._overrides = dict(config or {})
        self._env_file = env_file
        self._settings: KiteSettings | None = None
        self._config: KiteConfig | None = None
        self._lock = threading.RLock()
        self._components: dict[str, object] = {}
        self._providers: dict[str, LLMProvider] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._pipeline: CallPipeline | None = None
        #: agents made by ``create_agent``, by name
        self.agents: dict[str, Agent] = {}
        self.event_bus = EventBus()
        if self._overrides:
            self._load_settings()

    # -- settings ------------------------------------------------------------------
    def _load_settings(self) -> KiteSettings:
        with self._lock:
            if self._settings is None:
                from kite_lab.core.config import KiteConfig, load_settings

                self._settings = load_settings(self._overrides, env_file=self._env_file)
                self._config = KiteConfig(self._settings, on_change=self._config_changed)
            return self._settings

    @property
    def settings(self) -> KiteSettings:
        return self._settings or self._load_settings()

    @property
    def config(self) -> KiteConfig:
        """Dict-like settings: ``ai.config['cache_backend'] = 'redis'`` (validated)."""
        self._load_settings()
        assert self._config is not None
        return self._config

    def _config_changed(self, key: str) -> None:
        with self._lock:
            if key in ("circuit_breaker_threshold", "circuit_breaker_timeout"):
                for breaker in self._breakers.values():  # keep their state, change limits
                    if key == "circuit_breaker_threshold":
                        breaker.config.failure_threshold = self.settings.circuit_breaker_threshold
                    else:
                        breaker.config.timeout_seconds = self.settings.circuit_breaker_timeout
            for component, prefixes in _COMPONENT_KEYS.items():
                if any(key.startswith(p) for p in prefixes):
                    self._drop(component)

    def _drop(self, component: str) -> None:
        if component == "providers":
            self._providers.clear()
        elif component == "breakers":
            self._breakers.clear()
        else:
            dropped = self._components.pop(component, None)
            close = getattr(dropped, "close", None)
            if callable(close) and component in ("vector_memory", "session_memory"):
                close()  # release file locks and pooled connections of the old store

    def _component(self, name: str, build: Callable[[], _T]) -> _T:
        component = self._components.get(name)
        if component is None:
            with self._lock:
                component = self._components.get(name)
                if component is None:
                    component = build()
                    self._components[name] = component
        return cast(_T, component)

    # -- providers -----------------------------------------------------------------
    def resolve(self, model: str | None = None) -> tuple[str, str]:
        """``(provider, model)`` that would answer a call with ``model``."""
        from kite_lab.providers.registry import resolve_model

        return resolve_model(model, self.settings)

    @property
    def provider_name(self) -> str:
        """The provider answering calls that name no model."""
        return self.resolve()[0]

    def provider(self, name: str | None = None) -> LLMProvider:
        """The provider instance called ``name`` (default: the configured one)."""
        name = name or self.provider_name
        instance = self._providers.get(name)
        if instance is None:
            with self._lock:
                instance = self._providers.get(name)
                if instance is None:
                    from kite_lab.providers.registry import provider_class

                    instance = provider_class(name)(self.settings)
                    self._providers[name] = instance
        return instance

    @property
    def llm(self) -> LLMProvider:
        return self.provider()

    # -- safety components -------------------------------------------------------------
    def breaker_for(self, provider: str) -> CircuitBreaker:
        """The circuit breaker protecting ``provider`` (one per provider)."""
        breaker = self._breakers.get(provider)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(provider)
                if breaker is None:
                    from kite_lab.safety.breaker import build_breaker

                    breaker = build_breaker(provider, self.settings, self.event_bus)
                    self._breakers[provider] = breaker
        return breaker

    @property
    def circuit_breaker(self) -> CircuitBreaker:
        """The default provider's breaker (``ai.circuit_breaker.state.value``)."""
        return self.breaker_for(self.provider_name)

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """Every breaker built so far, by provider (the default one included)."""
        self.circuit_breaker  # noqa: B018 - builds the default breaker
        return dict(self._breakers)

    def response_cache(self) -> ResponseCache | None:
        """The response cache, or None when CACHE_BACKEND=none."""
        return self._component("cache", self._build_cache) or None

    def _build_cache(self) -> ResponseCache | Literal[False]:
        from kite_lab.memory.cache import build_cache

        return build_cache(self.settings, self.event_bus) or False  # False: built, disabled

    @property
    def cache(self) -> ResponseCache:
        cache = self.response_cache()
        if cache is None:
            raise ConfigError(
                "the response cache is off (CACHE_BACKEND=none); set it to memory or redis"
            )
        return cache

    @property
    def cache_ttl(self) -> int:
        return self.settings.cache_ttl

    @property
    def idempotency(self) -> IdempotencyManager:
        from kite_lab.safety.idempotency import build_idempotency

        return self._component(
            "idempotency", lambda: build_idempotency(self.settings, self.event_bus)
        )

    @property
    def kill_switch(self) -> KillSwitch:
        from kite_lab.safety.kill_switch import build_kill_switch

        return self._component(
            "kill_switch", lambda: build_kill_switch(self.settings, self.event_bus)
        )

    # -- the call pipeline ---------------------------------------------------------------
    @property
    def pipeline(self) -> CallPipeline:
        if self._pipeline is None:
            from kite_lab.pipeline import CallPipeline

            self._pipeline = CallPipeline(self)
        return self._pipeline

    def build_request(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message | Mapping[str, Any]] | None = None,
        model: str | None = None,
        system: str | None = None,
        tools: Iterable[Tool | ToolSpec | Mapping[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] | None = None,
        schema: Any = None,
        images: Iterable[Any] | None = None,
        **params: Any,
    ) -> tuple[LLMProvider, LLMRequest]:
        """Resolve the provider and validate everything before any network call
        (``schema=`` and ``images=``: see ``kite_lab.structured.call``)."""
        from kite_lab.core.types import Message
        from kite_lab.providers.base import LLMRequest

        if (prompt is None) == (messages is None):
            raise TypeError("pass either a prompt or messages=")
        if prompt is not None:
            if not isinstance(prompt, str):
                raise TypeError(f"prompt must be str, not {type(prompt).__name__}")
            if not prompt.strip():
                raise ValueError("prompt is empty; pass the text to send to the model")
            message_list = [Message("user", prompt)]
        else:
            message_list = [Message.from_any(m) for m in messages or ()]
            if not message_list:
                raise ValueError("messages is empty; pass at least one {'role': 'user', ...}")
        output = None
        if schema is not None or images is not None:
            from kite_lab.structured.call import prepare_call

            message_list, output = prepare_call(message_list, schema, images, tools, params)
        provider_name, model_name = self.resolve(model)
        provider = self.provider(provider_name)
        request = LLMRequest(
            model=model_name,
            messages=message_list,
            system=system,
            tools=[_tool_spec(t) for t in tools or ()],
            tool_choice=tool_choice,
            params=provider.validate_params(params),
            schema=output,
        )
        provider.check_request(request)
        return provider, request

    async def agenerate(
        self, prompt: str | None = None, *, cache: bool | None = None,
        fallbacks: Sequence[str] | None = None, **kwargs: Any
    ) -> Completion:
        """One call through the pipeline; the full ``Completion`` (text, usage, cost...).
        ``fallbacks``: models tried when this one fails retryably (None: KITE_FALLBACKS)."""
        if fallbacks or (fallbacks is None and self.settings.kite_fallbacks):
            from kite_lab.safety.fallbacks import generate_with_fallbacks as with_fallbacks
            return await with_fallbacks(self, prompt, fallbacks, cache=cache, **kwargs)
        provider, request = self.build_request(prompt, **kwargs)
        completion = await self.pipeline.generate(provider, request, cache=cache)
        if request.schema is not None:
            completion = await self.pipeline.validated(provider, request, completion, cache=cache)
        return completion

    def generate(self, prompt: str | None = None, **kwargs: Any) -> Completion:
        return run_sync(self.agenerate(prompt, **kwargs))

    async def acomplete(self, prompt: str, **kwargs: Any) -> str:
        return (await self.agenerate(prompt, **kwargs)).text

    def complete(self, prompt: str, **kwargs: Any) -> str:
        """The model's answer to ``prompt`` as text (params: temperature, max_tokens, ...)."""
        return run_sync(self.acomplete(prompt, **kwargs))

    async def achat(self, messages: Sequence[Message | Mapping[str, Any]], **kwargs: Any) -> str:
        return (await self.agenerate(messages=messages, **kwargs)).text

    def chat(self, messages: Sequence[Message | Mapping[str, Any]], **kwargs: Any) -> str:
        """Answer a conversation given as ``[{"role": "user", "content": ...}, ...]``."""
        return run_sync(self.achat(messages, **kwargs))

    async def astream_chunks(
        self, prompt: str | None = None, *, cache: bool | None = None, **kwargs: Any
    ) -> AsyncIterator[StreamChunk]:
        """Stream chunks; the last one carries the ``Completion`` (usage, cost, latency;
        with ``schema=``, ``.parsed``: a failed answer is repaired in one unstreamed call)."""
        provider, request = self.build_request(prompt, **kwargs)
        async for chunk in self.pipeline.stream(provider, request, cache=cache):
            if chunk.completion is not None and request.schema is not None:
                chunk.completion = await self.pipeline.validated(
                    provider, request, chunk.completion, cache=cache
                )
            yield chunk

    async def astream(self, prompt: str | None = None, **kwargs: Any) -> AsyncIterator[str]:
        """The answer as text pieces, as the model writes them."""
        async for chunk in self.astream_chunks(prompt, **kwargs):
            if chunk.text:
                yield chunk.text

    def stream(self, prompt: str | None = None, **kwargs: Any) -> Iterator[str]:
        return iterate_sync(self.astream(prompt, **kwargs))

    # -- memory ----------------------------------------------------------------------
    @property
    def embeddings(self) -> EmbeddingProvider:
        from kite_lab.providers.embeddings import build_embeddings

        return self._component("embeddings", lambda: build_embeddings(self.settings))

    def embed(self, text: str) -> list[float]:
        return self.embeddings.embed(text)

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embeddings.embed_batch(texts)

    @property
    def vector_memory(self) -> VectorMemory:
        from kite_lab.memory.vector import build_vector_memory

        return self._component(
            "vector_memory",
            lambda: build_vector_memory(self.settings, self.embeddings, self.event_bus),
        )

    @property
    def session_memory(self) -> SessionStore:
        from kite_lab.memory.sessions import build_session_store

        return self._component(
            "session_memory", lambda: build_session_store(self.settings, self.event_bus)
        )

    def load_document(
        self,
        path: str | Path,
        doc_id: str | None = None,
        progress: bool | ProgressCallback = True,
    ) -> LoadSummary:
        """Load a file or a directory into vector memory; returns a summary."""
        from kite_lab.memory.documents import load_document

        return load_document(self.vector_memory, path, doc_id=doc_id, progress=progress)

    # -- agents: see agent_methods.AgentMethods ---------------------------------------
    def _prepare_calls(self, model: str | None) -> None:
        """Load now what the first model call would load (registry entry points, provider,
        its SDK, breaker, kill switch, pipeline), so it does not run on the event loop
        while the first hundred runs wait for it. Best effort: a missing key or provider
        still fails the run, as before, not the creation."""
        from kite_lab.core.errors import KiteError

        try:
            provider = self.provider(self.resolve(model)[0])
            provider.load_sdk()
            self.breaker_for(provider.name)
            self.kill_switch  # noqa: B018 - builds it
            self.pipeline  # noqa: B018
        except (KiteError, ImportError):
            pass

    # -- lifecycle ---------------------------------------------------------------------
    async def aclose(self) -> None:
        """Close network clients and stores; the object can be used again afterwards."""
        for provider in list(self._providers.values()):
            await provider.aclose()
        for component in list(self._components.values()):
            closer = getattr(component, "aclose", None)
            if closer is not None:
                await closer()
        log = self._pipeline.call_log if self._pipeline is not None else None
        if log is not None:  # what this Kite logged is on disk when close() returns
            import asyncio  # here: asyncio costs `import kite_lab` ~35 ms

            await asyncio.to_thread(log.flush)

    def close(self) -> None:
        run_sync(self.aclose())

    def __enter__(self) -> Kite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._settings is None:
            return "Kite(settings not loaded yet)"
        s = self._settings
        return f"Kite(llm_provider={s.llm_provider!r}, llm_model={s.llm_model!r})"


def _tool_spec(tool: Any) -> ToolSpec:
    """Accept ToolSpec, a Tool (anything with ``.spec``) or a dict with name/parameters."""
    from kite_lab.core.types import ToolSpec

    if isinstance(tool, ToolSpec):
        return tool
    spec = getattr(tool, "spec", None)
    if isinstance(spec, ToolSpec):
        return spec
    if isinstance(tool, Mapping) and "name" in tool:
        return ToolSpec(
            name=tool["name"],
            description=tool.get("description", ""),
            parameters=tool.get("parameters") or {"type": "object", "properties": {}},
        )
    raise TypeError(f"cannot use {tool!r} as a tool; pass ToolSpec, a kite_lab Tool or a dict")
