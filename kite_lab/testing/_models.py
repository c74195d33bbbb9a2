"""Value objects that script and record the fake LLM server's behaviour.

These types are deliberately wire-format agnostic: one ``Reply`` can be served
to an OpenAI chat-completions client *and* to an Anthropic messages client, so a
test written against one provider can be re-pointed at the other without
rewriting its script. The wire modules translate them into each provider's
real JSON shapes.

Only the standard library is used here so ``kite_lab.testing`` stays importable
wherever the package is installed.
"""

from __future__ import annotations

import json as _json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Fault",
    "MalformedKind",
    "RecordedRequest",
    "Reply",
    "ToolCallSpec",
    "Wire",
    "count_words",
    "split_chunks",
]

Wire = Literal["openai", "anthropic", "embeddings", "other"]
MalformedKind = Literal["json", "shape"]


@dataclass(frozen=True)
class ToolCallSpec:
    """One tool/function call the fake model "decides" to make.

    ``arguments`` may be a ``str`` so tests can send deliberately invalid JSON
    (e.g. ``'{"city": '``) and exercise the caller's error handling. ``id``
    defaults to a fresh provider-style id (``call_...`` / ``toolu_...``).
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON text a model would emit (raw if given as a str)."""
        if isinstance(self.arguments, str):
            return self.arguments
        return _json.dumps(dict(self.arguments), separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class Reply:
    """A successful model turn.

    ``prompt_tokens``/``completion_tokens`` default to a deterministic
    whitespace word count (min 1) of the prompt and of the reply. ``finish_reason``
    defaults per wire format (``stop``/``tool_calls`` or ``end_turn``/``tool_use``);
    a value from the *other* provider's vocabulary is translated (``"length"`` is
    served to Anthropic clients as ``"max_tokens"`` and vice versa). ``latency``
    overrides the server default. Streaming splits text and tool arguments into
    pieces of ``chunk_size`` characters.
    """

    text: str = ""
    tool_calls: Sequence[ToolCallSpec] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    latency: float | None = None
    chunk_size: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "tool_calls", tuple(self.tool_calls))
        for call in self.tool_calls:
            if not isinstance(call, ToolCallSpec):
                raise TypeError(f"tool_calls must hold ToolCallSpec, got {type(call).__name__}")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        _check_latency(self.latency)

    @classmethod
    def json_answer(cls, value: Any, **options: Any) -> Reply:
        """A reply whose text is ``value`` as JSON (served to a forced-tool Anthropic
        request as that tool's input)."""
        return cls(text=_json.dumps(value, ensure_ascii=False), **options)

    def prompt_token_count(self, request: RecordedRequest) -> int:
        """Tokens billed for the prompt: explicit value or the word-count estimate."""
        if self.prompt_tokens is not None:
            return self.prompt_tokens
        return max(1, count_words(request.prompt_text()))

    def completion_token_count(self) -> int:
        """Tokens billed for this reply: explicit value or the word-count estimate."""
        if self.completion_tokens is not None:
            return self.completion_tokens
        words = count_words(self.text) + sum(
            1 + count_words(call.arguments_json) for call in self.tool_calls
        )
        return max(1, words)


@dataclass(frozen=True)
class Fault:
    """A failed request: an HTTP error, a dropped socket, a broken body or a stall.

    * ``status`` -- an HTTP error answered with the provider's real error body.
      When nothing else is requested (no drop, no malformed body) it defaults to 500.
    * ``error_type`` -- overrides the error ``type`` derived from ``status``
      (OpenAI ``error.type``; Anthropic ``error.type``). For OpenAI the well-known
      code-like types (``insufficient_quota``, ``rate_limit_exceeded``, ...) are also
      used as ``error.code``.
    * ``code`` -- explicit machine code: OpenAI ``error.code``, Anthropic
      ``error.details.error_code`` (which the anthropic SDK maps to subclasses).
    * ``drop_connection`` -- close the socket without answering.
    * ``malformed_body`` -- ``True``/``"json"`` sends text that is not JSON,
      ``"shape"`` sends valid JSON missing the required fields; status 200 unless
      ``status`` is given.
    * ``latency`` -- sleep first (pair with a client timeout to provoke one).
    * ``retry_after`` -- sets ``retry-after`` and ``retry-after-ms`` headers.
    * ``headers`` -- extra response headers (e.g. ``{"x-should-retry": "false"}``).
    """

    status: int | None = None
    error_type: str | None = None
    message: str | None = None
    latency: float | None = None
    drop_connection: bool = False
    malformed_body: bool | MalformedKind = False
    retry_after: float | None = None
    headers: Mapping[str, str] | None = None
    code: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {self.status}")
        if self.malformed_body not in (False, True, "json", "shape"):
            raise ValueError('malformed_body must be a bool, "json" or "shape"')
        _check_latency(self.latency)

    @property
    def malformed_kind(self) -> MalformedKind | None:
        """``"json"``/``"shape"`` when a malformed body was requested, else ``None``."""
        if self.malformed_body is True:
            return "json"
        return self.malformed_body or None

    @property
    def effective_status(self) -> int:
        """The HTTP status actually sent (200 for a malformed body, else 500 by default)."""
        if self.status is not None:
            return self.status
        return 200 if self.malformed_kind else 500


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as the fake server received it.

    ``headers`` has lower-case names; ``json`` is the parsed body (``None`` if the
    body is empty or not JSON); ``wire`` says which API the path belongs to.
    The convenience properties read the chat payload and are safe on any body.
    """

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    body: bytes
    wire: Wire
    query: str = ""

    def _field(self, name: str) -> Any:
        return self.json.get(name) if isinstance(self.json, dict) else None

    @property
    def model(self) -> str | None:
        """The requested ``model`` (``None`` when absent)."""
        model = self._field("model")
        return model if isinstance(model, str) else None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The ``messages`` list (Anthropic's top-level ``system`` is not included)."""
        messages = self._field("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed (SSE) response."""
        return self._field("stream") is True

    @property
    def tools(self) -> list[dict[str, Any]]:
        """The ``tools`` definitions sent with the request (empty if none)."""
        tools = self._field("tools")
        return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []

    @property
    def response_schema(self) -> dict[str, Any] | None:
        """The JSON schema the answer must fit (OpenAI ``response_format``, Anthropic's
        forced tool), or ``None`` for a free-text request."""
        from ._structured import requested_schema

        return requested_schema(self.json, self.wire)

    @property
    def images(self) -> list[Any]:
        """The image parts of the messages, decoded (``SeenImage``: media_type, data, url)."""
        from ._structured import request_images

        return list(request_images(self.json, self.wire))

    @property
    def last_user_text(self) -> str:
        """Text of the last ``user`` message, content parts joined by spaces."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    def prompt_text(self) -> str:
        """Every piece of prompt text (system included), used for token estimates."""
        parts = [content_text(self._field("system"))]
        parts.extend(content_text(m.get("content")) for m in self.messages)
        return " ".join(p for p in parts if p)


def content_text(content: Any) -> str:
    """Flatten OpenAI/Anthropic message content (str or list of parts) to text."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    texts: list[str] = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "tool_result":
                texts.append(content_text(part.get("content")))
    return " ".join(t for t in texts if t)


def count_words(text: str) -> int:
    """Deterministic stand-in for a tokenizer: whitespace-separated word count."""
    return len(text.split())


def split_chunks(text: str, size: int) -> list[str]:
    """Split ``text`` into ``size``-character pieces (no pieces for empty text)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def _check_latency(latency: float | None) -> None:
    if latency is not None and latency < 0:
        raise ValueError("latency must be >= 0")
