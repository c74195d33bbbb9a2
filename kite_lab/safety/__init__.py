"""Safety: circuit breaker, idempotency, kill switch and rate limits.

Each component has a memory store (this process) and a Redis store (every process and
replica) behind one contract; ``build_*`` picks the store from the settings. Names are
loaded on first access, so ``import kite_lab`` never imports redis or limits.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kite_lab.backends.clock import FakeClock, SystemClock
    from kite_lab.safety.breaker import CircuitBreaker, build_breaker
    from kite_lab.safety.breaker_types import CircuitBreakerConfig, CircuitState
    from kite_lab.safety.classify import classify
    from kite_lab.safety.idempotency import (
        IdempotencyManager,
        JSONSerializer,
        Lease,
        StoredResult,
        build_idempotency,
    )
    from kite_lab.safety.kill_switch import KillSwitch, KillSwitchLimits, build_kill_switch
    from kite_lab.safety.rate_limit import RateLimiter, RateLimitResult

#: name -> the module that defines it
_EXPORTS = {
    "CircuitBreaker": "kite_lab.safety.breaker",
    "CircuitBreakerConfig": "kite_lab.safety.breaker_types",
    "CircuitState": "kite_lab.safety.breaker_types",
    "build_breaker": "kite_lab.safety.breaker",
    "classify": "kite_lab.safety.classify",
    "FakeClock": "kite_lab.backends.clock",
    "SystemClock": "kite_lab.backends.clock",
    "IdempotencyManager": "kite_lab.safety.idempotency",
    "JSONSerializer": "kite_lab.safety.idempotency",
    "Lease": "kite_lab.safety.idempotency",
    "StoredResult": "kite_lab.safety.idempotency",
    "build_idempotency": "kite_lab.safety.idempotency",
    "KillSwitch": "kite_lab.safety.kill_switch",
    "KillSwitchLimits": "kite_lab.safety.kill_switch",
    "build_kill_switch": "kite_lab.safety.kill_switch",
    "RateLimiter": "kite_lab.safety.rate_limit",
    "RateLimitResult": "kite_lab.safety.rate_limit",
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
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
