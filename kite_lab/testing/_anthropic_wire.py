"""Anthropic wire format: messages, the named SSE event sequence, errors, models.

Anthropic's streaming protocol is stateful (message_start, per-block
start/delta/stop, message_delta, message_stop) and the ``anthropic`` SDK
ignores SSE frames that lack an ``event:`` line, so the sequence below follows
the real API event for event, including the ``ping`` it sends early on.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from ._models import Fault, MalformedKind, RecordedRequest, Reply, ToolCallSpec, split_chunks
from ._structured import forced_tool, image_problem
from ._wire import dumps, new_id, sse, translate_finish_reason

__all__ = ["AnthropicWire", "models_response", "not_found_body"]

# Status -> (error.type, default message) when Fault.error_type is not given.
_STATUS_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low."),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    408: ("timeout_error", "Request timed out."),
    409: ("conflict_error", "Conflict."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    422: ("invalid_request_error", "Unprocessable request."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}
# OpenAI finish vocabulary -> Anthropic's, so one Reply script serves both wires.
_FINISH_FROM_OPENAI = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

MODELS = ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1")


class AnthropicWire:
    """Renders ``Reply``/``Fault`` for ``POST /v1/messages``."""

    request_id_header = "request-id"

    def validate(self, request: RecordedRequest) -> Fault | None:
        body = request.json
        if not isinstance(body, dict):
            return _bad_request("The request body is not valid JSON.")
        for name in ("model", "messages", "max_tokens"):
            if name not in body:
                return _bad_request(f"{name}: Field required")
        if not isinstance(body["messages"], list):
            return _bad_request("messages: Input should be a valid list")
        problem = image_problem(body, "anthropic")
        return _bad_request(problem) if problem else None

    def completion(self, reply: Reply, request: RecordedRequest) -> dict[str, Any]:
        reply = _as_forced_tool(reply, request)
        content: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            content.append({"type": "text", "text": reply.text})
        content.extend(
            {**_tool_use_head(call), "input": _tool_input(call)} for call in reply.tool_calls
        )
        return {
            **_message_head(request),
            "content": content,
            "stop_reason": _stop_reason(reply),
            "stop_sequence": None,
            "usage": _usage(reply.prompt_token_count(request), reply.completion_token_count()),
        }

    def stream(self, reply: Reply, request: RecordedRequest) -> Iterator[bytes]:
        reply = _as_forced_tool(reply, request)
        prompt_tokens = reply.prompt_token_count(request)
        start = {
            **_message_head(request),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": _usage(prompt_tokens, 1),
        }
        yield _event({"type": "message_start", "message": start})
        yield _event({"type": "ping"})

        index = 0
        if reply.text or not reply.tool_calls:
            pieces = split_chunks(reply.text, reply.chunk_size)
            yield from _block(index, {"type": "text", "text": ""}, "text_delta", "text", pieces)
            index += 1
        for call in reply.tool_calls:
            head = {**_tool_use_head(call), "input": {}}
            pieces = split_chunks(call.arguments_json, reply.chunk_size)
            yield from _block(index, head, "input_json_delta", "partial_json", pieces)
            index += 1

        usage = {"input_tokens": prompt_tokens, "output_tokens": reply.completion_token_count()}
        delta = {"stop_reason": _stop_reason(reply), "stop_sequence": None}
        yield _event({"type": "message_delta", "delta": delta, "usage": usage})
        yield _event({"type": "message_stop"})

    def error_body(self, fault: Fault, status: int, request_id: str) -> dict[str, Any]:
        return error_body(fault, status, request_id)

    def malformed(self, kind: MalformedKind, stream: bool) -> bytes:
        if kind == "json":
            broken = b'{"id": "msg_broken", "type": "message", "content": [{"ty'
            return b"event: message_start\ndata: " + broken + b"\n\n" if stream else broken
        if stream:
            return _event({"type": "message_start"}) + _event({"type": "message_stop"})
        return dumps({"id": new_id("msg_"), "type": "message"})


def error_body(fault: Fault, status: int, request_id: str) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"[, "details"]}, "request_id"}``."""
    fallback = "invalid_request_error" if status < 500 else "api_error"
    error_type, message = _STATUS_ERRORS.get(status, (fallback, f"HTTP {status}"))
    if fault.error_type is not None:
        error_type, message = fault.error_type, f"{fault.error_type} ({status})"
    error: dict[str, Any] = {
        "type": error_type,
        "message": fault.message if fault.message is not None else message,
    }
    if fault.code is not None:
        error["details"] = {"error_code": fault.code}
    return {"type": "error", "error": error, "request_id": request_id}


def models_response() -> dict[str, Any]:
    """``GET /v1/models`` in Anthropic's paginated list shape."""
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in MODELS
    ]
    return {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}


def not_found_body(method: str, path: str, request_id: str) -> dict[str, Any]:
    """The 404 body Anthropic sends for an unknown URL."""
    fault = Fault(status=404, message=f"Not found: {method} {path}")
    return error_body(fault, 404, request_id)


def _as_forced_tool(reply: Reply, request: RecordedRequest) -> Reply:
    """A text reply to a request forcing a tool becomes that tool's call (input = the
    text's JSON), as the real API would answer: one script serves both wire formats."""
    tool = forced_tool(request.json)
    if tool is None or reply.tool_calls:
        return reply
    call = ToolCallSpec(name=str(tool["name"]), arguments=reply.text or "{}")
    return replace(reply, text="", tool_calls=(call,))


def _event(data: Mapping[str, Any]) -> bytes:
    """Anthropic frames always carry an ``event:`` line equal to the data's type."""
    return sse(data, event=str(data["type"]))


def _block(
    index: int, head: dict[str, Any], delta_type: str, delta_key: str, pieces: list[str]
) -> Iterator[bytes]:
    yield _event({"type": "content_block_start", "index": index, "content_block": head})
    for piece in pieces:
        delta = {"type": delta_type, delta_key: piece}
        yield _event({"type": "content_block_delta", "index": index, "delta": delta})
    yield _event({"type": "content_block_stop", "index": index})


def _message_head(request: RecordedRequest) -> dict[str, Any]:
    model = request.model or "fake-model"
    return {"id": new_id("msg_"), "type": "message", "role": "assistant", "model": model}


def _tool_use_head(call: ToolCallSpec) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id or new_id("toolu_"), "name": call.name}


def _tool_input(call: ToolCallSpec) -> Any:
    """The ``input`` object; deliberately invalid JSON is passed through as a string."""
    if not isinstance(call.arguments, str):
        return dict(call.arguments)
    try:
        return json.loads(call.arguments)
    except ValueError:
        return call.arguments


def _usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }


def _stop_reason(reply: Reply) -> str:
    default = "tool_use" if reply.tool_calls else "end_turn"
    return translate_finish_reason(reply.finish_reason, default, _FINISH_FROM_OPENAI)


def _bad_request(message: str) -> Fault:
    return Fault(status=400, error_type="invalid_request_error", message=message)
