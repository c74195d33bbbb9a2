"""OpenAI wire format: chat completions, SSE chunks, errors, embeddings, models.

The shapes mirror what api.openai.com sends (and what Groq and Ollama's
OpenAI-compatible endpoints imitate), closely enough that the real ``openai``
SDK -- including its streaming accumulator and its base64 embedding decoding --
parses them exactly as it would parse production traffic.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
import time
from collections.abc import Iterator
from typing import Any

from ._models import Fault, MalformedKind, RecordedRequest, Reply, count_words, split_chunks
from ._structured import image_problem
from ._wire import dumps, new_id, sse, translate_finish_reason

__all__ = ["OpenAIWire", "embeddings_response", "models_response"]

# Status -> (error.type, error.code, default message) when Fault.error_type is not given.
_STATUS_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "permission_denied", "You are not allowed to do this."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable request."),
    429: ("rate_limit_exceeded", "rate_limit_exceeded", "Rate limit reached. Try again later."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    529: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
# Error types the real API also reports as ``error.code``.
_CODE_LIKE_TYPES = {
    "insufficient_quota": "You exceeded your current quota, please check your plan and billing.",
    "rate_limit_exceeded": "Rate limit reached. Try again later.",
    "invalid_api_key": "Incorrect API key provided.",
    "model_not_found": "The model does not exist.",
    "context_length_exceeded": "This model's maximum context length was exceeded.",
}
# Anthropic finish vocabulary -> OpenAI's, so one Reply script serves both wires.
_FINISH_FROM_ANTHROPIC = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "fake-model")
DEFAULT_EMBEDDING_DIM = 1536


class OpenAIWire:
    """Renders ``Reply``/``Fault`` for ``POST /v1/chat/completions``."""

    request_id_header = "x-request-id"

    def validate(self, request: RecordedRequest) -> Fault | None:
        body = request.json
        if not isinstance(body, dict):
            return _bad_request("We could not parse the JSON body of your request.")
        for name in ("model", "messages"):
            if name not in body:
                return _bad_request(
                    f"Missing required parameter: '{name}'.", code="missing_required_parameter"
                )
        if not isinstance(body["messages"], list):
            return _bad_request("Invalid type for 'messages': expected an array.")
        problem = image_problem(body, "openai")
        return _bad_request(problem, code="invalid_image") if problem else None

    def completion(self, reply: Reply, request: RecordedRequest) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": call.id or new_id("call_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json},
                }
                for call in reply.tool_calls
            ]
        return {
            **_envelope(request, "chat.completion"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": _finish_reason(reply),
                }
            ],
            "usage": _usage(reply, request),
        }

    def stream(self, reply: Reply, request: RecordedRequest) -> Iterator[bytes]:
        envelope = _envelope(request, "chat.completion.chunk")
        options = request.json.get("stream_options") if isinstance(request.json, dict) else None
        include_usage = isinstance(options, dict) and options.get("include_usage") is True

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            body: dict[str, Any] = {**envelope, "choices": [choice]}
            if include_usage:
                body["usage"] = None  # the real API sends null on every chunk but the last
            return sse(body)

        first_content = "" if reply.text or not reply.tool_calls else None
        yield chunk({"role": "assistant", "content": first_content, "refusal": None})
        for piece in split_chunks(reply.text, reply.chunk_size):
            yield chunk({"content": piece})
        for index, call in enumerate(reply.tool_calls):
            head = {"name": call.name, "arguments": ""}
            call_id = call.id or new_id("call_")
            opening = {"index": index, "id": call_id, "type": "function", "function": head}
            yield chunk({"tool_calls": [opening]})
            for piece in split_chunks(call.arguments_json, reply.chunk_size):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, _finish_reason(reply))
        if include_usage:
            yield sse({**envelope, "choices": [], "usage": _usage(reply, request)})
        yield sse("[DONE]")

    def error_body(self, fault: Fault, status: int, request_id: str) -> dict[str, Any]:
        return {"error": _error(fault, status)}

    def malformed(self, kind: MalformedKind, stream: bool) -> bytes:
        if kind == "json":
            broken = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"ind'
            return b"data: " + broken + b"\n\n" if stream else broken
        if stream:
            return sse({"object": "chat.completion.chunk"}) + sse("[DONE]")
        return dumps({"id": new_id("chatcmpl-"), "object": "chat.completion"})


def embeddings_response(request: RecordedRequest) -> tuple[int, dict[str, Any]]:
    """``POST /v1/embeddings``: deterministic unit vectors seeded by each input's hash."""
    body = request.json if isinstance(request.json, dict) else {}
    inputs, tokens = _embedding_inputs(body.get("input"))
    dimensions = body.get("dimensions", DEFAULT_EMBEDDING_DIM)
    encoding = body.get("encoding_format", "float")
    problem = None
    if "model" not in body:
        problem = "Missing required parameter: 'model'."
    elif inputs is None:
        problem = "'input' must be a string, an array of strings or an array of token arrays."
    elif not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
        problem = "'dimensions' must be a positive integer."
    elif encoding not in ("float", "base64"):
        problem = "'encoding_format' must be 'float' or 'base64'."
    if problem is not None or inputs is None:
        return 400, {"error": _error(_bad_request(problem or ""), 400)}
    data = []
    for index, text in enumerate(inputs):
        vector = embedding_vector(text, dimensions)
        encoded: list[float] | str = vector
        if encoding == "base64":
            encoded = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    usage = {"prompt_tokens": max(1, tokens), "total_tokens": max(1, tokens)}
    return 200, {"object": "list", "data": data, "model": body["model"], "usage": usage}


def embedding_vector(text: str, dimensions: int) -> list[float]:
    """A unit-norm vector that depends only on ``text`` (and the dimension)."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    rng = random.Random(seed)
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(math.fsum(x * x for x in raw)) or 1.0
    return [x / norm for x in raw]


def models_response() -> dict[str, Any]:
    """``GET /v1/models`` in OpenAI's list shape."""
    created = 1_700_000_000
    data = [
        {"id": m, "object": "model", "created": created, "owned_by": "kite-lab"} for m in MODELS
    ]
    return {"object": "list", "data": data}


def not_found_body(method: str, path: str) -> dict[str, Any]:
    """The 404 body OpenAI sends for an unknown URL."""
    message = f"Invalid URL ({method} {path})"
    fault = Fault(status=404, error_type="invalid_request_error", message=message)
    return {"error": _error(fault, 404)}


def _embedding_inputs(value: Any) -> tuple[list[str] | None, int]:
    """Normalise every accepted ``input`` form to texts plus a token estimate."""
    if isinstance(value, str):
        return [value], count_words(value)
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return list(value), sum(count_words(v) for v in value)
        if all(isinstance(v, int) for v in value):
            return [repr(value)], len(value)
        if all(isinstance(v, list) and all(isinstance(t, int) for t in v) for v in value):
            return [repr(v) for v in value], sum(len(v) for v in value)
    return None, 0


def _envelope(request: RecordedRequest, obj: str) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl-"),
        "object": obj,
        "created": int(time.time()),
        "model": request.model or "fake-model",
        "system_fingerprint": "fp_kite_fake",
    }


def _usage(reply: Reply, request: RecordedRequest) -> dict[str, int]:
    prompt, completion = reply.prompt_token_count(request), reply.completion_token_count()
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _finish_reason(reply: Reply) -> str:
    default = "tool_calls" if reply.tool_calls else "stop"
    return translate_finish_reason(reply.finish_reason, default, _FINISH_FROM_ANTHROPIC)


def _bad_request(message: str, code: str | None = None) -> Fault:
    return Fault(status=400, error_type="invalid_request_error", message=message, code=code)


def _error(fault: Fault, status: int) -> dict[str, Any]:
    """``{"message", "type", "param", "code"}`` as OpenAI fills them."""
    if fault.error_type is None:
        fallback = "invalid_request_error" if status < 500 else "server_error"
        error_type, code, message = _STATUS_ERRORS.get(status, (fallback, None, f"HTTP {status}"))
    else:
        error_type = fault.error_type
        code = fault.error_type if fault.error_type in _CODE_LIKE_TYPES else None
        message = _CODE_LIKE_TYPES.get(fault.error_type, f"{fault.error_type} ({status})")
    return {
        "message": fault.message if fault.message is not None else message,
        "type": error_type,
        "param": None,
        "code": fault.code if fault.code is not None else code,
    }
