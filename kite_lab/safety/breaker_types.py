"""The circuit breaker's vocabulary: states, the stores' answers, and its config.

Why a module of its own: the breaker, its stores (memory, Redis) and the Redis fallback
all speak these types. Living here -- importing nothing of the breaker -- they let the
stores and the fallback depend on types, never on ``CircuitBreaker``, so the modules form
no import cycle.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import ConfigError
from kite_lab.core.validate import check_int, check_number

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "Admission",
    "CircuitBreakerConfig",
    "CircuitState",
    "RecordResult",
    "Snapshot",
    "Transition",
]


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


@dataclass(frozen=True, slots=True)
class Transition:
    old: CircuitState
    new: CircuitState
    reason: str


@dataclass(slots=True)
class Admission:
    """A store's answer to "may this call go ahead?"."""

    allowed: bool
    #: the state the decision was taken in
    state: CircuitState
    #: half-open permit token; None when admitted while closed
    token: str | None = None
    #: when rejected: seconds until a call may be admitted again (an estimate)
    retry_after: float | None = None
    transition: Transition | None = None
    #: the store that admitted the call records its outcome (matters for fallback)
    store: Any = None
    #: transitions so far (orders answers that arrive out of order)
    gen: int = 0


@dataclass(slots=True)
class Snapshot:
    """Everything ``get_stats`` reports, as one store saw it."""

    state: CircuitState = CLOSED
    open_until: float | None = None
    consecutive_failures: int = 0
    half_open_successes: int = 0
    permits_in_use: int = 0
    total_calls: int = 0
    successful_calls: int = 0
    failed_calls: int = 0
    rejected_calls: int = 0
    last_failure: dict[str, Any] | None = None
    reason: str | None = None
    changed_at: float | None = None
    gen: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class RecordResult:
    state: CircuitState
    transition: Transition | None = None
    #: consecutive failures after this record (for tests and stats)
    consecutive_failures: int = 0
    gen: int = 0


_POSITIVE_INTS = ("failure_threshold", "success_threshold", "half_open_max_calls")
_POSITIVE_FLOATS = ("timeout_seconds", "max_half_open_seconds")
_EXCEPTION_LISTS = ("record_exceptions", "ignore_exceptions")


@dataclass(eq=False)
class CircuitBreakerConfig:
    """Thresholds of a breaker; every assignment is validated and takes effect at once.

    ``ai.circuit_breaker.config.failure_threshold = 3`` changes the live breaker: the
    stores read the config on every decision.
    """

    #: consecutive counted failures that open a closed breaker
    failure_threshold: int = 3
    #: successful permit calls that close a half-open breaker
    success_threshold: int = 2
    #: seconds an open breaker rejects calls before letting a probe through
    timeout_seconds: float = 60.0
    #: probes allowed at once while half-open
    half_open_max_calls: int = 1
    #: lease of a half-open permit: a probe that never reports back frees it after this
    max_half_open_seconds: float = 120.0
    #: exception classes that always count as failures (checked after ignore_exceptions)
    record_exceptions: tuple[type[BaseException], ...] = ()
    #: exception classes that never count (they release a half-open permit)
    ignore_exceptions: tuple[type[BaseException], ...] = ()

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, _validated(name, value))

    @classmethod
    def from_settings(cls, settings: KiteSettings, **overrides: Any) -> CircuitBreakerConfig:
        """CIRCUIT_BREAKER_THRESHOLD / CIRCUIT_BREAKER_TIMEOUT, probes leased 2x LLM_TIMEOUT."""
        values: dict[str, Any] = {
            "failure_threshold": settings.circuit_breaker_threshold,
            "timeout_seconds": settings.circuit_breaker_timeout,
            "max_half_open_seconds": max(120.0, 2 * settings.llm_timeout),
        }
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _EXCEPTION_LISTS:
            data[name] = [cls.__name__ for cls in data[name]]
        return data


def _validated(name: str, value: Any) -> Any:
    what = f"circuit breaker {name}"
    if name in _POSITIVE_INTS:
        return check_int(value, what, error=ConfigError)
    if name in _POSITIVE_FLOATS:
        return check_number(value, what, unit="of seconds", error=ConfigError)
    if name in _EXCEPTION_LISTS:
        classes = tuple(value or ())
        for cls in classes:
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise ConfigError(f"circuit breaker {name} must list exception classes, "
                                  f"got {cls!r}")
        return classes
    raise AttributeError(f"CircuitBreakerConfig has no setting {name!r}")
