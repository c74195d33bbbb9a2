"""A Redis of our own is killed mid-test: every safety component follows its documented
policy (docs/safety.md, "When Redis is unreachable") and nothing raises unhandled."""

from __future__ import annotations

import pytest

from kite_lab.backends.clock import FakeClock
from kite_lab.core.config import load_settings
from kite_lab.core.errors import CircuitBreakerError, KillSwitchError, ServerError, StoreUnavailable
from kite_lab.core.events import EventBus
from kite_lab.memory.cache import build_cache
from kite_lab.safety.breaker import build_breaker
from kite_lab.safety.idempotency import build_idempotency
from kite_lab.safety.kill_switch import build_kill_switch
from kite_lab.safety.rate_limit import RateLimiter


async def _fail(breaker) -> None:
    with pytest.raises(ServerError):
        async with breaker.guard():
            raise ServerError("down", status=503)


async def test_components_follow_their_policies_when_redis_dies(private_redis):
    bus, clock = EventBus(), FakeClock()
    settings = load_settings({"redis_url": private_redis.url, "kite_redis_prefix": "outage:",
                              "circuit_breaker_threshold": 2})
    breaker = build_breaker("openai", settings, bus, clock=clock)
    cache = build_cache(settings, bus)
    idempotency = build_idempotency(settings, bus)
    switch = build_kill_switch(settings, bus)
    limiter = RateLimiter("100/minute", storage_url=private_redis.url, events=bus)

    # Healthy: everything shared through Redis.
    async with breaker.guard():
        pass
    await cache.aset("answer", {"text": "42"})
    assert await idempotency.aexecute("op-1", lambda: "ran") == "ran"
    await switch.acheck()
    assert (await limiter.hit("ip")).allowed
    in_flight = breaker.guard()
    await in_flight.__aenter__()  # admitted by Redis, finishes after Redis is gone

    private_redis.kill()

    # Breaker: a local breaker takes over, starting from the last known state.
    await in_flight.__aexit__(ServerError, ServerError("down", status=503), None)
    fallback = [e.data for e in bus.history("breaker:fallback")]
    assert len(fallback) == 1 and fallback[0]["active"] is True
    assert "ConnectionError" in fallback[0]["reason"] and "outage" not in fallback[0]["reason"]
    await _fail(breaker)  # second consecutive failure (the local count)
    assert breaker.state.value == "open"
    with pytest.raises(CircuitBreakerError):
        async with breaker.guard():
            pass
    stats = breaker.get_stats()
    assert stats["state"] == "open" and stats["fallback"] is True
    assert breaker.backend == "memory (redis unreachable)"
    assert len(bus.history("breaker:fallback")) == 1  # entered once, not per call

    # Cache: bypassed -- misses, skipped writes, func still called.
    assert await cache.aget("answer") is None
    await cache.aset("answer", {"text": "43"})
    calls = []
    value = await cache.aget_or_set("k", lambda: calls.append(1) or "computed", ttl=10)
    assert value == "computed" and calls == [1]
    assert await cache.aclear() == 0
    assert cache.stats()["errors"] >= 4
    assert bus.history("cache:error")

    # Idempotency: fails closed -- a typed error, and func is NOT run.
    ran = []
    with pytest.raises(StoreUnavailable, match="NOT executed"):
        await idempotency.aexecute("op-2", lambda: ran.append(1))
    assert ran == []
    assert bus.history("idempotency:error")

    # Kill switch: the last known state, and local activation still works.
    await switch.acheck()
    await switch.aactivate("stop everything")
    with pytest.raises(KillSwitchError):
        await switch.acheck()
    await switch.adeactivate()
    assert bus.history("killswitch:error")

    # Rate limiter: fails open, says so.
    result = await limiter.hit("ip")
    assert result.allowed and result.degraded
    assert bus.history("ratelimit:error")

    # Redis comes back: the breaker returns to the shared store after retry_interval.
    private_redis.start()
    clock.advance(60)  # past the local open timeout and the retry interval
    async with breaker.guard():
        pass
    recovered = [e.data for e in bus.history("breaker:fallback")]
    assert recovered[-1]["active"] is False and breaker.backend == "redis"
    assert await cache.aget_or_set("k2", lambda: "cached again", ttl=10) == "cached again"
    assert await cache.aget("k2") == "cached again"
    assert await idempotency.aexecute("op-2", lambda: "now it runs") == "now it runs"


async def test_breaker_opened_in_redis_stays_open_during_the_outage(private_redis):
    bus, clock = EventBus(), FakeClock()
    settings = load_settings({"redis_url": private_redis.url, "circuit_breaker_timeout": 30})
    breaker = build_breaker("anthropic", settings, bus, clock=clock)
    await breaker.atrip("provider incident")
    with pytest.raises(CircuitBreakerError):
        async with breaker.guard():
            pass
    private_redis.kill()
    with pytest.raises(CircuitBreakerError) as info:
        async with breaker.guard():
            pass
    assert info.value.retry_after > 25  # the shared open_until carried over
    clock.advance(31)
    async with breaker.guard():  # then the local breaker half-opens as usual
        pass


def test_sync_api_during_an_outage(private_redis):
    bus = EventBus()
    settings = load_settings({"redis_url": private_redis.url})
    breaker = build_breaker("openai", settings, bus)
    cache = build_cache(settings, bus)
    switch = build_kill_switch(settings, bus)
    private_redis.kill()
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state.value == "closed" and breaker.get_stats()["state"] == "closed"
    assert cache.get_or_set("k", lambda: 1, ttl=5) == 1
    assert cache.get("k") is None
    assert switch.is_active is False
    switch.activate("local only")
    assert switch.is_active is True
