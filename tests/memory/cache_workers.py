"""Worker process of the multi-process response cache test (run as a script, not collected).

    python cache_workers.py '<json params>'

Prints one JSON line (its findings) on stdout. Processes line up on a Redis barrier so
their get_or_set calls really overlap on the same cold key.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from kite_lab.backends.redis_client import redis_client
from kite_lab.memory.cache import ResponseCache
from kite_lab.memory.cache_stores import RedisCacheStore


async def barrier(url: str, key: str, parties: int, timeout: float = 60.0) -> None:
    """Wait until ``parties`` processes reached ``key``."""
    client = redis_client(url)
    await client.incr(key)
    await client.expire(key, 600)
    deadline = time.monotonic() + timeout
    while int(await client.get(key) or 0) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"barrier {key} not reached by {parties} processes")
        await asyncio.sleep(0.0005)


async def cache_cold(p: dict[str, Any]) -> dict[str, Any]:
    """Concurrent get_or_set on a cold key from every process."""
    cache = ResponseCache(RedisCacheStore(p["url"], p["prefix"]), lock_ttl=30)
    client = redis_client(p["url"])

    async def compute() -> dict[str, Any]:
        await client.incr(f"{p['prefix']}computed")
        await asyncio.sleep(0.3)
        return {"answer": 42, "pid": os.getpid()}

    await barrier(p["url"], f"{p['prefix']}barrier:cache", p["processes"])
    values = await asyncio.gather(*(
        cache.aget_or_set("cold", compute, ttl=60) for _ in range(p["tasks"])
    ))
    return {"values": values}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(cache_cold(json.loads(sys.argv[1])))), flush=True)
