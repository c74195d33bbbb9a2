"""Which errors count against a provider's circuit breaker: one documented table.

A breaker must open when the *provider* is unhealthy, not when *our request* is wrong.
A 400 repeated three times says nothing about OpenAI's health; three timeouts do.
Quota errors are billing, not load: retrying in 60 s will not help, so they neither
count nor wait. ``TABLE`` is the single source for the code below, ``docs/safety.md``
and the tests, so the three cannot drift apart.

Outcomes:
- ``failure``: counts towards ``failure_threshold`` (and re-opens a half-open breaker);
- ``ignored``: does not count, resets nothing, and gives a half-open permit back;
- ``success``: the call returned.
"""

from __future__ import annotations

import asyncio
import enum
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from kite_lab.core.errors import AuthenticationError, KiteError, ProviderError

__all__ = ["TABLE", "Classification", "Outcome", "classify", "table_markdown"]


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    IGNORED = "ignored"


#: HTTP statuses that say "your request is wrong", not "the provider is down"
NON_COUNTING_STATUSES = frozenset({400, 401, 402, 403, 404, 409, 413, 422})
#: 429 bodies that mean billing, not load (same codes as providers/sdk_errors.py)
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})

#: (error, outcome, why) -- rendered into docs/safety.md; order = precedence
TABLE: tuple[tuple[str, str, str], ...] = (
    ("no exception", "success", "the provider answered"),
    ("asyncio.CancelledError, KeyboardInterrupt, SystemExit", "ignored",
     "the caller gave up; says nothing about the provider (half-open permit released)"),
    ("a class in config.ignore_exceptions", "ignored", "your choice"),
    ("a class in config.record_exceptions", "failure", "your choice"),
    ("ProviderTimeout (SDK APITimeoutError)", "failure", "the provider is slow or down"),
    ("ProviderConnectionError (SDK APIConnectionError)", "failure", "the provider is unreachable"),
    ("ServerError: HTTP 5xx, Anthropic 529 overloaded", "failure", "the provider is failing"),
    ("RateLimitError: HTTP 429 rate limit", "failure", "the provider is shedding load"),
    ("MalformedResponse", "failure", "the provider answered garbage"),
    ("QuotaExceeded: HTTP 429 insufficient_quota, 402", "ignored",
     "billing, not load; raised at once, never retried"),
    ("AuthenticationError: HTTP 401/403", "ignored",
     "a key problem, not an outage; emitted as an `auth:error` event"),
    ("BadRequestError, InvalidParameter: HTTP 400/404/409/413/422", "ignored",
     "the request itself is wrong"),
    ("other kite_lab errors (KillSwitchError, a nested CircuitBreakerError, ...)", "ignored",
     "raised by kite_lab, not by the provider"),
    ("TimeoutError, ConnectionError, OSError", "failure", "network trouble"),
    ("any other exception", "failure", "unknown errors count, as in a plain breaker"),
)


@dataclass(frozen=True, slots=True)
class Classification:
    outcome: Outcome
    #: class name of the error (never its message: messages may quote user input)
    error: str | None = None
    #: a 401/403: reported as an ``auth:error`` event
    auth_error: bool = False
    provider: str | None = None


_SUCCESS = Classification(Outcome.SUCCESS)


def _sdk_error(exc: BaseException) -> ProviderError | None:
    """Map a raw openai/anthropic SDK exception through providers/sdk_errors.py."""
    root = type(exc).__module__.partition(".")[0]
    if root not in ("openai", "anthropic"):
        return None
    sdk = sys.modules.get(root)
    base = getattr(sdk, "OpenAIError", None) or getattr(sdk, "AnthropicError", None)
    if sdk is None or base is None or not isinstance(exc, base):
        return None
    from kite_lab.providers.sdk_errors import map_sdk_error

    return map_sdk_error(exc, root, sdk)


def _provider_outcome(err: ProviderError) -> Outcome:
    if not err.counts_as_failure:
        return Outcome.IGNORED
    status = err.status
    if status in NON_COUNTING_STATUSES or (status == 429 and err.code in QUOTA_CODES):
        return Outcome.IGNORED
    return Outcome.FAILURE


def classify(
    exc: BaseException | None,
    record: Sequence[type[BaseException]] = (),
    ignore: Sequence[type[BaseException]] = (),
) -> Classification:
    """How the breaker treats ``exc`` (None: the call succeeded). See ``TABLE``."""
    if exc is None:
        return _SUCCESS
    name = type(exc).__name__
    if not isinstance(exc, Exception) or isinstance(exc, asyncio.CancelledError):
        return Classification(Outcome.IGNORED, name)
    if ignore and isinstance(exc, tuple(ignore)):
        return Classification(Outcome.IGNORED, name)
    if record and isinstance(exc, tuple(record)):
        return Classification(Outcome.FAILURE, name)
    provider_error = exc if isinstance(exc, ProviderError) else _sdk_error(exc)
    if provider_error is not None:
        return Classification(
            _provider_outcome(provider_error),
            type(provider_error).__name__,
            auth_error=isinstance(provider_error, AuthenticationError),
            provider=provider_error.provider,
        )
    if isinstance(exc, KiteError):
        return Classification(Outcome.IGNORED, name)
    return Classification(Outcome.FAILURE, name)


def table_markdown() -> str:
    """``TABLE`` as a markdown table (docs/safety.md embeds exactly this)."""
    lines = ["| error | outcome | why |", "|---|---|---|"]
    lines += [f"| {what} | **{outcome}** | {why} |" for what, outcome, why in TABLE]
    return "\n".join(lines)
