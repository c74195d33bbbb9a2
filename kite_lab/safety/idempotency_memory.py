"""Idempotency records in this process: a dict behind a lock.

Shared by every thread and event loop of the process; each of the contract's operations
(``idempotency_store``) is decided under the lock, so racing callers never both win.
Expired records are swept every ``_SWEEP_EVERY`` operations.
"""

from __future__ import annotations

import threading
from typing import Any

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.safety.idempotency_store import LEASE_GC_GRACE, BeginResult, IdempotencyStore

__all__ = ["MemoryIdempotencyStore"]


class MemoryIdempotencyStore(IdempotencyStore):
    """Records in a dict, guarded by a lock; shared by every thread and loop of a process."""

    backend = "memory"
    _SWEEP_EVERY = 1024

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._records: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._ops = 0

    def _live(self, key: str, now: float) -> dict[str, Any] | None:
        record = self._records.get(key)
        if record is not None and record["state"] == "completed" and record["expires_at"] <= now:
            del self._records[key]
            return None
        return record

    def _sweep(self, now: float) -> None:
        self._ops += 1
        if self._ops % self._SWEEP_EVERY:
            return
        for key in [k for k, r in self._records.items() if r["expires_at"] <= now]:
            del self._records[key]

    async def begin(
        self, key: str, token: str, fingerprint: str, lease_seconds: float
    ) -> BeginResult:
        with self._lock:
            now = self.clock.now()
            self._sweep(now)
            record = self._live(key, now)
            reclaimed = False
            if record is not None:
                if record["state"] == "completed":
                    if record["fingerprint"] != fingerprint:
                        return BeginResult("conflict", conflict_with="completed")
                    return BeginResult("completed", data=record["data"],
                                       completed_at=record["completed_at"])
                if record["lease_until"] > now:
                    if record["fingerprint"] != fingerprint:
                        return BeginResult("conflict", conflict_with="in_progress")
                    return BeginResult("in_progress", lease_remaining=record["lease_until"] - now)
                reclaimed = True
            self._records[key] = {
                "state": "in_progress",
                "token": token,
                "fingerprint": fingerprint,
                "lease_until": now + lease_seconds,
                "started_at": now,
                "expires_at": now + lease_seconds + LEASE_GC_GRACE,
            }
            return BeginResult("acquired", reclaimed=reclaimed)

    def _owned(self, key: str, token: str) -> dict[str, Any] | None:
        record = self._records.get(key)
        if record is None or record["state"] != "in_progress" or record["token"] != token:
            return None
        return record

    async def complete(self, key: str, token: str, data: str, ttl_seconds: float) -> bool:
        with self._lock:
            record = self._owned(key, token)
            if record is None:
                return False
            now = self.clock.now()
            self._records[key] = {
                "state": "completed",
                "fingerprint": record["fingerprint"],
                "data": data,
                "completed_at": now,
                "expires_at": now + ttl_seconds,
            }
            return True

    async def release(self, key: str, token: str) -> bool:
        with self._lock:
            if self._owned(key, token) is None:
                return False
            del self._records[key]
            return True

    async def extend(self, key: str, token: str, lease_seconds: float) -> bool:
        with self._lock:
            record = self._owned(key, token)
            if record is None:
                return False
            now = self.clock.now()
            record["lease_until"] = now + lease_seconds
            record["expires_at"] = now + lease_seconds + LEASE_GC_GRACE
            return True

    async def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._live(key, self.clock.now())
            return dict(record) if record is not None else None

    async def delete(self, key: str) -> bool:
        with self._lock:
            return self._records.pop(key, None) is not None
