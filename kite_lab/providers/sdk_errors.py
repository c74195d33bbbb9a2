"""Translate the openai and anthropic SDKs' exceptions into kite_lab's typed errors.

Both SDKs share their exception names (APIStatusError, APITimeoutError, ...), so one
function serves both; it receives the SDK module the exception came from.
"""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

from kite_lab.core.errors import (
    AuthenticationError,
    BadRequestError,
    MalformedResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    QuotaExceeded,
    RateLimitError,
    ServerError,
)

__all__ = ["map_sdk_error"]

_QUOTA_CODES = {"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"}


def _error_details(body: Any, fallback: str) -> tuple[str, str | None]:
    """(message, code) from OpenAI's ``{"error": {...}}`` or Anthropic's error body."""
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            message = err.get("message") or fallback
            code = err.get("code") or err.get("type")
            return str(message), (str(code) if code else None)
    return fallback, None


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


_PARSE_ERRORS = (KeyError, TypeError, AttributeError, IndexError, ValueError)


def map_sdk_error(
    exc: BaseException, provider: str, sdk: ModuleType, *, parsing: bool = False
) -> ProviderError | None:
    """The kite_lab error for ``exc``, or None when ``exc`` is not a provider failure.

    ``parsing``: ``exc`` was raised while reading the SDK's response object, where a
    TypeError or KeyError means the provider sent a body of the wrong shape.
    """
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, sdk.APITimeoutError):
        return ProviderTimeout("the request timed out (raise LLM_TIMEOUT?)", provider=provider)
    if isinstance(exc, sdk.APIConnectionError):
        return ProviderConnectionError(
            f"cannot reach the provider: {exc.__cause__ or exc}", provider=provider
        )
    if isinstance(exc, sdk.APIResponseValidationError):
        return MalformedResponse(f"unexpected response shape: {exc}", provider=provider)
    if isinstance(exc, sdk.APIStatusError):
        status = exc.status_code
        message, code = _error_details(getattr(exc, "body", None), str(exc))
        kwargs = {"provider": provider, "status": status, "code": code}
        if status in (401, 403):
            return AuthenticationError(message, **kwargs)
        if status == 402 or (status == 429 and code in _QUOTA_CODES):
            return QuotaExceeded(message, **kwargs)
        if status == 429:
            return RateLimitError(message, retry_after=_retry_after(exc), **kwargs)
        if status >= 500:
            return ServerError(message, **kwargs)
        return BadRequestError(message, **kwargs)
    if isinstance(exc, json.JSONDecodeError) or (parsing and isinstance(exc, _PARSE_ERRORS)):
        return MalformedResponse(
            f"cannot parse the provider's response: {exc!r}", provider=provider
        )
    return None
