"""Worker processes for the multi-process safety tests (run as a script, not collected).

    python safety_workers.py <mode> '<json params>'

Each mode prints one JSON line (its findings) on stdout. Processes line up on a Redis
barrier so their calls really overlap; time moves through a FakeClock (Redis TIME plus an
offset), never by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from kite_lab.backends.clock import FakeClock
from kite_lab.backends.redis_client import redis_client


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


def _breaker(p: dict[str, Any], clock: FakeClock) -> Any:
    from kite_lab.core.events import EventBus
    from kite_lab.safety.breaker import CircuitBreaker
    from kite_lab.safety.breaker_redis import RedisBreakerStore
    from kite_lab.safety.breaker_types import CircuitBreakerConfig

    bus = EventBus()
    store = RedisBreakerStore(p["url"], p["prefix"], p["name"], clock)
    cfg = CircuitBreakerConfig(
        failure_threshold=p.get("failure_threshold", 3),
        success_threshold=p.get("success_threshold", 2),
        timeout_seconds=p.get("timeout", 60.0),
        half_open_max_calls=p.get("half_open_max_calls", 1),
    )
    return CircuitBreaker(p["name"], cfg, store=store, events=bus, clock=clock), bus


async def halfopen(p: dict[str, Any]) -> dict[str, Any]:
    """Per trial: move past the open timeout, then 50 tasks race for half-open permits."""
    from kite_lab.core.config import load_settings
    from kite_lab.core.errors import CircuitBreakerError, ProviderError
    from kite_lab.core.types import Message
    from kite_lab.providers.base import LLMRequest
    from kite_lab.providers.openai_compat import OpenAIProvider

    clock = FakeClock()
    breaker, _ = _breaker(p, clock)
    provider = OpenAIProvider(load_settings(
        {"openai_api_key": "sk-test", "openai_base_url": p["base_url"]}, env_file=None))
    client = redis_client(p["url"])
    admitted_per_trial = []
    for trial in range(p["trials"]):
        clock.advance(p["timeout"] + 1)
        await barrier(p["url"], f"{p['prefix']}barrier:{trial}", p["processes"])
        decided = f"{p['prefix']}decided:{trial}"

        async def one(trial: int = trial, decided: str = decided) -> int:
            try:
                async with breaker.guard():
                    await client.incr(decided)
                    request = LLMRequest("gpt-4o-mini", [Message("user", f"trial {trial}")])
                    await provider.generate(request)
            except CircuitBreakerError:
                await client.incr(decided)
                return 0
            except ProviderError:
                return 1
            return 1

        results = await asyncio.gather(*(one() for _ in range(p["tasks"])))
        admitted_per_trial.append(sum(results))
    await provider.aclose()
    return {"admitted": admitted_per_trial}


async def trip(p: dict[str, Any]) -> dict[str, Any]:
    """All processes record failures at once; who saw the breaker trip, and at what count?"""
    from kite_lab.core.errors import CircuitBreakerError, ServerError

    breaker, bus = _breaker(p, FakeClock())
    await barrier(p["url"], f"{p['prefix']}barrier:trip", p["processes"])
    outcomes = {"failed": 0, "rejected": 0}

    async def one() -> None:
        try:
            async with breaker.guard():
                await asyncio.sleep(0)
                raise ServerError("boom", status=500)
        except ServerError:
            outcomes["failed"] += 1
        except CircuitBreakerError:
            outcomes["rejected"] += 1

    await asyncio.gather(*(one() for _ in range(p["tasks"])))
    local = [e.data for e in bus.history("breaker:state") if not e.data["remote"]]
    return {**outcomes, "transitions": local}


def _manager(p: dict[str, Any], clock: FakeClock | None = None) -> Any:
    from kite_lab.safety.idempotency import IdempotencyManager
    from kite_lab.safety.idempotency_redis import RedisIdempotencyStore

    clock = clock or FakeClock()
    store = RedisIdempotencyStore(p["url"], p["prefix"], clock)
    return IdempotencyManager(store, lease_ttl=p.get("lease_ttl", 60.0),
                              wait_timeout=p.get("wait_timeout", 30.0), clock=clock)


async def idem_dupes(p: dict[str, Any]) -> dict[str, Any]:
    """Many duplicates of one operation at once, from every process."""
    manager = _manager(p)
    client = redis_client(p["url"])

    async def charge(order: str, amount: int) -> dict[str, Any]:
        runs = await client.incr(f"{p['prefix']}runs")
        await asyncio.sleep(p.get("work_seconds", 0.3))
        return {"order": order, "amount": amount, "pid": os.getpid(), "run": runs}

    await barrier(p["url"], f"{p['prefix']}barrier:dupes", p["processes"])
    results = await asyncio.gather(*(
        manager.aexecute(p["operation_id"], charge, ("o-1", 42)) for _ in range(p["tasks"])
    ))
    return {"results": results}


async def idem_owner(p: dict[str, Any]) -> dict[str, Any]:
    """Take the lease, say so, then work "forever" (the test SIGKILLs this process)."""
    manager = _manager(p)
    client = redis_client(p["url"])

    async def work() -> str:
        await client.set(f"{p['prefix']}owner-started", str(os.getpid()), ex=600)
        await asyncio.sleep(600)
        return "never"

    await manager.aexecute(p["operation_id"], work, ())
    return {"finished": True}


async def idem_reclaim(p: dict[str, Any]) -> dict[str, Any]:
    """Racing reclaimers: every task tries to take the lease once, without waiting."""
    from kite_lab.core.errors import IdempotencyInProgress
    from kite_lab.safety.idempotency import Lease, fingerprint

    clock = FakeClock()
    clock.advance(p.get("advance", 0.0))
    manager = _manager(p, clock)
    await barrier(p["url"], f"{p['prefix']}barrier:{p['round']}", p["processes"])

    async def one() -> str:
        try:
            got = await manager.abegin(p["operation_id"], fingerprint(()), wait=0)
        except IdempotencyInProgress:
            return "in_progress"
        return "reclaimed" if isinstance(got, Lease) and got.reclaimed else "other"

    outcomes = await asyncio.gather(*(one() for _ in range(p["tasks"])))
    return {o: outcomes.count(o) for o in set(outcomes)}


MODES = {f.__name__: f for f in (halfopen, trip, idem_dupes, idem_owner, idem_reclaim)}

if __name__ == "__main__":
    mode, params = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(asyncio.run(MODES[mode](params))), flush=True)
