"""kite_lab errors -> HTTP statuses and JSON error bodies, in one table; ``send_json``.

Why a table keyed by class name: the same mapping serves exceptions raised by the
pipeline (walked along their MRO, so a subclass inherits its parent's status unless
listed) and agent results, which carry the failing class's name in
``RunResult.error_type`` (and the provider's ``retry_after``), so ``/complete`` and
``/agents/{name}/run`` answer the same failure alike without parsing message text.

``send_json`` writes such a body straight to an ASGI ``send``: the middleware and the
Idempotency-Key layer answer before the app is reached, without building a Response.

Every message goes through ``redact`` with the service's known secrets; a provider's
authentication failure never echoes the provider's text, which can quote part of the key.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import redact

if TYPE_CHECKING:
    from kite_lab.core.types import RunResult

__all__ = [
    "HTTPError",
    "http_error_for",
    "http_error_for_result",
    "retry_after_header",
    "send_json",
]

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


@dataclass
class HTTPError:
    """What the client gets: status, a stable ``type``, a message and extra headers."""

    status: int
    type: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    details: Any = None

    def body(self, request_id: str | None) -> dict[str, Any]:
        error: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "request_id": request_id,
        }
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}


# class name -> (status, type). Looked up along the exception's MRO: order is irrelevant.
_TABLE: dict[str, tuple[int, str]] = {
    "UnknownProvider": (400, "unknown_model"),
    "InvalidParameter": (400, "invalid_parameter"),
    "BadRequestError": (400, "bad_request"),
    "InvalidInput": (422, "invalid_input"),
    "AuthenticationError": (502, "provider_auth_failed"),
    "QuotaExceeded": (402, "provider_quota_exceeded"),
    "RateLimitError": (429, "provider_rate_limited"),
    "ServerError": (502, "provider_error"),
    "ProviderTimeout": (504, "provider_timeout"),
    "ProviderConnectionError": (502, "provider_unreachable"),
    "MalformedResponse": (502, "provider_bad_response"),
    "ProviderError": (502, "provider_error"),
    "CircuitBreakerError": (503, "circuit_open"),
    "KillSwitchError": (503, "kill_switch_active"),
    "RateLimitExceeded": (429, "rate_limited"),
    "IdempotencyConflict": (422, "idempotency_key_reused"),
    "IdempotencyInProgress": (409, "idempotency_in_progress"),
    "IdempotencySerializationError": (500, "idempotency_error"),
    "IdempotencyError": (500, "idempotency_error"),
    "StoreUnavailable": (503, "backend_unavailable"),
    "StoreError": (500, "store_error"),
    "NoProviderConfigured": (503, "provider_not_configured"),
    "MissingAPIKey": (503, "provider_not_configured"),
    "LocalModelUnavailable": (503, "provider_not_configured"),
    "ConfigError": (500, "config_error"),
    "AgentLimitReached": (422, "agent_limit_reached"),
    "ToolError": (500, "tool_error"),
    "AgentError": (500, "agent_error"),
    "OutputParseError": (502, "output_parse_error"),
}

_AUTH_MESSAGE = (
    "the LLM provider rejected this service's credentials; the operator must check the "
    "provider API key configured on the server"
)


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """``{"Retry-After": "<whole seconds, at least 1>"}`` or nothing."""
    if seconds is None or seconds < 0:
        return {}
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def http_error_for(exc: BaseException, secrets: Iterable[str] = ()) -> HTTPError | None:
    """The HTTP answer for a kite_lab error, or None for anything else (a bug: 500)."""
    for cls in type(exc).__mro__:
        entry = _TABLE.get(cls.__name__)
        if entry is None:
            continue
        status, kind = entry
        message = _AUTH_MESSAGE if kind == "provider_auth_failed" else redact(str(exc), secrets)
        error = HTTPError(status, kind, message)
        error.headers.update(retry_after_header(getattr(exc, "retry_after", None)))
        if kind == "unknown_model":
            error.details = {"providers": list(getattr(exc, "registered", []))}
        elif kind == "bad_request" and getattr(exc, "status", None) == 404:
            error.type = "unknown_model"
            error.details = {"providers": _providers()}
        return error
    return None


def http_error_for_result(result: RunResult, secrets: Iterable[str] = ()) -> HTTPError | None:
    """The HTTP answer for a failed agent result, or None (its failure is its answer).

    ``result.error_type`` names the failing class; a known kite_lab class is looked up
    along its MRO like a raised exception. ``result.retry_after`` becomes Retry-After.
    """
    name = getattr(result, "error_type", None)
    message = result.error or ""
    if name is None:  # an agent written before error_type existed: "Class: message"
        head, colon, _ = message.partition(":")
        name = head.strip() if colon and head.strip().isidentifier() else None
    if not name:
        return None
    entry = _entry_for_name(name)
    if entry is None:
        return None
    status, kind = entry
    text = _AUTH_MESSAGE if kind == "provider_auth_failed" else redact(message, secrets)
    error = HTTPError(status, kind, text)
    error.headers.update(retry_after_header(getattr(result, "retry_after", None)))
    return error


def _entry_for_name(name: str) -> tuple[int, str] | None:
    """The table entry for a class name: along its MRO when it is a kite_lab error."""
    from kite_lab.core import errors

    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, BaseException):
        for each in cls.__mro__:
            entry = _TABLE.get(each.__name__)
            if entry is not None:
                return entry
    return _TABLE.get(name)


def _providers() -> list[str]:
    from kite_lab.providers.registry import available_providers

    return available_providers()


async def send_json(
    send: Send, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    """Answer an ASGI request with ``body`` as JSON (content-length set)."""
    payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
