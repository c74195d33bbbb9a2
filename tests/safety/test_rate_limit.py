"""RateLimiter on the limits library: moving window, memory and Redis storage."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from kite_lab.core.errors import InvalidInput, RateLimitExceeded
from kite_lab.core.runner import run_sync
from kite_lab.safety.rate_limit import RateLimiter


@pytest.fixture
def make_limiter(backend, bus, request):
    made: list[RateLimiter] = []

    def make(limit: str = "5/minute", **kw) -> RateLimiter:
        if backend == "redis":
            kw.setdefault("storage_url", request.getfixturevalue("redis_url"))
            kw.setdefault("prefix", request.getfixturevalue("redis_prefix"))
        made.append(RateLimiter(limit, events=bus, **kw))
        return made[-1]

    yield make
    for limiter in made:  # the sync API's connections live on kite_lab's loop
        run_sync(limiter.aclose())


async def test_allows_the_limit_then_rejects_with_retry_after(make_limiter, bus):
    limiter = make_limiter("5/minute")
    results = [await limiter.hit("client-1") for _ in range(6)]
    assert [r.allowed for r in results] == [True] * 5 + [False]
    assert [r.remaining for r in results] == [4, 3, 2, 1, 0, 0]
    assert all(r.limit == 5 for r in results)
    rejected = results[-1]
    assert 55 < rejected.retry_after <= 60
    assert rejected.reset_at == pytest.approx(time.time() + rejected.retry_after, abs=1)
    assert rejected.headers()["Retry-After"] == str(int(rejected.retry_after + 0.999))
    assert (await limiter.hit("client-2")).allowed  # keys are counted apart
    events = bus.history("ratelimit:rejected")
    assert len(events) == 1 and "client-1" not in str(events[0].data)


async def test_enforce_raises_the_typed_error(make_limiter):
    limiter = make_limiter("1/hour")
    await limiter.enforce("k")
    with pytest.raises(RateLimitExceeded) as info:
        await limiter.enforce("k")
    assert info.value.retry_after > 3500 and info.value.limit == "1/hour"


async def test_cost_peek_and_reset(make_limiter):
    limiter = make_limiter("10/minute")
    assert (await limiter.hit("k", cost=7)).remaining == 3
    assert not (await limiter.hit("k", cost=4)).allowed
    peek = await limiter.peek("k")
    assert peek.remaining == 3 and peek.allowed
    await limiter.reset("k")
    assert (await limiter.peek("k")).remaining == 10


def test_sync_hit(make_limiter):
    limiter = make_limiter("2/second", key="default-key")
    assert limiter.hit_sync().allowed and limiter.hit_sync().allowed
    assert not limiter.hit_sync().allowed


async def test_concurrent_hits_never_exceed_the_limit(make_limiter):
    limiter = make_limiter("50/minute")
    results = await asyncio.gather(*(limiter.hit("burst") for _ in range(200)))
    assert sum(r.allowed for r in results) == 50


async def test_redis_counts_are_shared_by_replicas(redis_url, redis_prefix):
    a = RateLimiter("3/minute", storage_url=redis_url, prefix=redis_prefix)
    b = RateLimiter("3/minute", storage_url=redis_url, prefix=redis_prefix)
    _closing.extend([a, b])
    assert (await a.hit("ip")).allowed and (await b.hit("ip")).allowed
    assert (await a.hit("ip")).allowed
    assert not (await b.hit("ip")).allowed
    from kite_lab.backends.redis_client import redis_client

    keys = [k async for k in redis_client(redis_url).scan_iter(match=redis_prefix + "*")]
    assert keys and all(k.startswith(redis_prefix + "ratelimit:") for k in keys)
    for key in keys:
        assert await redis_client(redis_url).ttl(key) > 0


_closing: list[RateLimiter] = []


@pytest.fixture(autouse=True)
async def _close_limiters():
    yield
    while _closing:
        await _closing.pop().aclose()


@pytest.mark.parametrize("limit", ["lots", "10/fortnight", "", "0/minute"])
def test_bad_limits_are_rejected(limit):
    with pytest.raises(InvalidInput):
        RateLimiter(limit)


@pytest.mark.parametrize("bad", [{"key": ""}, {"cost": 0}])
async def test_bad_keys_and_costs_are_rejected(bad):
    limiter = RateLimiter("1/second")
    with pytest.raises(InvalidInput):
        await limiter.hit(**bad)


async def test_memory_backend_starts_no_thread_per_expiry(monkeypatch):
    """limits' sync MemoryStorage starts a threading.Timer for every expiry sweep (a new
    thread every ~10 ms under load); the limits.aio storage sweeps with a task instead."""
    timers: list[threading.Timer] = []
    original = threading.Timer.start

    def counting_start(self: threading.Timer) -> None:
        timers.append(self)
        original(self)

    monkeypatch.setattr(threading.Timer, "start", counting_start)
    limiter = RateLimiter("1000/minute")
    for i in range(500):
        await limiter.hit(f"client-{i % 5}")
    for i in range(100):
        limiter.hit_sync(f"client-{i % 5}")  # the sync API shares the same counts
    assert timers == []
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
    assert (await limiter.peek("client-0")).remaining == 1000 - 120


async def test_memory_counts_are_shared_by_every_loop_and_thread():
    limiter = RateLimiter("10/minute")
    for _ in range(4):
        assert (await limiter.hit("k")).allowed  # this test's loop
    with ThreadPoolExecutor(3) as pool:  # other threads, each with a loop of its own
        results = list(pool.map(lambda _: asyncio.run(limiter.hit("k")).allowed, range(3)))
    assert results == [True] * 3
    assert [limiter.hit_sync("k").allowed for _ in range(4)] == [True] * 3 + [False]
    assert (await limiter.peek("k")).remaining == 0
