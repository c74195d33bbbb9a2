"""Rate limits on the ``limits`` library: moving window, in memory or in Redis.

``RateLimiter("10/minute")`` is what the HTTP service applies per API key or client IP
(KITE_RATE_LIMIT) and what user code can use directly::

    limiter = RateLimiter("10/minute", storage_url=settings.redis_url)
    result = await limiter.hit(api_key)      # RateLimitResult(allowed, limit, remaining, ...)

Moving window, not fixed window: a fixed window lets 2x the limit through around a
window boundary. With ``storage_url`` (a Redis URL) every replica shares the counts (keys
under ``{prefix}ratelimit:``, each with a TTL set by ``limits``); without it the counts
are per process.

Both backends use ``limits.aio``. The in-process one is ``limits.aio.storage.
MemoryStorage`` -- the sync ``MemoryStorage`` starts a ``threading.Timer`` thread for its
expiry sweeps, again and again under load. Its state belongs to one event loop, so every
process-wide count lives on kite_lab's background loop: callers on other loops hop there
for the microseconds a decision takes (the decision itself never suspends, so concurrent
hits are atomic).

Redis unreachable: by default the limiter *fails open* (the call is allowed, the
result says ``degraded=True``, and ``ratelimit:error`` is emitted) -- a rate limiter
must not turn a Redis outage into a full outage. ``fail_open=False`` rejects instead.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kite_lab.backends.redis_client import connection_pool
from kite_lab.backends.redis_guard import RedisGuard
from kite_lab.core.errors import InvalidInput, RateLimitExceeded
from kite_lab.core.runner import PerLoop, background_loop, run_sync
from kite_lab.core.validate import check_int

if TYPE_CHECKING:
    from kite_lab.core.events import EventBus

__all__ = ["RateLimitResult", "RateLimiter"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RateLimitResult:
    allowed: bool
    #: requests allowed per window
    limit: int
    #: requests left in the current window after this one
    remaining: int
    #: epoch seconds when the oldest counted request leaves the window
    reset_at: float
    #: seconds to wait before retrying; None when allowed
    retry_after: float | None
    #: True when the store was unreachable and the fail-open/closed policy decided
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` (and ``Retry-After`` when rejected) for an HTTP response."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(max(self.remaining, 0)),
            "X-RateLimit-Reset": str(int(self.reset_at)),
        }
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, int(self.retry_after + 0.999)))
        return headers


class RateLimiter:
    """A moving-window limit such as ``"10/minute"`` or ``"100 per hour"``."""

    def __init__(
        self,
        limit: str = "10/minute",
        key: str = "default",
        *,
        storage_url: str | None = None,
        prefix: str = "kite:",
        events: EventBus | None = None,
        fail_open: bool = True,
    ) -> None:
        from limits import parse

        try:
            self.item = parse(limit)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"invalid rate limit {limit!r} ({exc}); use e.g. '10/minute', "
                "'100 per hour' or '5/second'"
            ) from None
        if self.item.amount <= 0:
            raise InvalidInput(f"rate limit {limit!r} must allow at least one request")
        self.limit = limit
        self.default_key = _check_key(key)
        self.storage_url = storage_url
        self.prefix = prefix
        self.events = events
        self.fail_open = fail_open
        #: Redis failures: described and emitted as ``ratelimit:error``; then fail open/closed
        self.guard = RedisGuard("rate limiter", events, event="ratelimit:error",
                                url=storage_url, store_errors=_limits_storage_errors)
        self._memory: Any = None
        self._memory_lock = threading.Lock()
        self._async: PerLoop[Any] | None = None
        if storage_url is not None:
            self._async = PerLoop(self._make_async_limiter)

    def __repr__(self) -> str:
        return f"<RateLimiter {self.limit!r} ({self.backend})>"

    @property
    def backend(self) -> str:
        return "redis" if self.storage_url else "memory"

    # -- storage -----------------------------------------------------------------------------
    def _memory_limiter(self) -> Any:
        if self._memory is None:
            with self._memory_lock:
                if self._memory is None:
                    from limits.aio.storage import MemoryStorage
                    from limits.aio.strategies import MovingWindowRateLimiter

                    self._memory = MovingWindowRateLimiter(MemoryStorage())
        return self._memory

    async def _in_memory(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` (a memory-store decision) on kite_lab's loop, the store's home."""
        home = background_loop()
        if asyncio.get_running_loop() is home:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, home))

    async def _memory_hit(self, key: str, cost: int) -> tuple[bool, float, int]:
        limiter = self._memory_limiter()
        allowed = await limiter.hit(self.item, key, cost=cost)
        reset_at, remaining = await limiter.get_window_stats(self.item, key)
        return bool(allowed), reset_at, remaining

    async def _memory_stats(self, key: str) -> tuple[float, int]:
        reset_at, remaining = await self._memory_limiter().get_window_stats(self.item, key)
        return reset_at, remaining

    async def _memory_clear(self, key: str) -> None:
        await self._memory_limiter().clear(self.item, key)

    def _make_async_limiter(self) -> Any:
        from limits.aio.storage import RedisStorage
        from limits.aio.strategies import MovingWindowRateLimiter

        assert self.storage_url is not None
        url = self.storage_url.removeprefix("async+")
        # this loop's pool, with the short timeouts of kite_lab's other Redis clients
        options: dict[str, Any] = {"connection_pool": connection_pool(url)}
        storage = RedisStorage("async+" + url, implementation="redispy",
                               key_prefix=self.prefix + "ratelimit", **options)
        return MovingWindowRateLimiter(storage)

    async def aclose(self) -> None:
        """Close this loop's Redis connections (they reopen on next use)."""
        if self.storage_url is not None:
            await connection_pool(self.storage_url.removeprefix("async+")).disconnect()

    # -- the API -------------------------------------------------------------------------------
    async def hit(self, key: str | None = None, cost: int = 1) -> RateLimitResult:
        """Count one request (``cost`` units) for ``key``; say whether it is allowed."""
        key = _check_key(key) if key is not None else self.default_key
        cost = check_int(cost, "cost", error=InvalidInput)
        if self._async is None:
            allowed, reset_at, remaining = await self._in_memory(self._memory_hit(key, cost))
        else:
            limiter = self._async.get()
            try:
                allowed = await limiter.hit(self.item, key, cost=cost)
                reset_at, remaining = await limiter.get_window_stats(self.item, key)
            except Exception as exc:
                return self._degraded(exc, key)
        return self._result(bool(allowed), key, reset_at, remaining)

    def hit_sync(self, key: str | None = None, cost: int = 1) -> RateLimitResult:
        """``hit`` for sync code (works inside a running loop too)."""
        return run_sync(self.hit(key, cost))

    async def enforce(self, key: str | None = None, cost: int = 1) -> RateLimitResult:
        """``hit``, raising ``RateLimitExceeded`` (with ``retry_after``) when not allowed."""
        result = await self.hit(key, cost)
        if not result.allowed:
            raise RateLimitExceeded(self.limit, result.retry_after)
        return result

    async def peek(self, key: str | None = None) -> RateLimitResult:
        """The current window for ``key`` without counting a request."""
        key = _check_key(key) if key is not None else self.default_key
        if self._async is None:
            reset_at, remaining = await self._in_memory(self._memory_stats(key))
        else:
            try:
                reset_at, remaining = await self._async.get().get_window_stats(self.item, key)
            except Exception as exc:
                return self._degraded(exc, key)
        return self._result(remaining > 0, key, reset_at, remaining, emit=False)

    async def reset(self, key: str | None = None) -> None:
        """Forget the requests counted for ``key``."""
        key = _check_key(key) if key is not None else self.default_key
        if self._async is None:
            await self._in_memory(self._memory_clear(key))
        else:
            await self._async.get().clear(self.item, key)

    # -- internals -----------------------------------------------------------------------------
    def _result(self, allowed: bool, key: str, reset_at: float, remaining: int,
                emit: bool = True) -> RateLimitResult:
        retry_after = None if allowed else max(0.0, reset_at - time.time())
        result = RateLimitResult(allowed, self.item.amount, max(int(remaining), 0),
                                 float(reset_at), retry_after)
        if not allowed and emit and self.events is not None:
            self.events.emit("ratelimit:rejected", limit=self.limit, key=_hashed(key),
                             retry_after=retry_after, backend=self.backend)
        return result

    def _degraded(self, exc: Exception, key: str) -> RateLimitResult:
        policy = "allowed (fail open)" if self.fail_open else "rejected (fail closed)"
        self.guard.failed(exc, policy, limit=self.limit, key=_hashed(key),
                          fail_open=self.fail_open)
        now = time.time()
        window = float(self.item.get_expiry())
        if self.fail_open:
            return RateLimitResult(True, self.item.amount, self.item.amount, now + window,
                                   None, degraded=True)
        return RateLimitResult(False, self.item.amount, 0, now + window, window, degraded=True)


def _limits_storage_errors() -> tuple[type[BaseException], ...]:
    from limits.errors import StorageError

    return (StorageError,)


def _hashed(key: str) -> str:
    """Keys are API keys or client IPs: events carry a short hash instead."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"rate limit keys must be non-empty strings, got {key!r}")
    return key
