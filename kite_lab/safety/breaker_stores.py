"""Where a circuit breaker keeps its state: this process (memory) or Redis (shared).

Both stores implement one contract (``BreakerStore``) and one state machine:

    closed --failure_threshold consecutive failures--> open
    open --timeout elapsed, next caller--> half_open (that caller takes a permit)
    half_open --success_threshold permit successes--> closed
    half_open --a permit holder fails--> open (a fresh timeout)

Half-open admits at most ``half_open_max_calls`` *permits* at a time. A permit is a
token with a lease (``max_half_open_seconds``): a holder that crashes gives its permit
back when the lease ends, so a dead replica cannot wedge the breaker half-open. Only
permit holders move a half-open breaker; calls admitted while closed that finish later
only update counters.

The Redis store runs every decision as one Lua script (atomic across every process and
replica) and takes time from the server's ``TIME`` plus the clock's offset; the memory
store takes a ``threading.Lock`` for the few microseconds a decision takes -- never
while the protected call runs, and not at all to admit a call while closed.
"""

from __future__ import annotations

import enum
import itertools
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.backends.redis_client import LUA_NOW, LuaScript, key_join, redis_client

if TYPE_CHECKING:
    from kite_lab.safety.breaker import CircuitBreakerConfig

__all__ = [
    "Admission",
    "BreakerStore",
    "CircuitState",
    "MemoryBreakerStore",
    "RedisBreakerStore",
    "Snapshot",
    "Transition",
]

#: seconds a Redis breaker's keys live after their last write (state is re-created closed)
REDIS_KEY_TTL = 7 * 24 * 3600


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


class BreakerStore(ABC):
    """The contract both stores implement. All methods are coroutines."""

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


# -- memory ------------------------------------------------------------------------------


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


# -- Redis -------------------------------------------------------------------------------

_ACQUIRE = LuaScript(LUA_NOW + """
-- KEYS: state hash, permits zset. ARGV: offset, half_open_max, permit_seconds, token, ttl
-- -> {decision, state, retry_after, transitioned_from, gen}
local st = redis.call('HMGET', KEYS[1], 'state', 'open_until', 'gen')
local state = st[1] or 'closed'
local gen = st[3] or '0'
if state == 'closed' then return {'allowed', 'closed', '', '', gen} end
local now = now_s()
local from = ''
if state == 'open' then
  local open_until = tonumber(st[2]) or 0
  if now < open_until then
    redis.call('HINCRBY', KEYS[1], 'rejected_calls', 1)
    return {'rejected', 'open', tostring(open_until - now), '', gen}
  end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'half_open_successes', 0,
             'changed_at', tostring(now), 'reason', 'timeout elapsed')
  gen = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 1))
  redis.call('DEL', KEYS[2])
  from = 'open'
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tostring(now))
if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[2], tostring(now + tonumber(ARGV[3])), ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return {'allowed', 'half_open', '', from, gen}
end
redis.call('HINCRBY', KEYS[1], 'rejected_calls', 1)
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {'rejected', 'half_open', tostring(tonumber(first[2]) - now), from, gen}
""")

_RECORD = LuaScript(LUA_NOW + """
-- KEYS: state hash, permits zset
-- ARGV: offset, outcome, token, failure_threshold, success_threshold, timeout, error, ttl
-- -> {state, old_state_if_transitioned, reason, consecutive_failures, gen}
local st = redis.call('HMGET', KEYS[1], 'state', 'consecutive_failures', 'gen')
local state = st[1] or 'closed'
local token = ARGV[3]
if ARGV[2] == 'release' then
  if token ~= '' then redis.call('ZREM', KEYS[2], token) end
  return {state, '', '', st[2] or '0', st[3] or '0'}
end
local now = now_s()
local holder = token ~= '' and redis.call('ZREM', KEYS[2], token) == 1
redis.call('HINCRBY', KEYS[1], 'total_calls', 1)
local new, reason = '', ''
local n = 0
if ARGV[2] == 'success' then
  redis.call('HINCRBY', KEYS[1], 'successful_calls', 1)
  if state == 'closed' then
    redis.call('HSET', KEYS[1], 'consecutive_failures', 0)
  elseif state == 'half_open' and holder then
    local ok = redis.call('HINCRBY', KEYS[1], 'half_open_successes', 1)
    if ok >= tonumber(ARGV[5]) then new, reason = 'closed', 'probe calls succeeded' end
  end
  n = tonumber(redis.call('HGET', KEYS[1], 'consecutive_failures') or 0)
else
  redis.call('HINCRBY', KEYS[1], 'failed_calls', 1)
  redis.call('HSET', KEYS[1], 'last_failure_at', tostring(now), 'last_failure_error', ARGV[7])
  n = redis.call('HINCRBY', KEYS[1], 'consecutive_failures', 1)
  if state == 'closed' and n >= tonumber(ARGV[4]) then
    new, reason = 'open', n .. ' consecutive failures'
  elseif state == 'half_open' and holder then
    new, reason = 'open', 'probe call failed'
  end
end
local gen = st[3] or '0'
if new == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tostring(now + tonumber(ARGV[6])),
             'half_open_successes', 0, 'changed_at', tostring(now), 'reason', reason)
  redis.call('DEL', KEYS[2])
elseif new == 'closed' then
  redis.call('HSET', KEYS[1], 'state', 'closed', 'consecutive_failures', 0,
             'half_open_successes', 0, 'changed_at', tostring(now), 'reason', reason)
  redis.call('DEL', KEYS[2])
  n = 0
end
if new ~= '' then gen = tostring(redis.call('HINCRBY', KEYS[1], 'gen', 1)) end
redis.call('EXPIRE', KEYS[1], ARGV[8])
if new ~= '' then return {new, state, reason, tostring(n), gen} end
return {state, '', '', tostring(n), gen}
""")

_FORCE = LuaScript(LUA_NOW + """
-- KEYS: state hash, permits zset. ARGV: offset, target, timeout, reason, ttl
-- -> {old_state, gen}
local now = now_s()
local old = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[2] == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tostring(now + tonumber(ARGV[3])),
             'half_open_successes', 0, 'changed_at', tostring(now), 'reason', ARGV[4])
else
  redis.call('HSET', KEYS[1], 'state', 'closed', 'consecutive_failures', 0,
             'half_open_successes', 0, 'changed_at', tostring(now), 'reason', ARGV[4])
end
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('DEL', KEYS[2])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {old, tostring(gen)}
""")

_SNAPSHOT = LuaScript(LUA_NOW + """
-- KEYS: state hash, permits zset. ARGV: offset -> HGETALL plus _now and _permits
local now = now_s()
local permits = redis.call('ZCOUNT', KEYS[2], '(' .. tostring(now), '+inf')
local all = redis.call('HGETALL', KEYS[1])
table.insert(all, '_now')
table.insert(all, tostring(now))
table.insert(all, '_permits')
table.insert(all, tostring(permits))
return all
""")


class RedisBreakerStore(BreakerStore):
    """State in Redis, shared by every process and replica using the same prefix."""

    backend = "redis"

    def __init__(self, url: str, prefix: str, name: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.clock = clock
        base = key_join(prefix, "breaker", "{" + name + "}")  # one hash slot per breaker
        self.keys = (base, base + ":permits")
        self._tokens = itertools.count(1)
        import os
        import uuid

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
