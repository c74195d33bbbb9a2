"""The plain data every layer exchanges: messages, tool calls, completions, run results.

Dataclasses, not pydantic models: they are created on every call and must stay cheap.
Each has ``to_dict``/``from_dict`` so caches, traces and the service can serialize them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "ROLES",
    "Completion",
    "ImagePart",
    "Message",
    "Role",
    "RunResult",
    "StreamChunk",
    "ToolCall",
    "ToolCallRecord",
    "ToolSpec",
    "Usage",
    "canonical_json",
]

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call proposed by a model, the same for every wire format."""

    id: str
    name: str
    arguments: dict[str, Any]
    #: the raw argument text when the model sent something that is not a JSON object
    raw_arguments: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(
            id=data["id"],
            name=data["name"],
            arguments=dict(data.get("arguments") or {}),
            raw_arguments=data.get("raw_arguments"),
        )


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as offered to a model: name, description and a JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image sent with a message: its bytes (or an http(s) URL) and where it came from.

    ``to_dict`` is a *reference* (source, media type, size, sha256), never the bytes: the
    cache key, traces and session history use it, so no base64 blob is stored or logged.
    Build one with ``kite_lab.structured.images.load_image`` (paths, bytes, PIL, URLs).
    """

    media_type: str
    data: bytes | None = None
    url: str | None = None
    #: what the user passed, for messages and history: a path, a URL, "bytes", "PIL image"
    source: str = ""

    @property
    def sha256(self) -> str | None:
        if self.data is None:
            return None
        import hashlib

        return hashlib.sha256(self.data).hexdigest()

    def base64(self) -> str:
        """The bytes as base64 text (Anthropic's ``source.data``)."""
        import base64

        if self.data is None:
            raise ValueError(f"image {self.source!r} has no bytes (it is a URL or a reference)")
        return base64.b64encode(self.data).decode("ascii")

    def data_url(self) -> str:
        """``data:<type>;base64,...`` (or the http(s) URL): OpenAI's ``image_url.url``."""
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.base64()}"

    def to_dict(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"source": self.source, "media_type": self.media_type}
        if self.url is not None:
            ref["url"] = self.url
        if self.data is not None:
            ref["bytes"] = len(self.data)
            ref["sha256"] = self.sha256
        return ref

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagePart:
        """A reference back (a URL image can be sent again; a bytes image cannot)."""
        return cls(
            media_type=str(data.get("media_type") or "image/png"),
            url=data.get("url"),
            source=str(data.get("source") or data.get("url") or ""),
        )


@dataclass(slots=True)
class Message:
    role: Role
    content: str = ""
    name: str | None = None
    #: for role "tool": the id of the call this message answers
    tool_call_id: str | None = None
    #: for role "assistant": calls the model made in this turn
    tool_calls: list[ToolCall] = field(default_factory=list)
    #: images sent with this (user) message
    images: list[ImagePart] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise TypeError(f"message content must be str, not {type(self.content).__name__}")
        for image in self.images:
            if not isinstance(image, ImagePart):
                raise TypeError(
                    f"message images must be ImagePart objects, not {type(image).__name__}; "
                    "pass images=[...] to ai.generate, which loads paths, bytes and URLs"
                )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name:
            data["name"] = self.name
        if self.tool_call_id:
            data["tool_call_id"] = self.tool_call_id
        if self.tool_calls:
            data["tool_calls"] = [call.to_dict() for call in self.tool_calls]
        if self.images:  # references, never the bytes
            data["images"] = [image.to_dict() for image in self.images]
        return data

    @classmethod
    def from_any(cls, item: Message | Mapping[str, Any]) -> Message:
        """Accept a Message or an OpenAI-style dict ``{"role": ..., "content": ...}``."""
        if isinstance(item, Message):
            return item
        if not isinstance(item, Mapping):
            raise TypeError(f"messages must be dicts or Message objects, not {type(item).__name__}")
        calls = [ToolCall.from_dict(c) for c in item.get("tool_calls") or ()]
        images = [
            ImagePart.from_dict(i) if isinstance(i, Mapping) else i
            for i in item.get("images") or ()
        ]  # anything else fails in __post_init__ with what to pass instead
        return cls(
            role=item.get("role", "user"),
            content=item.get("content") or "",
            name=item.get("name"),
            tool_call_id=item.get("tool_call_id"),
            tool_calls=calls,
            images=images,
        )


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class Completion:
    """What one provider call produced, and what it cost."""

    text: str
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    #: USD; None when the model has no entry in the price table (never a guess)
    cost_usd: float | None = None
    latency_s: float = 0.0
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    cached: bool = False
    #: the validated answer of a ``schema=`` call (a model instance, or a dict for a JSON
    #: schema); None otherwise. Not serialized: it is rebuilt from ``text`` on a cache hit.
    parsed: Any = None

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage.to_dict(),
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "finish_reason": self.finish_reason,
            "cached": self.cached,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Completion:
        usage = data.get("usage") or {}
        return cls(
            text=data["text"],
            provider=data["provider"],
            model=data["model"],
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            cost_usd=data.get("cost_usd"),
            latency_s=data.get("latency_s", 0.0),
            tool_calls=[ToolCall.from_dict(c) for c in data.get("tool_calls") or ()],
            finish_reason=data.get("finish_reason"),
            cached=data.get("cached", False),
        )


@dataclass(slots=True)
class StreamChunk:
    """A piece of a streamed answer. The last chunk carries the full Completion."""

    text: str = ""
    completion: Completion | None = None


@dataclass(slots=True)
class ToolCallRecord:
    """A tool call an agent executed, with its outcome."""

    name: str
    arguments: dict[str, Any]
    result: Any = None
    ok: bool = True
    latency_s: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult(Mapping[str, Any]):
    """The outcome of ``agent.run``; also usable as a read-only dict (``result["response"]``)."""

    response: str = ""
    success: bool = False
    iterations: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = 0.0
    latency_s: float = 0.0
    error: str | None = None
    #: the failing error's class name (``"RateLimitError"``), so callers need not parse ``error``
    error_type: str | None = None
    #: seconds the provider asked to wait before retrying, when it said so
    retry_after: float | None = None
    agent: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def _keys(self) -> list[str]:
        return [f.name for f in fields(self)] + ["total_tokens"]

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        value = getattr(self, key)
        if key == "tool_calls":
            return [c.to_dict() for c in value]
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    def to_dict(self) -> dict[str, Any]:
        return {key: self[key] for key in self}

    def __str__(self) -> str:
        return self.response


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace; used for cache keys and fingerprints."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default
    )


def _default(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
