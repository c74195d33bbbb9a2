"""A circuit breaker's state in this process, shared by every thread and event loop of it.

The memory store takes a ``threading.Lock`` for the few microseconds a decision takes --
never while the protected call runs, and not at all to admit a call while closed (the
hot path reads one attribute). Its coroutines never suspend (``inline = True``), so the
breaker calls the synchronous ``*_now`` core directly. The state machine is
``breaker_store``'s.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.safety.breaker_store import BreakerStore
from kite_lab.safety.breaker_types import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Admission,
    CircuitBreakerConfig,
    CircuitState,
    RecordResult,
    Snapshot,
    Transition,
)

__all__ = ["MemoryBreakerStore"]


class MemoryBreakerStore(BreakerStore):
    """State in this process; shared by every thread and event loop of it."""

    backend = "memory"
    inline = True

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens = itertools.count(1)
        self._state = CLOSED
        self._open_until = 0.0
        self._consecutive = 0
        self._ho_successes = 0
        self._permits: dict[str, float] = {}
        self._total = self._successes = self._failures = self._rejected = 0
        self._last_failure: dict[str, Any] | None = None
        self._reason: str | None = None
        self._changed_at: float | None = None
        self._gen = 0
        self._admit_closed = Admission(True, CLOSED, store=self)  # never mutated
        self._closed_ok = RecordResult(CLOSED, None, 0, 0)  # likewise; rebuilt per transition

    # The async contract, delegating to the synchronous core.
    async def acquire(self, cfg: CircuitBreakerConfig) -> Admission:
        return self.acquire_now(cfg)

    async def record(
        self, admission: Admission, outcome: str, cfg: CircuitBreakerConfig, error: str | None
    ) -> RecordResult:
        return self.record_now(admission, outcome, cfg, error)

    async def force(
        self, state: CircuitState, cfg: CircuitBreakerConfig, reason: str
    ) -> RecordResult:
        return self.force_now(state, cfg, reason)

    async def snapshot(self) -> Snapshot:
        return self.snapshot_now()

    # -- the synchronous core ------------------------------------------------------------
    def _move(self, new: CircuitState, reason: str, now: float, timeout: float) -> Transition:
        old, self._state = self._state, new
        self._reason, self._changed_at = reason, now
        self._gen += 1
        self._closed_ok = RecordResult(CLOSED, None, 0, self._gen)
        self._ho_successes = 0
        self._permits.clear()
        if new is OPEN:
            self._open_until = now + timeout
        elif new is CLOSED:
            self._consecutive = 0
        return Transition(old, new, reason)

    def acquire_now(self, cfg: CircuitBreakerConfig) -> Admission:
        if self._state is CLOSED:  # the hot path: one attribute read, no lock
            return self._admit_closed
        with self._lock:
            now = self.clock.now()
            transition = None
            if self._state is CLOSED:
                return self._admit_closed
            if self._state is OPEN:
                if now < self._open_until:
                    self._rejected += 1
                    return Admission(False, OPEN, retry_after=self._open_until - now, store=self)
                transition = self._move(HALF_OPEN, "timeout elapsed", now, 0.0)
            for token, deadline in list(self._permits.items()):
                if deadline <= now:  # a holder that never came back
                    del self._permits[token]
            if len(self._permits) < cfg.half_open_max_calls:
                token = f"m{next(self._tokens)}"
                self._permits[token] = now + cfg.max_half_open_seconds
                return Admission(True, HALF_OPEN, token, transition=transition, store=self)
            self._rejected += 1
            wait = min(min(self._permits.values()) - now, cfg.timeout_seconds)
            return Admission(False, HALF_OPEN, retry_after=max(wait, 0.0),
                             transition=transition, store=self)

    def record_now(
        self, admission: Admission, outcome: str, cfg: CircuitBreakerConfig, error: str | None
    ) -> RecordResult:
        if outcome == "success" and admission.token is None:
            with self._lock:  # the hot path: a success while closed
                if self._state is CLOSED:
                    self._total += 1
                    self._successes += 1
                    self._consecutive = 0
                    return self._closed_ok
        with self._lock:
            now = self.clock.now()
            token = admission.token
            transition = None
            if outcome == "release":
                if token is not None:
                    self._permits.pop(token, None)
                return RecordResult(self._state, None, self._consecutive, self._gen)
            self._total += 1
            holder = token is not None and self._permits.pop(token, None) is not None
            if outcome == "success":
                self._successes += 1
                if self._state is CLOSED:
                    self._consecutive = 0
                elif self._state is HALF_OPEN and holder:
                    self._ho_successes += 1
                    if self._ho_successes >= cfg.success_threshold:
                        transition = self._move(CLOSED, "probe calls succeeded", now, 0.0)
            else:
                self._failures += 1
                self._consecutive += 1
                self._last_failure = {"time": now, "error": error}
                if self._state is CLOSED and self._consecutive >= cfg.failure_threshold:
                    transition = self._move(
                        OPEN, f"{self._consecutive} consecutive failures", now, cfg.timeout_seconds
                    )
                elif self._state is HALF_OPEN and holder:
                    transition = self._move(OPEN, "probe call failed", now, cfg.timeout_seconds)
            return RecordResult(self._state, transition, self._consecutive, self._gen)

    def force_now(
        self, state: CircuitState, cfg: CircuitBreakerConfig, reason: str
    ) -> RecordResult:
        with self._lock:
            now = self.clock.now()
            timeout = cfg.timeout_seconds if state is OPEN else 0.0
            transition = self._move(state, reason, now, timeout)
            changed = transition if transition.old is not transition.new else None
            return RecordResult(state, changed, self._consecutive, self._gen)

    def snapshot_now(self) -> Snapshot:
        with self._lock:
            now = self.clock.now()
            state = self._state
            if state is OPEN and now >= self._open_until:
                state = HALF_OPEN  # effective: the next caller becomes the probe
            return Snapshot(
                state=state,
                open_until=self._open_until if self._state is OPEN else None,
                consecutive_failures=self._consecutive,
                half_open_successes=self._ho_successes,
                permits_in_use=sum(1 for d in self._permits.values() if d > now),
                total_calls=self._total,
                successful_calls=self._successes,
                failed_calls=self._failures,
                rejected_calls=self._rejected,
                last_failure=dict(self._last_failure) if self._last_failure else None,
                reason=self._reason,
                changed_at=self._changed_at,
                gen=self._gen,
            )

    def seed(self, snapshot: Snapshot, cfg: CircuitBreakerConfig) -> None:
        """Start from another store's last known state (used when Redis goes away)."""
        with self._lock:
            if snapshot.state is OPEN and snapshot.open_until:
                self._state, self._open_until = OPEN, snapshot.open_until
                self._reason = "last known shared state"
            self._consecutive = min(snapshot.consecutive_failures, cfg.failure_threshold - 1)
