"""Where idempotency records live: this process (memory) or Redis (shared).

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

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.backends.redis_client import LUA_NOW, LuaScript, key_join, redis_client

__all__ = ["BeginResult", "IdempotencyStore", "MemoryIdempotencyStore", "RedisIdempotencyStore"]

#: extra seconds an in-progress Redis key outlives its lease (garbage collection only)
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


# -- memory ------------------------------------------------------------------------------


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


# -- Redis -------------------------------------------------------------------------------

_BEGIN = LuaScript(LUA_NOW + """
-- KEYS: record hash. ARGV: offset, token, fingerprint, lease_seconds, gc_grace
-- -> {kind, a, b}
local now = now_s()
local r = redis.call('HMGET', KEYS[1], 'state', 'fingerprint', 'lease_until', 'data',
                     'completed_at', 'expires_at')
local reclaimed = '0'
if r[1] == 'completed' and tonumber(r[6]) > now then
  if r[2] ~= ARGV[3] then return {'conflict', 'completed', ''} end
  return {'completed', r[4], r[5]}
elseif r[1] == 'in_progress' then
  local left = tonumber(r[3]) - now
  if left > 0 then
    if r[2] ~= ARGV[3] then return {'conflict', 'in_progress', ''} end
    return {'in_progress', tostring(left), ''}
  end
  reclaimed = '1'
end
redis.call('DEL', KEYS[1])
local lease = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'in_progress', 'token', ARGV[2], 'fingerprint', ARGV[3],
           'lease_until', tostring(now + lease), 'started_at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((lease + tonumber(ARGV[5])) * 1000))
return {'acquired', reclaimed, ''}
""")

_COMPLETE = LuaScript(LUA_NOW + """
-- KEYS: record hash. ARGV: offset, token, data, ttl_seconds -> 1 stored / 0 not the owner
local r = redis.call('HMGET', KEYS[1], 'state', 'token', 'fingerprint')
if r[1] ~= 'in_progress' or r[2] ~= ARGV[2] then return 0 end
local now = now_s()
local ttl = tonumber(ARGV[4])
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'state', 'completed', 'fingerprint', r[3], 'data', ARGV[3],
           'completed_at', tostring(now), 'expires_at', tostring(now + ttl))
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000))
return 1
""")

_RELEASE = LuaScript(LUA_NOW + """
-- KEYS: record hash. ARGV: offset, token -> 1 released / 0 not the owner
local r = redis.call('HMGET', KEYS[1], 'state', 'token')
if r[1] ~= 'in_progress' or r[2] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
return 1
""")

_EXTEND = LuaScript(LUA_NOW + """
-- KEYS: record hash. ARGV: offset, token, lease_seconds, gc_grace -> 1 / 0 not the owner
local r = redis.call('HMGET', KEYS[1], 'state', 'token')
if r[1] ~= 'in_progress' or r[2] ~= ARGV[2] then return 0 end
local lease = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease_until', tostring(now_s() + lease))
redis.call('PEXPIRE', KEYS[1], math.ceil((lease + tonumber(ARGV[4])) * 1000))
return 1
""")

_GET = LuaScript(LUA_NOW + """
-- KEYS: record hash. ARGV: offset -> HGETALL, or {} when the result has expired
local all = redis.call('HGETALL', KEYS[1])
local r = redis.call('HMGET', KEYS[1], 'state', 'expires_at')
if r[1] == 'completed' and tonumber(r[2]) <= now_s() then return {} end
return all
""")

_FLOATS = ("lease_until", "started_at", "completed_at", "expires_at")


class RedisIdempotencyStore(IdempotencyStore):
    """Records as Redis hashes under ``{prefix}idem:{operation_id}``."""

    backend = "redis"

    def __init__(self, url: str, prefix: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.url = url
        self.prefix = prefix
        self.clock = clock

    def key(self, operation_id: str) -> str:
        return key_join(self.prefix, "idem", operation_id)

    async def begin(
        self, key: str, token: str, fingerprint: str, lease_seconds: float
    ) -> BeginResult:
        kind, a, b = await _BEGIN(
            redis_client(self.url), (self.key(key),),
            (self.clock.offset(), token, fingerprint, lease_seconds, LEASE_GC_GRACE),
        )
        if kind == "acquired":
            return BeginResult("acquired", reclaimed=a == "1")
        if kind == "completed":
            return BeginResult("completed", data=a, completed_at=float(b) if b else None)
        if kind == "in_progress":
            return BeginResult("in_progress", lease_remaining=float(a))
        return BeginResult("conflict", conflict_with=a)

    async def complete(self, key: str, token: str, data: str, ttl_seconds: float) -> bool:
        stored = await _COMPLETE(
            redis_client(self.url), (self.key(key),),
            (self.clock.offset(), token, data, ttl_seconds),
        )
        return bool(stored)

    async def release(self, key: str, token: str) -> bool:
        done = await _RELEASE(
            redis_client(self.url), (self.key(key),), (self.clock.offset(), token)
        )
        return bool(done)

    async def extend(self, key: str, token: str, lease_seconds: float) -> bool:
        done = await _EXTEND(
            redis_client(self.url), (self.key(key),),
            (self.clock.offset(), token, lease_seconds, LEASE_GC_GRACE),
        )
        return bool(done)

    async def get(self, key: str) -> dict[str, Any] | None:
        flat = await _GET(redis_client(self.url), (self.key(key),), (self.clock.offset(),))
        if not flat:
            return None
        record: dict[str, Any] = dict(zip(flat[::2], flat[1::2], strict=True))
        for name in _FLOATS:
            if name in record:
                record[name] = float(record[name])
        return record

    async def delete(self, key: str) -> bool:
        return bool(await redis_client(self.url).delete(self.key(key)))
