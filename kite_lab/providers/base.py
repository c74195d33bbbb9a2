"""The one small interface every LLM provider implements.

A provider turns an ``LLMRequest`` into a ``Completion`` (``generate``) or a stream of
``StreamChunk`` whose last item carries the full Completion (``stream``). It does not
cache, count, time or price: the call pipeline does that for every provider alike.

Each provider declares:
- ``name`` and ``key_env`` (the variable holding its key, checked before any network call),
- ``capabilities`` (streaming, tools, system prompt handling, vision), refined per model by
  ``supports_images(model)``; ``check_request`` refuses what the model cannot take
  (``CapabilityError``) before any network call,
- ``Options``: a strict pydantic model of the generation parameters it accepts, so an
  unknown or invalid parameter is an ``InvalidParameter`` naming it, not an SDK TypeError.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kite_lab.core.errors import CapabilityError, InvalidParameter
from kite_lab.core.runner import PerLoop
from kite_lab.core.types import Completion, Message, StreamChunk, ToolSpec, canonical_json

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.structured.schema import OutputSchema

__all__ = ["BaseOptions", "Capabilities", "LLMProvider", "LLMRequest"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    streaming: bool = True
    tools: bool = True
    #: "field": a separate system parameter (Anthropic); "message": a system message (OpenAI)
    system_prompt: str = "message"
    native_tool_calls: bool = True
    #: images in messages (some models of the provider may still lack it: supports_images)
    vision: bool = False


class BaseOptions(BaseModel):
    """Parameters every provider accepts. Subclasses add their own; unknown names fail."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0)
    stop: list[str] | None = None


@dataclass(slots=True)
class LLMRequest:
    """Everything that determines a model's answer (and so the cache key)."""

    model: str
    messages: list[Message]
    system: str | None = None
    tools: list[ToolSpec] = field(default_factory=list)
    tool_choice: str | dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: the structured answer asked for (``schema=``); providers ask for it natively
    schema: OutputSchema | None = None

    def fingerprint_fields(self, provider: str) -> dict[str, Any]:
        fields = {
            "provider": provider,
            "model": self.model,
            "system": self.system,
            # images appear as references with their sha256, so they key the cache too
            "messages": [m.to_dict() for m in self.messages],
            "tools": [t.to_dict() for t in self.tools],
            "tool_choice": self.tool_choice,
            "params": self.params,
        }
        if self.schema is not None:
            fields["schema"] = self.schema.fingerprint()
        return fields

    @property
    def has_images(self) -> bool:
        return any(m.images for m in self.messages)

    def cache_key(self, provider: str) -> str:
        """sha256 of canonical JSON of every field that can change the answer."""
        import hashlib

        payload = canonical_json(self.fingerprint_fields(provider))
        return "llm:" + hashlib.sha256(payload.encode("utf-8")).hexdigest()


class LLMProvider(ABC):
    """Base class of LLM providers; register subclasses with ``register_provider``."""

    name: ClassVar[str]
    #: environment variable holding the API key; None for keyless providers
    key_env: ClassVar[str | None] = None
    default_model: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    Options: ClassVar[type[BaseOptions]] = BaseOptions

    def __init__(self, settings: KiteSettings) -> None:
        self.settings = settings

    # -- what subclasses implement -------------------------------------------------
    @abstractmethod
    async def generate(self, request: LLMRequest) -> Completion:
        """One call; ``usage``, ``text``, ``tool_calls``, ``finish_reason`` filled in."""

    @abstractmethod
    def stream(self, request: LLMRequest) -> AsyncIterator[StreamChunk]:
        """Text chunks as they arrive; the last chunk has ``completion`` set."""

    def cache_namespace(self, request: LLMRequest) -> str:
        """What, besides the request, decides the answer: part of the response-cache key."""
        return self.name

    #: SDK clients, one per event loop (set by subclasses that use one)
    _clients: PerLoop[Any] | None = None

    def load_sdk(self) -> None:
        """Import the provider's SDK and what its first call would load; idempotent.

        Sync and thread-safe, so a caller can do it before the first call (``create_agent``)
        or in a worker thread (the service's warm-up) instead of on the event loop in the
        middle of the first requests. Providers without an SDK do nothing.
        """
        return None

    def _client(self) -> Any:
        """The SDK client of the running event loop (built on its first call)."""
        if self._clients is None:
            raise RuntimeError(f"{type(self).__name__} sets no SDK clients (_clients)")
        return self._clients.get()

    async def aclose(self) -> None:
        """Close the SDK clients of every event loop still alive."""
        if self._clients is None:
            return
        for client in self._clients.instances():
            try:
                await client.close()
            except RuntimeError:  # its loop is gone; nothing left to close
                pass
        self._clients.clear()

    # -- shared behaviour ------------------------------------------------------------
    def supports_images(self, model: str) -> bool:
        """Whether ``model`` takes images; providers with vision refine it per model."""
        return self.capabilities.vision

    def check_request(self, request: LLMRequest) -> None:
        """``CapabilityError`` before any call when the model cannot take the request."""
        if request.has_images and not self.supports_images(request.model):
            raise CapabilityError(
                f"model {request.model!r} does not take images (text only); use a vision "
                f"model of {self.name} or another provider, or remove images=",
                provider=self.name,
                model=request.model,
                capability="images",
            )

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``params`` against ``Options``; return them with None values dropped."""
        try:
            options = self.Options.model_validate(dict(params))
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                if err["type"] == "extra_forbidden":
                    problems.append(f"unknown parameter {loc!r}")
                else:
                    problems.append(f"{loc}: {err['msg']}")
            allowed = ", ".join(sorted(self.Options.model_fields))
            raise InvalidParameter(
                f"{'; '.join(problems)}. Parameters {self.name} accepts: {allowed}",
                provider=self.name,
            ) from None
        return options.model_dump(exclude_none=True)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "default_model": self.default_model,
            "key_env": self.key_env,
            "capabilities": self.capabilities,
            "parameters": sorted(self.Options.model_fields),
        }


def fit_to_signature(method: Any, payload: dict[str, Any]) -> dict[str, Any]:
    """Move parameters the SDK method does not declare into ``extra_body``.

    SDKs add and drop keyword arguments between versions (anthropic 2.x dropped
    ``temperature`` from ``messages.create``); the HTTP API still takes them in the body.
    """
    accepted = _declared_kwargs(getattr(method, "__func__", method))
    extra = {k: payload.pop(k) for k in list(payload) if k not in accepted}
    if extra:
        payload["extra_body"] = {**payload.get("extra_body", {}), **extra}
    return payload


@functools.lru_cache(maxsize=64)
def _declared_kwargs(method: Any) -> frozenset[str]:
    import inspect

    return frozenset(inspect.signature(method).parameters)


def split_system(
    messages: Sequence[Message], system: str | None
) -> tuple[str | None, list[Message]]:
    """Pull system messages out of ``messages`` and join them with ``system``."""
    parts = [system] if system else []
    rest = []
    for message in messages:
        if message.role == "system":
            parts.append(message.content)
        else:
            rest.append(message)
    return ("\n\n".join(parts) if parts else None), rest
