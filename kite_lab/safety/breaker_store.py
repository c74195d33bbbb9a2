"""The contract between a circuit breaker and the store that keeps its state.

Both stores (``breaker_memory``: this process; ``breaker_redis``: every process and
replica) implement one state machine:

    closed --failure_threshold consecutive failures--> open
    open --timeout elapsed, next caller--> half_open (that caller takes a permit)
    half_open --success_threshold permit successes--> closed
    half_open --a permit holder fails--> open (a fresh timeout)

Half-open admits at most ``half_open_max_calls`` *permits* at a time. A permit is a
token with a lease (``max_half_open_seconds``): a holder that crashes gives its permit
back when the lease ends, so a dead replica cannot wedge the breaker half-open. Only
permit holders move a half-open breaker; calls admitted while closed that finish later
only update counters. ``tests/safety/test_breaker_core.py`` runs the same tests against
every store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from kite_lab.safety.breaker_types import (
    Admission,
    CircuitBreakerConfig,
    CircuitState,
    RecordResult,
    Snapshot,
)

__all__ = ["BreakerStore"]


class BreakerStore(ABC):
    """The contract every breaker store implements. All methods are coroutines."""

    backend: str = "?"
    #: True when the coroutines never suspend (the breaker then calls ``*_now`` directly)
    inline: bool = False

    @abstractmethod
    async def acquire(self, cfg: CircuitBreakerConfig) -> Admission: ...

    @abstractmethod
    async def record(
        self, admission: Admission, outcome: str, cfg: CircuitBreakerConfig, error: str | None
    ) -> RecordResult: ...

    @abstractmethod
    async def force(
        self, state: CircuitState, cfg: CircuitBreakerConfig, reason: str
    ) -> RecordResult: ...

    @abstractmethod
    async def snapshot(self) -> Snapshot: ...

    # The synchronous core of inline stores (``inline = True``): the breaker calls these
    # directly, without awaiting. Shared stores have none.
    def acquire_now(self, cfg: CircuitBreakerConfig) -> Admission:
        raise NotImplementedError(f"{type(self).__name__} is not an inline store")

    def record_now(
        self, admission: Admission, outcome: str, cfg: CircuitBreakerConfig, error: str | None
    ) -> RecordResult:
        raise NotImplementedError(f"{type(self).__name__} is not an inline store")

    def force_now(
        self, state: CircuitState, cfg: CircuitBreakerConfig, reason: str
    ) -> RecordResult:
        raise NotImplementedError(f"{type(self).__name__} is not an inline store")

    def snapshot_now(self) -> Snapshot:
        raise NotImplementedError(f"{type(self).__name__} is not an inline store")
