"""Redis connections close with their event loop: a script that used the Redis-backed
safety components and the cache prints no ResourceWarning when it exits.

Before: sockets of kite_lab's background loop (the sync API) and of ``asyncio.run`` loops
were left to the garbage collector at exit ("unclosed Connection", "unclosed transport").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

SETUP = """
from kite_lab.core.config import load_settings
from kite_lab.memory.cache import build_cache
from kite_lab.safety.breaker import build_breaker
from kite_lab.safety.idempotency import build_idempotency
from kite_lab.safety.kill_switch import build_kill_switch
from kite_lab.safety.rate_limit import RateLimiter

settings = load_settings({{"redis_url": {url!r}, "kite_redis_prefix": {prefix!r}}})
breaker = build_breaker("openai", settings)
cache = build_cache(settings)
idempotency = build_idempotency(settings)
switch = build_kill_switch(settings)
limiter = RateLimiter("5/minute", storage_url={url!r}, prefix={prefix!r})
"""

SYNC = """
assert breaker.call(lambda: "ok") == "ok" and breaker.get_stats()["backend"] == "redis"
cache.set("k", 1, ttl=30)
assert cache.get("k") == 1
assert idempotency.execute("op", lambda: 2) == 2
assert switch.is_active is False
assert limiter.hit_sync("client").allowed
print("done")
"""

ASYNC = """
import asyncio

async def main():
    async with breaker.guard():
        pass
    await cache.aset("k", 1, ttl=30)
    assert await cache.aget("k") == 1
    assert await idempotency.aexecute("op", lambda: 2) == 2
    await switch.acheck()
    assert (await limiter.hit("client")).allowed

asyncio.run(main())
asyncio.run(main())  # a second loop, a second set of connections
print("done")
"""


@pytest.fixture
def prefix(redis_prefix: str, redis_url: str) -> Iterator[str]:
    yield redis_prefix
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=redis_prefix + "*"))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


@pytest.mark.parametrize("body", [SYNC, ASYNC], ids=["sync-api", "asyncio-run"])
def test_no_unclosed_socket_warnings_at_exit(redis_url, prefix, body):
    code = textwrap.dedent(SETUP.format(url=redis_url, prefix=prefix)) + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", code],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("done")
    assert "ResourceWarning" not in done.stderr, done.stderr[-3000:]
    assert "unclosed" not in done.stderr.lower(), done.stderr[-3000:]
