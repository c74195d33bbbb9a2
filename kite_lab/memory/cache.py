"""The response cache: ``ai.cache.get_or_set(key=..., func=lambda: ai.complete(p), ttl=3600)``.

Also the store of the call pipeline's LLM response cache (keys ``llm:<sha256>`` from
``LLMRequest.cache_key``, values ``Completion.to_dict()``).

Stampedes: concurrent ``get_or_set`` calls on a cold key call ``func`` once. In one
process the first caller is the leader and the others await its result (whatever loop or
thread they run on); across processes the leader also takes a short Redis lock, and the
other processes poll for the value until the lock is released or expires. A leader that
is cancelled hands the key to the next waiter instead of failing everyone.

Sync methods are thin ``run_sync`` wrappers of the async ones, so they work inside a
running loop (Jupyter). A sync ``func`` runs in a worker thread, never on kite_lab's
loop: ``func=lambda: ai.complete(prompt)`` calls a sync kite_lab method, which needs that
loop to be free.

Redis unreachable: the cache is bypassed -- a lookup is a miss, a write is skipped,
``get_or_set`` calls ``func`` -- and each failure emits ``cache:error`` (counted in
``stats()["errors"]``). A cache outage never fails a call.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import inspect
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.backends.redis_guard import RedisGuard
from kite_lab.core.errors import InvalidInput
from kite_lab.core.runner import run_sync
from kite_lab.core.validate import check_number
from kite_lab.memory.cache_stores import CacheStore, MemoryCacheStore

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus

__all__ = ["ResponseCache", "build_cache"]

log = logging.getLogger("kite_lab.memory.cache")
MAX_KEY_LENGTH = 1024
_MISSING = object()


class _LeaderGone(Exception):
    """The in-process leader was cancelled; a waiter takes over."""


class ResponseCache:
    """A TTL cache of JSON values with stampede protection (see the module docstring)."""

    def __init__(
        self,
        store: CacheStore | None = None,
        events: EventBus | None = None,
        *,
        default_ttl: float = 3600,
        lock_ttl: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or getattr(store, "clock", None) or SYSTEM_CLOCK
        self.store = store if store is not None else MemoryCacheStore(clock=self.clock)
        self.events = events
        #: Redis failures: described, logged and emitted as ``cache:error``; then bypassed
        self.guard = RedisGuard("response cache", events, event="cache:error",
                                url=getattr(self.store, "url", None), logger=log)
        self.default_ttl = _check_ttl(default_ttl)
        self.lock_ttl = _check_ttl(lock_ttl, "lock_ttl")
        self._flights: dict[str, concurrent.futures.Future[str]] = {}
        self._flights_lock = threading.Lock()
        self._counts = {"hits": 0, "misses": 0, "errors": 0, "sets": 0}
        self._counts_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<ResponseCache {self.backend}>"

    @property
    def backend(self) -> str:
        return self.store.backend

    # -- async API -------------------------------------------------------------------------
    async def aget(self, key: str, default: Any = None) -> Any:
        """The cached value of ``key``, or ``default``."""
        key = _check_key(key)
        data = await self._read(key)
        if data is None:
            self._event("miss", key)
            return default
        self._event("hit", key)
        return json.loads(data)

    async def aset(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Cache ``value`` (JSON-serializable) for ``ttl`` seconds (default: the cache's)."""
        key = _check_key(key)
        ttl = self.default_ttl if ttl is None else _check_ttl(ttl)
        await self._write(key, _dumps(key, value), ttl)

    async def adelete(self, key: str) -> bool:
        key = _check_key(key)
        try:
            return await self.store.delete(key)
        except Exception as exc:
            self._store_failed(exc, key)
            return False

    async def aclear(self) -> int:
        """Remove every entry of *this* cache's namespace; returns how many keys went."""
        try:
            return await self.store.clear()
        except Exception as exc:
            self._store_failed(exc, None)
            return 0

    async def aget_or_set(
        self, key: str, func: Callable[[], Any], ttl: float | None = None
    ) -> Any:
        """The cached value of ``key``; on a miss, ``func()`` (sync or async) is called once
        for all concurrent callers, cached for ``ttl`` seconds and returned."""
        key = _check_key(key)
        ttl = self.default_ttl if ttl is None else _check_ttl(ttl)
        if not callable(func):
            raise TypeError(f"func must be callable, not {type(func).__name__}")
        data = await self._read(key)
        if data is not None:
            self._event("hit", key)
            return json.loads(data)
        while True:
            with self._flights_lock:
                flight = self._flights.get(key)
                leader = flight is None
                if leader:
                    flight = concurrent.futures.Future()
                    self._flights[key] = flight
            assert flight is not None
            if not leader:
                try:  # shield: a cancelled waiter must not cancel the leader's flight
                    data = await asyncio.shield(asyncio.wrap_future(flight))
                except _LeaderGone:
                    continue
                self._event("hit", key, coalesced=True)
                return json.loads(data)
            self._event("miss", key)
            try:
                data = await self._fill(key, func, ttl)
            except asyncio.CancelledError:
                flight.set_exception(_LeaderGone())
                raise
            except BaseException as exc:
                flight.set_exception(exc)
                raise
            else:
                flight.set_result(data)  # each caller decodes its own copy
                return json.loads(data)
            finally:
                with self._flights_lock:
                    self._flights.pop(key, None)

    async def astats(self) -> dict[str, Any]:
        with self._counts_lock:
            counts = dict(self._counts)
        lookups = counts["hits"] + counts["misses"]
        try:
            entries = await self.store.size()
        except Exception:
            entries = None
        return {
            "backend": self.backend,
            **counts,
            "hit_rate": counts["hits"] / lookups if lookups else 0.0,
            "entries": entries,
            "max_entries": getattr(self.store, "max_entries", None),
            "default_ttl": self.default_ttl,
        }

    # -- sync API: thin wrappers -----------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return run_sync(self.aget(key, default))

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        run_sync(self.aset(key, value, ttl))

    def delete(self, key: str) -> bool:
        return run_sync(self.adelete(key))

    def clear(self) -> int:
        return run_sync(self.aclear())

    def get_or_set(self, key: str, func: Callable[[], Any], ttl: float | None = None) -> Any:
        """Sync ``aget_or_set``; a sync ``func`` runs in a worker thread (it may call
        ``ai.complete``)."""
        return run_sync(self.aget_or_set(key, func, ttl))

    def stats(self) -> dict[str, Any]:
        """Hits, misses, errors and sets counted by this process; entries when known."""
        return run_sync(self.astats())

    async def aclose(self) -> None:
        """Close this loop's Redis connections (they reopen on next use)."""
        await self.store.aclose()

    # -- internals -------------------------------------------------------------------------
    async def _fill(self, key: str, func: Callable[[], Any], ttl: float) -> str:
        """Call ``func`` (under the cross-process lock when shared) and store its value;
        returns the serialized value."""
        store = self.store
        token = uuid.uuid4().hex
        locked = False
        if store.shared:
            deadline = time.monotonic() + self.lock_ttl
            delay = 0.005
            while True:
                try:
                    kind, data = await store.get_or_lock(key, token, self.lock_ttl)
                except Exception as exc:
                    self._store_failed(exc, key)
                    break  # bypass: compute without the lock
                if kind == "hit":
                    assert data is not None
                    return data
                if kind == "locked":
                    locked = True
                    break
                if time.monotonic() >= deadline:
                    break  # the lock holder is too slow: compute ourselves
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, 0.1)
        try:
            value = await _invoke(func)
            data = _dumps(key, value)
            await self._write(key, data, ttl)
        finally:
            if locked:
                try:
                    await asyncio.shield(store.unlock(key, token))
                except Exception as exc:  # the lock expires on its own
                    self._store_failed(exc, key)
        return data

    async def _read(self, key: str) -> str | None:
        try:
            return await self.store.get(key)
        except Exception as exc:
            self._store_failed(exc, key)
            return None

    async def _write(self, key: str, data: str, ttl: float) -> None:
        try:
            await self.store.set(key, data, ttl)
        except Exception as exc:
            self._store_failed(exc, key)
            return
        with self._counts_lock:
            self._counts["sets"] += 1

    def _store_failed(self, exc: Exception, key: str | None) -> None:
        """Re-raise ``exc`` unless Redis failed; else count, log, emit ``cache:error``."""
        self.guard.failed(exc, "cache bypassed", key=_hashed(key) if key else None,
                          backend=self.backend)
        with self._counts_lock:
            self._counts["errors"] += 1

    def _event(self, kind: str, key: str, **extra: Any) -> None:
        with self._counts_lock:
            self._counts["hits" if kind == "hit" else "misses"] += 1
        if self.events is not None:
            self.events.emit(f"cache:{kind}", key=_hashed(key), backend=self.backend, **extra)


async def _invoke(func: Callable[[], Any]) -> Any:
    if inspect.iscoroutinefunction(func):
        return await func()
    # Sync funcs run in a worker thread: they may block, or call sync kite_lab methods
    # (ai.complete) that need kite_lab's loop -- the one this coroutine may be running on.
    result = await asyncio.to_thread(func)
    if inspect.isawaitable(result):
        result = await result
    return result


def _hashed(key: str) -> str:
    """Keys may hold prompts: events carry a short hash instead."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _to_dict(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):  # a Completion is stored (and returned) as its dict
        return to_dict()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps(key: str, value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False,
                          default=_to_dict)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(
            f"cache values must be JSON-serializable (dict/list/str/number/bool/None); the "
            f"value for this key is not: {exc}. Store e.g. completion.to_dict(); nothing "
            "was cached"
        ) from None


def _check_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"cache keys must be str, not {type(key).__name__}")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"cache keys must be 1 to {MAX_KEY_LENGTH} characters (got "
                           f"{len(key)}); hash long keys, e.g. hashlib.sha256(...).hexdigest()")
    return key


def _check_ttl(ttl: Any, what: str = "ttl") -> float:
    return check_number(ttl, f"cache {what}", unit="of seconds", error=InvalidInput)


def build_cache(
    settings: KiteSettings, events: EventBus | None = None, *, clock: Clock | None = None
) -> ResponseCache | None:
    """The cache ``settings.resolved_backend("cache")`` picks; None for ``none``."""
    backend = settings.resolved_backend("cache")
    if backend == "none":
        return None
    clock = clock or SYSTEM_CLOCK
    store: CacheStore
    if backend == "redis":
        from kite_lab.memory.cache_stores import RedisCacheStore

        assert settings.redis_url is not None
        store = RedisCacheStore(settings.redis_url, settings.kite_redis_prefix)
    else:
        store = MemoryCacheStore(settings.cache_max_entries, clock)
    return ResponseCache(store, events, default_ttl=settings.cache_ttl,
                         lock_ttl=min(max(settings.llm_timeout, 5.0) + 5.0, 300.0), clock=clock)
