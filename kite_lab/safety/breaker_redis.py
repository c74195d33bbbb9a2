"""A circuit breaker's state in Redis, shared by every process and replica.

Every decision is one Lua script (``kite_lab/backends/lua/breaker_*.lua``), atomic across
processes, timed by the server's ``TIME`` plus the clock's offset -- replicas' clocks
drift, the server's does not differ between them. The state machine is
``breaker_store``'s; while Redis is unreachable ``breaker_fallback`` takes over.

Keys: ``{prefix}breaker:{<name>}`` (a hash) and ``...:permits`` (a sorted set of
half-open permit tokens scored by lease end); both live ``REDIS_KEY_TTL`` after their
last write.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import Any

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.backends.redis_client import LuaScript, key_join, redis_client
from kite_lab.safety.breaker_store import BreakerStore
from kite_lab.safety.breaker_types import (
    HALF_OPEN,
    OPEN,
    Admission,
    CircuitBreakerConfig,
    CircuitState,
    RecordResult,
    Snapshot,
    Transition,
)

__all__ = ["REDIS_KEY_TTL", "RedisBreakerStore"]

#: seconds a Redis breaker's keys live after their last write (state is re-created closed)
REDIS_KEY_TTL = 7 * 24 * 3600

_ACQUIRE = LuaScript("breaker_acquire.lua", clock=True)
_RECORD = LuaScript("breaker_record.lua", clock=True)
_FORCE = LuaScript("breaker_force.lua", clock=True)
_SNAPSHOT = LuaScript("breaker_snapshot.lua", clock=True)


class RedisBreakerStore(BreakerStore):
    """State in Redis, shared by every process and replica using the same prefix."""

    backend = "redis"

    def __init__(self, url: str, prefix: str, name: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        base = key_join(prefix, "breaker", "{" + name + "}")  # one hash slot per breaker
        self.keys = (base, base + ":permits")
        self._tokens = itertools.count(1)
        self._token_prefix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}-"

    def _client(self) -> Any:
        return redis_client(self.url)

    async def acquire(self, cfg: CircuitBreakerConfig) -> Admission:
        token = self._token_prefix + str(next(self._tokens))
        decision, state, wait, came_from, gen = await _ACQUIRE(
            self._client(), self.keys,
            (self.clock.offset(), cfg.half_open_max_calls, cfg.max_half_open_seconds,
             token, REDIS_KEY_TTL),
        )
        now_state = CircuitState(state)
        transition = Transition(OPEN, HALF_OPEN, "timeout elapsed") if came_from else None
        if decision == "allowed":
            return Admission(True, now_state, token if now_state is HALF_OPEN else None,
                             transition=transition, store=self, gen=int(gen))
        return Admission(False, now_state, retry_after=max(float(wait), 0.0),
                         transition=transition, store=self, gen=int(gen))

    async def record(
        self, admission: Admission, outcome: str, cfg: CircuitBreakerConfig, error: str | None
    ) -> RecordResult:
        state, old, reason, consecutive, gen = await _RECORD(
            self._client(), self.keys,
            (self.clock.offset(), outcome, admission.token or "", cfg.failure_threshold,
             cfg.success_threshold, cfg.timeout_seconds, error or "", REDIS_KEY_TTL),
        )
        new = CircuitState(state)
        transition = Transition(CircuitState(old), new, reason) if old else None
        return RecordResult(new, transition, int(float(consecutive)), int(gen))

    async def force(
        self, state: CircuitState, cfg: CircuitBreakerConfig, reason: str
    ) -> RecordResult:
        old, gen = await _FORCE(
            self._client(), self.keys,
            (self.clock.offset(), state.value, cfg.timeout_seconds, reason, REDIS_KEY_TTL),
        )
        old_state = CircuitState(old)
        changed = Transition(old_state, state, reason) if old_state is not state else None
        return RecordResult(state, changed, 0, int(gen))

    async def snapshot(self) -> Snapshot:
        flat = await _SNAPSHOT(self._client(), self.keys, (self.clock.offset(),))
        data = dict(zip(flat[::2], flat[1::2], strict=True))
        now = float(data["_now"])
        state = CircuitState(data.get("state", "closed"))
        open_until = float(data["open_until"]) if state is OPEN and "open_until" in data else None
        if state is OPEN and open_until is not None and now >= open_until:
            state = HALF_OPEN
        last = None
        if "last_failure_at" in data:
            last = {"time": float(data["last_failure_at"]),
                    "error": data.get("last_failure_error") or None}
        return Snapshot(
            state=state,
            open_until=open_until,
            consecutive_failures=int(data.get("consecutive_failures", 0)),
            half_open_successes=int(data.get("half_open_successes", 0)),
            permits_in_use=int(data["_permits"]),
            total_calls=int(data.get("total_calls", 0)),
            successful_calls=int(data.get("successful_calls", 0)),
            failed_calls=int(data.get("failed_calls", 0)),
            rejected_calls=int(data.get("rejected_calls", 0)),
            last_failure=last,
            reason=data.get("reason"),
            changed_at=float(data["changed_at"]) if "changed_at" in data else None,
            gen=int(data.get("gen", 0)),
        )
