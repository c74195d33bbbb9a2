"""The contract of the stores that keep idempotency records, in memory or in Redis.

``idempotency_memory`` (this process) and ``idempotency_redis`` (every replica) implement
it; ``tests/safety/test_idempotency_contract.py`` runs the same tests against both.

A record is either an *in-progress lease* (owner token, argument fingerprint, lease end)
or a *completed result* (fingerprint, serialized result, expiry). Both stores implement
the same five atomic operations; every decision is made inside the store (a lock, or a
Lua script), never by a read-then-write in Python, so two callers can never both win.

- ``begin``: free (or an expired lease, or an expired result) -> a new lease for the
  caller's token; exactly one of any number of racing callers gets it. A live lease or a
  result with a different fingerprint -> ``conflict``.
- ``complete`` / ``release`` / ``extend``: only with the current owner token, so an owner
  whose lease expired and was reclaimed can never overwrite the new owner's result.

Expiry is decided by the clock (Redis: server ``TIME`` plus the clock's offset), not by
Redis key expiry alone, so a fake clock drives leases in tests; every Redis key also has
a TTL so nothing is left behind.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

__all__ = ["LEASE_GC_GRACE", "BeginResult", "IdempotencyStore"]

#: extra seconds an in-progress record outlives its lease (garbage collection only)
LEASE_GC_GRACE = 60.0


@dataclass(frozen=True, slots=True)
class BeginResult:
    #: "acquired" | "completed" | "in_progress" | "conflict"
    kind: str
    #: acquired by taking over an expired lease (the previous owner died or stalled)
    reclaimed: bool = False
    #: completed: the serialized result
    data: str | None = None
    completed_at: float | None = None
    #: in_progress: seconds until the current lease ends
    lease_remaining: float | None = None
    #: conflict: the state of the record whose fingerprint differs
    conflict_with: str | None = None


class IdempotencyStore(ABC):
    """The contract every idempotency store implements. All methods are coroutines."""

    backend: str = "?"

    @abstractmethod
    async def begin(
        self, key: str, token: str, fingerprint: str, lease_seconds: float
    ) -> BeginResult: ...

    @abstractmethod
    async def complete(self, key: str, token: str, data: str, ttl_seconds: float) -> bool: ...

    @abstractmethod
    async def release(self, key: str, token: str) -> bool: ...

    @abstractmethod
    async def extend(self, key: str, token: str, lease_seconds: float) -> bool: ...

    @abstractmethod
    async def get(self, key: str) -> dict[str, Any] | None: ...

    @abstractmethod
    async def delete(self, key: str) -> bool: ...
