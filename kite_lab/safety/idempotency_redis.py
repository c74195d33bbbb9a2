"""Idempotency records in Redis, shared by every process and replica.

Each record is a hash under ``{prefix}idem:{operation_id}``; every operation of the
contract (``idempotency_store``) is one Lua script (``kite_lab/backends/lua/
idempotency_*.lua``), timed by the server's ``TIME`` plus the clock's offset. Every key
also has a TTL, so nothing is left behind.
"""

from __future__ import annotations

from typing import Any

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.backends.redis_client import LuaScript, key_join, redis_client
from kite_lab.safety.idempotency_store import LEASE_GC_GRACE, BeginResult, IdempotencyStore

__all__ = ["RedisIdempotencyStore"]

_BEGIN = LuaScript("idempotency_begin.lua", clock=True)
_COMPLETE = LuaScript("idempotency_complete.lua", clock=True)
_RELEASE = LuaScript("idempotency_release.lua", clock=True)
_EXTEND = LuaScript("idempotency_extend.lua", clock=True)
_GET = LuaScript("idempotency_get.lua", clock=True)

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
