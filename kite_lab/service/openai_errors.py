"""OpenAI's error envelope for every ``/v1/`` answer, whoever produced the error.

OpenAI clients read ``{"error": {"message", "type", "param", "code"}}`` and the status:
the SDK raises ``NotFoundError`` for 404, ``RateLimitError`` for 429 (honouring
``Retry-After``), and so on. Errors on ``/v1/`` come from four places -- the service
middleware (401, 413, 429 rate limit, 503 draining), the Idempotency-Key layer (409,
422), FastAPI's validation (422) and the gateway handlers -- so this module has:

- ``openai_error_for(exc)``: a kite_lab error -> status + OpenAI error, from the
  service's one table (``service.http_errors``) plus the gateway's own statuses
  (404 for an unknown model, 422 for an unsupported parameter);
- ``OpenAIEnvelope``: a pure-ASGI layer that rewrites the service's own JSON error
  bodies on ``/v1/`` paths into the envelope. It touches only error responses (status
  >= 400, JSON), so successful answers and streams pass through untouched.

Kite's ``type`` (``circuit_open``, ``rate_limited`` ...) becomes OpenAI's ``code``; the
request id is kept beside them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from kite_lab.service.http_errors import http_error_for

__all__ = ["GatewayError", "OpenAIEnvelope", "envelope", "openai_error_for", "openai_type"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREFIX = "/v1/"
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_PARAM = re.compile(r"(?:unknown parameter|parameter) '([A-Za-z0-9_.]+)'")


def openai_type(status: int) -> str:
    return _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


@dataclass
class GatewayError(Exception):
    """An answer in OpenAI's envelope: raise it in a handler, or build one from an error."""

    status: int
    message: str
    code: str
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    type: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self, request_id: str | None) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type or openai_type(self.status),
                "param": self.param,
                "code": self.code,
                "request_id": request_id,
            }
        }


def model_not_found(model: str, why: str = "") -> GatewayError:
    return GatewayError(
        404,
        f"The model {model!r} does not exist or is not served here{why}. "
        "GET /v1/models lists the models and aliases this gateway serves.",
        "model_not_found",
        param="model",
    )


def openai_error_for(exc: BaseException, secrets: Iterable[str] = ()) -> GatewayError | None:
    """The gateway answer for a kite_lab error (None: not a kite_lab error -> 500)."""
    if isinstance(exc, GatewayError):
        return exc
    from kite_lab.core.errors import (
        BadRequestError,
        InvalidInput,
        InvalidParameter,
        UnknownProvider,
    )

    error = http_error_for(exc, secrets)
    if error is None:
        return None
    status, code, param = error.status, error.type, None
    if isinstance(exc, UnknownProvider):
        return model_not_found(f"{exc.name}/...", f": no provider {exc.name!r}")
    if isinstance(exc, InvalidParameter):
        status, code = 422, "unsupported_parameter"
        found = _PARAM.search(error.message)
        param = found.group(1) if found else None
    elif isinstance(exc, InvalidInput):
        status, code = 422, "invalid_value"
    elif isinstance(exc, BadRequestError) and getattr(exc, "status", None) == 404:
        status, code, param = 404, "model_not_found", "model"
    return GatewayError(status, error.message, code, param, dict(error.headers))


def envelope(body: Any, status: int) -> dict[str, Any] | None:
    """The service's ``{"error": {type, message, request_id, details}}`` as OpenAI's
    envelope; None when ``body`` is not one (already converted, or not an error)."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return None
    error = body["error"]
    if "param" in error or "type" not in error:
        return None
    kind = str(error.get("type"))
    message = str(error.get("message", ""))
    param: str | None = None
    details = error.get("details")
    if status == 422 and kind == "validation_error" and isinstance(details, list) and details:
        first = details[0]
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        kind = "invalid_value"
        if first.get("type") == "extra_forbidden":
            kind = "unsupported_parameter"
            message = (
                f"unsupported parameter {param!r}: kite's gateway does not support it; "
                "remove it (docs/gateway.md lists what is supported)"
            )
        elif loc == ["n"]:
            kind = "unsupported_parameter"
            message = "n: only n=1 is supported (kite answers one choice per request)"
        elif param:
            message = f"{param}: {first.get('msg', message)}"
    return {
        "error": {
            "message": message,
            "type": openai_type(status),
            "param": param,
            "code": kind,
            "request_id": error.get("request_id"),
        }
    }


class OpenAIEnvelope:
    """ASGI: rewrite JSON error bodies on ``/v1/`` paths into OpenAI's envelope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def rewrite(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if message["status"] >= 400 and _is_json(message.get("headers") or ()):
                    start = message  # held until the body is complete
                    return
                await send(message)
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            raw = b"".join(chunks)
            try:
                converted = envelope(json.loads(raw), start["status"])
            except ValueError:
                converted = None
            if converted is not None:
                raw = json.dumps(converted, separators=(",", ":"), ensure_ascii=False).encode()
            headers = [
                (k, v) for k, v in start.get("headers") or () if k.lower() != b"content-length"
            ]
            headers.append((b"content-length", str(len(raw)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": raw})

        await self.app(scope, receive, rewrite)


def _is_json(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    for key, value in headers:
        if key.lower() == b"content-type":
            return value.startswith(b"application/json")
    return False
