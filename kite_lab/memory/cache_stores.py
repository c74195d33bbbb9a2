"""Where the response cache keeps entries: an in-process LRU, or Redis.

Both stores hold *serialized* values (JSON text), so a value comes back the same from
either store, and a caller can never mutate a cached object in place.

The Redis store keeps everything under one namespace, ``{KITE_REDIS_PREFIX}cache:``:
values at ``...cache:v:<key>``, cross-process fill locks at ``...cache:l:<key>``. Every
key it writes has a TTL, and ``clear()`` removes that namespace only (SCAN + UNLINK in
batches) -- never FLUSHDB, which would take other applications' data with it. Its two
Lua scripts are ``kite_lab/backends/lua/cache_*.lua``.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.backends.redis_client import LuaScript, aclose_redis_clients, key_join, redis_client
from kite_lab.core.errors import InvalidInput
from kite_lab.core.validate import check_int

__all__ = ["CacheStore", "MemoryCacheStore", "RedisCacheStore", "glob_escape"]


class CacheStore(ABC):
    backend: str = "?"
    #: shared by several processes: fills take a store lock (``try_lock``)
    shared: bool = False

    @abstractmethod
    async def get(self, key: str) -> str | None: ...

    @abstractmethod
    async def set(self, key: str, data: str, ttl: float) -> None: ...

    @abstractmethod
    async def delete(self, key: str) -> bool: ...

    @abstractmethod
    async def clear(self) -> int: ...

    async def size(self) -> int | None:
        return None

    async def get_or_lock(self, key: str, token: str, lock_ttl: float) -> tuple[str, str | None]:
        """("hit", data) | ("locked", None): the caller fills | ("busy", None): someone else."""
        data = await self.get(key)
        return ("hit", data) if data is not None else ("locked", None)

    async def unlock(self, key: str, token: str) -> None:
        return None

    async def aclose(self) -> None:
        """Close this loop's connections, if any (they reopen on next use)."""
        return None


class MemoryCacheStore(CacheStore):
    """An LRU of at most ``max_entries``, with a TTL per entry; thread-safe."""

    backend = "memory"

    def __init__(self, max_entries: int = 10_000, clock: Clock = SYSTEM_CLOCK) -> None:
        self.max_entries = check_int(max_entries, "max_entries", error=InvalidInput)
        self.clock = clock
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self.evictions = 0

    async def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= self.clock.now():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    async def set(self, key: str, data: str, ttl: float) -> None:
        with self._lock:
            self._entries[key] = (data, self.clock.now() + ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self.evictions += 1

    async def delete(self, key: str) -> bool:
        with self._lock:
            return self._entries.pop(key, None) is not None

    async def clear(self) -> int:
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            return count

    async def size(self) -> int | None:
        with self._lock:
            now = self.clock.now()
            return sum(1 for _, expires in self._entries.values() if expires > now)


def glob_escape(text: str) -> str:
    """Escape Redis MATCH pattern characters so a prefix is matched literally."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


_GET_OR_LOCK = LuaScript("cache_get_or_lock.lua")
_UNLOCK = LuaScript("cache_unlock.lua")


class RedisCacheStore(CacheStore):
    """Entries shared by every process and replica using the same Redis and prefix."""

    backend = "redis"
    shared = True
    SCAN_BATCH = 500

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.namespace = key_join(prefix, "cache", "")

    def _value_key(self, key: str) -> str:
        return self.namespace + "v:" + key

    def _lock_key(self, key: str) -> str:
        return self.namespace + "l:" + key

    async def get(self, key: str) -> str | None:
        value = await redis_client(self.url).get(self._value_key(key))
        return value if value is None else str(value)

    async def set(self, key: str, data: str, ttl: float) -> None:
        await redis_client(self.url).set(self._value_key(key), data, px=max(1, round(ttl * 1000)))

    async def delete(self, key: str) -> bool:
        return bool(await redis_client(self.url).delete(self._value_key(key)))

    async def clear(self) -> int:
        client = redis_client(self.url)
        removed = 0
        batch: list[str] = []
        async for name in client.scan_iter(match=glob_escape(self.namespace) + "*",
                                           count=self.SCAN_BATCH):
            batch.append(name)
            if len(batch) >= self.SCAN_BATCH:
                removed += await client.unlink(*batch)
                batch.clear()
        if batch:
            removed += await client.unlink(*batch)
        return removed

    async def get_or_lock(self, key: str, token: str, lock_ttl: float) -> tuple[str, str | None]:
        answer = await _GET_OR_LOCK(
            redis_client(self.url), (self._value_key(key), self._lock_key(key)),
            (token, max(1, round(lock_ttl * 1000))),
        )
        return (answer[0], answer[1] if len(answer) > 1 else None)

    async def unlock(self, key: str, token: str) -> None:
        await _UNLOCK(redis_client(self.url), (self._lock_key(key),), (token,))

    async def aclose(self) -> None:
        await aclose_redis_clients()
