"""Safety: circuit breaker, idempotency, kill switch and rate limits.

Each component has a memory store (this process) and a Redis store (every process and
replica) behind one contract; ``build_*`` picks the store from the settings. Names are
loaded on first access, so ``import kite_lab`` never imports redis or limits.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kite_lab.safety.breaker import (
        CircuitBreaker,
        CircuitBreakerConfig,
        CircuitState,
        build_breaker,
    )
    from kite_lab.safety.classify import classify
    from kite_lab.backends.clock import FakeClock, SystemClock
    from kite_lab.safety.idempotency import (
        IdempotencyManager,
        JSONSerializer,
        Lease,
        StoredResult,
        build_idempotency,
    )
    from kite_lab.safety.kill_switch import KillSwitch, KillSwitchLimits, build_kill_switch
    from kite_lab.safety.rate_limit import RateLimiter, RateLimitResult

_EXPORTS = {
    "CircuitBreaker": "breaker",
    "CircuitBreakerConfig": "breaker",
    "CircuitState": "breaker",
    "build_breaker": "breaker",
    "classify": "classify",
    "FakeClock": "clock",
    "SystemClock": "clock",
    "IdempotencyManager": "idempotency",
    "JSONSerializer": "idempotency",
    "Lease": "idempotency",
    "StoredResult": "idempotency",
    "build_idempotency": "idempotency",
    "KillSwitch": "kill_switch",
    "KillSwitchLimits": "kill_switch",
    "build_kill_switch": "kill_switch",
    "RateLimiter": "rate_limit",
    "RateLimitResult": "rate_limit",
}

__all__ = [
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitState",
    "FakeClock",
    "IdempotencyManager",
    "JSONSerializer",
    "KillSwitch",
    "KillSwitchLimits",
    "Lease",
    "RateLimitResult",
    "RateLimiter",
    "StoredResult",
    "SystemClock",
    "build_breaker",
    "build_idempotency",
    "build_kill_switch",
    "classify",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kite_lab.safety' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kite_lab.safety.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
