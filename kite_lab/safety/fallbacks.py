"""Fallback models: when a model cannot answer, the next one in its chain does.

    KITE_FALLBACKS="openai/gpt-4o-mini=anthropic/claude-3-5-haiku-latest,local/smollm2-135m-instruct"
    ai.generate("...", model="openai/gpt-4o-mini", fallbacks=["anthropic/claude-3-5-haiku-latest"])

Why this module exists, and what it refuses to do (LiteLLM users' complaints were
fallbacks that silently failed or silently answered with the wrong kind of model):

- a fallback is tried only when the model before it *could not* answer: its breaker is
  open, or the call failed with a class in ``FALLBACK_ERRORS`` (5xx, timeout, unreachable,
  429, a malformed answer). A wrong request (400), a bad key (401) or the kill switch
  never moves on: another model would hide the real problem;
- a fallback that cannot do what the call needs (tools, images, a JSON schema, the
  prompt's size against its context window, a parameter it does not accept) or whose
  provider is not configured here is skipped, and the reason is logged
  (``fallback_skipped``) and emitted as an event;
- the answer always says who answered (``Completion.provider`` / ``.model``), and the
  switch is logged (``fallback_used``) with the error that caused it.

When no target answers, the error of the last one tried is raised.

Lives in ``safety`` (beside the breaker it reacts to); it names the facade only through
the ``FallbackHost`` protocol, so the arrows stay one-way (kite -> safety).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from kite_lab.core.errors import (
    CapabilityError,
    CircuitBreakerError,
    ConfigError,
    InvalidParameter,
    MalformedResponse,
    ProviderConnectionError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
)

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus
    from kite_lab.core.types import Completion
    from kite_lab.providers.base import LLMProvider

__all__ = [
    "FALLBACK_ERRORS",
    "FallbackHost",
    "Needs",
    "chain_for",
    "context_window",
    "first_that_answers",
    "generate_with_fallbacks",
    "parse_fallbacks",
    "should_fall_back",
    "unfit_reason",
]

log = logging.getLogger("kite_lab.fallbacks")
T = TypeVar("T")

#: failures after which the next model is tried (the breaker-open one included)
FALLBACK_ERRORS: tuple[type[BaseException], ...] = (
    CircuitBreakerError,
    ServerError,
    ProviderTimeout,
    ProviderConnectionError,
    RateLimitError,
    MalformedResponse,
)

#: context windows (tokens) by ``provider/model`` prefix; the longest matching prefix wins.
#: A model not listed is not checked (a guess would skip good fallbacks).
CONTEXT_WINDOWS: dict[str, int] = {
    "openai/gpt-4o": 128_000,
    "openai/gpt-4.1": 1_047_576,
    "openai/gpt-4-turbo": 128_000,
    "openai/gpt-4": 8_192,
    "openai/gpt-3.5-turbo": 16_385,
    "openai/o1": 200_000,
    "openai/o3": 200_000,
    "openai/o4": 200_000,
    "anthropic/claude": 200_000,
    "groq/llama-3.3-70b": 131_072,
    "groq/llama-3.1-8b": 131_072,
    "groq/mixtral-8x7b-32768": 32_768,
}
#: providers that accept image parts when their capabilities say nothing about images
_IMAGE_PROVIDERS = frozenset({"openai", "anthropic"})
#: rough size of one image in a prompt, in tokens (for the context-window check only)
_IMAGE_TOKENS = 800
#: answer length assumed when the call sets no max_tokens
_DEFAULT_ANSWER_TOKENS = 256


class FallbackHost(Protocol):
    """What the fallback logic needs from the facade (``Kite`` provides it)."""

    @property
    def settings(self) -> KiteSettings: ...

    @property
    def event_bus(self) -> EventBus: ...

    def resolve(self, model: str | None = None) -> tuple[str, str]: ...

    def provider(self, name: str | None = None) -> LLMProvider: ...

    async def agenerate(
        self, prompt: str | None = None, *, cache: bool | None = None, **kwargs: Any
    ) -> Completion: ...


# -- configuration --------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def parse_fallbacks(value: str | None) -> dict[str, tuple[str, ...]]:
    """``"a=b,c; d=e"`` -> ``{"a": ("b", "c"), "d": ("e",)}`` (``*``: any other model)."""
    chains: dict[str, tuple[str, ...]] = {}
    for item in (value or "").split(";"):
        item = item.strip()
        if not item:
            continue
        primary, sep, rest = item.partition("=")
        targets = tuple(t.strip() for t in rest.split(",") if t.strip())
        if not sep or not primary.strip() or not targets:
            raise ConfigError(
                f"KITE_FALLBACKS: {item!r} is not MODEL=FALLBACK[,FALLBACK...]; e.g. "
                "openai/gpt-4o-mini=anthropic/claude-3-5-haiku-latest,local/smollm2-135m-instruct"
                " (separate several chains with ';')"
            )
        chains[primary.strip()] = targets
    return chains


def canonical(host: FallbackHost, model: str | None) -> str:
    """``provider/model`` for any model id the facade accepts (bare, None, provider/model)."""
    provider, name = host.resolve(model)
    return f"{provider}/{name}"


def chain_for(host: FallbackHost, model: str | None) -> tuple[str, ...]:
    """The KITE_FALLBACKS chain of ``model`` (its canonical id, its id as written, or ``*``)."""
    chains = parse_fallbacks(host.settings.kite_fallbacks)
    if not chains:
        return ()
    if model is not None and model in chains:
        return chains[model]
    wanted = canonical(host, model)
    for key, targets in chains.items():
        if key != "*" and (key == wanted or ("/" not in key and canonical(host, key) == wanted)):
            return targets
    return chains.get("*", ())


# -- what a call needs, and whether a target can do it ------------------------------------


@dataclass(frozen=True, slots=True)
class Needs:
    """What a call asks of the model answering it."""

    tools: bool = False
    images: bool = False
    schema: bool = False
    #: rough size of the prompt in tokens (characters / 4, images at a flat rate)
    prompt_tokens: int = 0
    max_tokens: int | None = None

    @classmethod
    def of_call(cls, prompt: str | None, kwargs: Mapping[str, Any]) -> Needs:
        """Read the needs off ``ai.generate``'s arguments."""
        chars, images = len(prompt or ""), len(kwargs.get("images") or ())
        chars += len(kwargs.get("system") or "")
        for message in kwargs.get("messages") or ():
            chars += len(_attr(message, "content") or "")
            images += len(_attr(message, "images") or ())
        tools = list(kwargs.get("tools") or ())
        if tools:
            chars += len(json.dumps([_tool_schema(t) for t in tools], default=str))
        response_format = kwargs.get("response_format")
        schema = kwargs.get("schema") is not None or (
            isinstance(response_format, Mapping) and response_format.get("type") == "json_schema"
        )
        max_tokens = kwargs.get("max_tokens")
        return cls(
            tools=bool(tools) and kwargs.get("tool_choice") != "none",
            images=images > 0,
            schema=schema,
            prompt_tokens=chars // 4 + images * _IMAGE_TOKENS,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )


def _attr(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)


def _tool_schema(tool: Any) -> Any:
    spec = getattr(tool, "spec", tool)
    return _attr(spec, "parameters") or _attr(spec, "function") or _attr(spec, "name")


def context_window(model_id: str) -> int | None:
    """The context window of ``provider/model`` in tokens, when known."""
    provider, _, name = model_id.partition("/")
    if provider == "local":
        from kite_lab.providers.local_model import N_CTX

        return N_CTX
    best: tuple[int, int] | None = None
    for prefix, window in CONTEXT_WINDOWS.items():
        if model_id.startswith(prefix) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), window)
    return best[1] if best else None


def _capability(provider: LLMProvider, *names: str, default: bool) -> bool:
    """The first capability flag among ``names`` the provider declares, else ``default``."""
    caps = provider.capabilities
    for name in names:
        value = getattr(caps, name, None)
        if isinstance(value, bool):
            return value
    return default


def _takes_images(provider: LLMProvider, model: str) -> bool:
    check = getattr(provider, "supports_images", None)
    if callable(check):
        return bool(check(model))
    return _capability(provider, "vision", default=provider.name in _IMAGE_PROVIDERS)


def unfit_reason(host: FallbackHost, target: str, needs: Needs) -> str | None:
    """Why ``target`` cannot answer a call with ``needs`` (None: it can)."""
    try:
        provider_name, model = host.resolve(target)
        provider = host.provider(provider_name)
    except ConfigError as exc:  # unknown provider, no key, no local model on this machine
        return f"not configured here ({type(exc).__name__}: {exc})"
    if needs.tools and not _capability(provider, "tools", default=True):
        return f"{provider_name} does not support tools"
    if needs.images and not _takes_images(provider, model):
        return f"{provider_name}/{model} does not take images"
    if needs.schema and not _capability(
        provider, "json_schema", "structured_output", "schema", default=True
    ):
        return f"{provider_name} does not support a JSON schema answer"
    window = context_window(f"{provider_name}/{model}")
    answer = needs.max_tokens or _DEFAULT_ANSWER_TOKENS
    if window is not None and needs.prompt_tokens + answer > window:
        return (
            f"the prompt (~{needs.prompt_tokens} tokens) plus {answer} answer tokens does not "
            f"fit its context window of {window} tokens"
        )
    return None


def should_fall_back(exc: BaseException) -> bool:
    """Whether the next model may be tried after ``exc``."""
    return isinstance(exc, FALLBACK_ERRORS)


# -- trying targets in order ----------------------------------------------------------------


async def first_that_answers(
    host: FallbackHost,
    targets: Sequence[str | None],
    needs: Needs,
    attempt: Callable[[str | None], Awaitable[T]],
) -> T:
    """``attempt(target)`` for each target in turn until one returns.

    The first target is the one the caller asked for: it is always tried. The others are
    checked with ``unfit_reason`` first and skipped (logged) when they cannot do the call.
    Only a ``should_fall_back`` error moves on; any other is raised at once.
    """
    last_error: BaseException | None = None
    failed: str | None = None
    for index, target in enumerate(targets):
        if index > 0:
            assert target is not None
            reason = unfit_reason(host, target, needs)
            if reason is not None:
                _report(host, "fallback_skipped", target=target, reason=reason)
                continue
            _report(
                host,
                "fallback_used",
                target=target,
                after=failed,
                error=type(last_error).__name__ if last_error else None,
            )
        try:
            return await attempt(target)
        except (InvalidParameter, CapabilityError) as exc:
            if index == 0:
                raise
            # refused before any network call: this fallback cannot take the request
            _report(host, "fallback_skipped", target=target, reason=str(exc))
            if index == len(targets) - 1 and last_error is not None:
                raise last_error from None
            continue
        except Exception as exc:
            if not should_fall_back(exc) or index == len(targets) - 1:
                raise
            last_error, failed = exc, target or canonical(host, None)
    assert last_error is not None  # every fallback was skipped: the primary's error
    raise last_error


def _report(host: FallbackHost, event: str, **fields: Any) -> None:
    level = logging.WARNING if event == "fallback_skipped" else logging.INFO
    log.log(level, event, extra={"event": event, **fields})
    host.event_bus.emit(event.replace("_", ":", 1), **fields)


async def generate_with_fallbacks(
    host: FallbackHost,
    prompt: str | None,
    fallbacks: Sequence[str] | None,
    *,
    cache: bool | None = None,
    **kwargs: Any,
) -> Completion:
    """``host.agenerate`` on the requested model, then on ``fallbacks`` (None: KITE_FALLBACKS).

    Each attempt is a whole ``agenerate`` (cache, breaker, kill switch, schema handling)
    with ``model=`` the target and no further fallbacks.
    """
    model = kwargs.pop("model", None)
    chain = tuple(fallbacks) if fallbacks is not None else chain_for(host, model)
    needs = Needs.of_call(prompt, kwargs) if chain else Needs()

    async def attempt(target: str | None) -> Completion:
        return await host.agenerate(prompt, cache=cache, fallbacks=(), model=target, **kwargs)

    return await first_that_answers(host, (model, *chain), needs, attempt)
