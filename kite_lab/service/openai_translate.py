"""OpenAI chat requests -> ``Kite.agenerate`` arguments; ``Completion`` -> OpenAI answers.

Why a translation layer and not a proxy: the gateway calls the same facade as a notebook
(cache, breaker, kill switch, cost, events, fallbacks), so a request for
``anthropic/claude-...`` or ``local/...`` is translated once into kite's own types
(``Message`` with image parts, ``ToolSpec``, ``schema=``) and each provider renders its
own wire format. Answers are rendered back into OpenAI's shapes here, streamed chunks
included. Pure functions; nothing here does I/O.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import mimetypes
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput
from kite_lab.core.types import Completion, ImagePart, Message, ToolCall, ToolSpec
from kite_lab.providers.openai_compat import parse_tool_arguments
from kite_lab.service.openai_schemas import (
    AssistantMessage,
    ImagePartIn,
    SystemMessage,
    TextPart,
    UserMessage,
)

if TYPE_CHECKING:
    from kite_lab.service.openai_schemas import ChatCompletionRequest, ChatMessageIn

__all__ = [
    "ChatCall",
    "chunk_body",
    "completion_body",
    "finish_reason",
    "model_header",
    "new_completion_id",
    "to_chat_call",
    "tool_call_dicts",
]

#: kite / provider finish reasons -> OpenAI's vocabulary
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "stop": "stop",
    "max_tokens": "length",
    "length": "length",
    "tool_use": "tool_calls",
    "tool_calls": "tool_calls",
    "refusal": "content_filter",
    "content_filter": "content_filter",
}
#: parameters passed to the provider as they are (its Options validate them: 422 if not)
_PASSED = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
)


class ChatCall:
    """One chat request in kite's terms: ``kite.agenerate(**call.kwargs())``."""

    __slots__ = ("messages", "tools", "tool_choice", "params", "schema", "images")

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.tools: list[ToolSpec] = []
        self.tool_choice: str | dict[str, Any] | None = None
        self.params: dict[str, Any] = {}
        self.schema: dict[str, Any] | None = None
        self.images = 0

    def kwargs(self, accepts: Callable[[str], bool]) -> dict[str, Any]:
        """Keyword arguments for ``agenerate``/``astream_chunks``; ``accepts(name)`` says
        whether the facade takes ``schema=`` (issue 15) -- else the OpenAI-native
        ``response_format`` is passed, which only OpenAI-family models accept."""
        out: dict[str, Any] = {"messages": self.messages, **self.params}
        if self.tools:
            out["tools"] = self.tools
            if self.tool_choice is not None:
                out["tool_choice"] = self.tool_choice
        if self.schema is not None:
            if accepts("schema"):
                out["schema"] = self.schema
            else:
                out["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "answer", "schema": self.schema},
                }
        return out


def _text(content: str | list[TextPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content)


def image_part(url: str) -> ImagePart:
    """An OpenAI ``image_url.url`` (a data URL or an http(s) URL) as kite's ImagePart."""
    if url.startswith("data:"):
        header, comma, payload = url.partition(",")
        media_type = header[5:].split(";")[0] or "image/png"
        if not comma or ";base64" not in header or not media_type.startswith("image/"):
            raise InvalidInput("image_url.url: a data URL must be data:image/<type>;base64,<data>")
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("image_url.url: the data URL's base64 is not valid") from None
        return ImagePart(media_type=media_type, data=data, source="data URL")
    if url.startswith(("http://", "https://")):
        guessed = mimetypes.guess_type(url.split("?")[0])[0]
        media_type = guessed if guessed and guessed.startswith("image/") else "image/jpeg"
        return ImagePart(media_type=media_type, url=url, source=url)
    raise InvalidInput("image_url.url must be an http(s) URL or a data:image/...;base64 URL")


def _message(message: ChatMessageIn, call: ChatCall) -> Message:
    if isinstance(message, SystemMessage):  # "developer" too: a system message
        return Message("system", _text(message.content), name=message.name)
    if isinstance(message, UserMessage):
        content = message.content
        if isinstance(content, str):
            return Message("user", content, name=message.name)
        images = [image_part(p.image_url.url) for p in content if isinstance(p, ImagePartIn)]
        text = "\n".join(p.text for p in content if isinstance(p, TextPart))
        call.images += len(images)
        return Message("user", text, name=message.name, images=images)
    if isinstance(message, AssistantMessage):
        calls = []
        for tool_call in message.tool_calls or ():
            arguments, raw = parse_tool_arguments(tool_call.function.arguments)
            calls.append(ToolCall(tool_call.id, tool_call.function.name, arguments, raw))
        return Message("assistant", _text(message.content), name=message.name, tool_calls=calls)
    return Message("tool", _text(message.content), tool_call_id=message.tool_call_id)


def to_chat_call(body: ChatCompletionRequest, accepts: Callable[[str], bool]) -> ChatCall:
    """Translate a validated request; ``accepts(name)``: the facade takes ``name=``."""
    call = ChatCall()
    for message in body.messages:
        call.messages.append(_message(message, call))
    for tool in body.tools or ():
        fn = tool.function
        call.tools.append(
            ToolSpec(
                name=fn.name,
                description=fn.description or "",
                parameters=fn.parameters or {"type": "object", "properties": {}},
            )
        )
    choice = body.tool_choice
    if isinstance(choice, str):
        call.tool_choice = choice
    elif choice is not None:
        call.tool_choice = {"name": choice.function.name}
    if not call.tools:
        if choice not in (None, "auto", "none"):  # no tools: "auto"/"none" change nothing
            raise InvalidInput(
                "tool_choice asks for a tool call but tools is not set: send the tools"
            )
        call.tool_choice = None
    _params(body, call, accepts)
    return call


def _params(body: ChatCompletionRequest, call: ChatCall, accepts: Callable[[str], bool]) -> None:
    params = call.params
    for name in _PASSED:
        value = getattr(body, name)
        if value is not None:
            params[name] = value
    limit = body.max_tokens
    if body.max_completion_tokens is not None:
        if limit is not None:
            raise InvalidInput("send max_tokens or max_completion_tokens, not both")
        limit = body.max_completion_tokens
    if limit is not None:
        params["max_tokens"] = limit
    if body.stop is not None:
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop)
        if len(stops) > 4:
            raise InvalidInput("stop: at most 4 stop sequences")
        if stops:
            params["stop"] = stops
    # body.user (an end-user id) is accepted and not sent: it changes no answer
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_schema":
        call.schema = fmt.json_schema.schema_ or {"type": "object"}
    elif fmt is not None and fmt.type == "json_object":
        if accepts("schema"):
            call.schema = {"type": "object"}
        else:  # OpenAI-family models only (others: 422 naming response_format)
            params["response_format"] = {"type": "json_object"}


def accepts_factory(method: Any) -> Callable[[str], bool]:
    """``accepts(name)``: whether ``method`` (``Kite.build_request``) takes ``name=``."""
    names = set(inspect.signature(method).parameters)
    return names.__contains__


# -- answers ------------------------------------------------------------------------------


def model_header(model_id: str) -> str:
    """``model_id`` for the ``x-kite-model`` header (percent-encoded beyond printable ASCII)."""
    from urllib.parse import quote

    return quote(model_id, safe="/:._-@+=~")


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def finish_reason(completion: Completion) -> str:
    if completion.tool_calls:
        return "tool_calls"
    return _FINISH.get(completion.finish_reason or "stop", completion.finish_reason or "stop")


def tool_call_dicts(calls: list[ToolCall], *, indexed: bool = False) -> list[dict[str, Any]]:
    import json

    out = []
    for index, call in enumerate(calls):
        item: dict[str, Any] = {
            "id": call.id,
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": call.raw_arguments
                if call.raw_arguments is not None
                else json.dumps(call.arguments, ensure_ascii=False),
            },
        }
        if indexed:
            item = {"index": index, **item}
        out.append(item)
    return out


def usage_dict(completion: Completion) -> dict[str, int]:
    return completion.usage.to_dict()


def completion_body(completion: Completion, model_id: str, completion_id: str) -> dict[str, Any]:
    """The ``chat.completion`` object for ``completion``, answered by ``model_id``."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": completion.text if completion.text or not completion.tool_calls else None,
        "refusal": None,
    }
    if completion.tool_calls:
        message["tool_calls"] = tool_call_dicts(completion.tool_calls)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_id,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(completion),
                "logprobs": None,
            }
        ],
        "usage": usage_dict(completion),
        "system_fingerprint": None,
    }


def chunk_body(
    completion_id: str,
    created: int,
    model_id: str,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    usage: dict[str, int] | None = None,
    include_usage: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta=None`` is the usage-only last chunk."""
    body: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model_id,
        "system_fingerprint": None,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
    if include_usage:
        body["usage"] = usage
    return body
