"""Safety figures: breaker overhead, cache hit vs miss, 1,000 concurrent calls.

- breaker overhead per call, memory and Redis store, against the bare call (and, for the
  sync path, against pybreaker);
- response cache: a hit against a miss that calls the fake server through the real
  openai SDK (goal >= 50x faster), memory and Redis;
- 1,000 concurrent acomplete-equivalent calls (OpenAIProvider.generate, 100 ms fake
  latency) through breaker + cache miss (goal <= 1.5 s wall), against the same load on
  the bare SDK and through a pybreaker-protected call; and the same load with the
  provider replaced by a 100 ms sleep, which isolates what the safety layer costs.

Every figure is measured against its baseline in the same run, interleaved, repeated;
the median is reported with min and max.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figure, parse_args, report, summarize  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/0"


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


async def _per_call(body: Callable[[], Awaitable[Any]], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        await body()
    return (time.perf_counter() - start) / number


async def _paired(ours: Callable[[], Awaitable[Any]], base: Callable[[], Awaitable[Any]],
                  number: int, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds per call of (ours, base), interleaved per repetition."""
    ours_s, base_s = [], []
    for _ in range(repeat):
        base_s.append(await _per_call(base, number))
        ours_s.append(await _per_call(ours, number))
    return ours_s, base_s


# -- breaker overhead ----------------------------------------------------------------------

async def breaker_overhead(number: int, repeat: int, redis: bool) -> list[Figure]:
    from kite_lab.backends.redis_client import aclose_redis_clients, redis_client
    from kite_lab.safety.breaker import CircuitBreaker
    from kite_lab.safety.breaker_fallback import FallbackBreakerStore
    from kite_lab.safety.breaker_redis import RedisBreakerStore

    async def noop() -> None:
        return None

    figures = []
    memory = CircuitBreaker("bench")

    async def guarded_memory() -> None:
        async with memory.guard():
            await noop()

    ours, base = await _paired(guarded_memory, noop, number, repeat)
    figures.append(summarize(
        "breaker overhead per call, memory store (async guard)",
        [(o - b) * 1e6 for o, b in zip(ours, base, strict=True)], "us",
        goal="small next to any network call", baseline="bare await of the same coroutine",
        extra={"ratio_median": statistics.median(o / b for o, b in zip(ours, base, strict=True))},
    ))

    if redis:
        prefix = f"kitebench:{uuid.uuid4().hex[:8]}:"
        shared = CircuitBreaker("bench", store=FallbackBreakerStore(
            RedisBreakerStore(REDIS_URL, prefix, "bench"), name="bench"))

        async def guarded_redis() -> None:
            async with shared.guard():
                await noop()

        async def ping() -> None:
            await redis_client(REDIS_URL).ping()

        await guarded_redis()  # load the scripts
        ours, base = await _paired(guarded_redis, ping, max(number // 20, 50), repeat)
        figures.append(summarize(
            "breaker overhead per call, Redis store, vs one Redis PING round trip",
            [o / b for o, b in zip(ours, base, strict=True)], "x",
            goal="two round trips (one script admits, one records) plus script time",
            baseline="a PING on the same client (same run, interleaved)",
            extra={"overhead_us_median": statistics.median(o * 1e6 for o in ours)},
        ))
        await redis_client(REDIS_URL).delete(*[k async for k in
                                                redis_client(REDIS_URL).scan_iter(prefix + "*")])
        await aclose_redis_clients()
    return figures


def sync_breaker_vs_pybreaker(number: int, repeat: int) -> list[Figure]:
    import pybreaker

    from kite_lab.safety.breaker import CircuitBreaker

    ours_breaker, theirs = CircuitBreaker("bench-sync"), pybreaker.CircuitBreaker()

    def work() -> int:
        return 1

    samples_ours, samples_theirs, samples_bare = [], [], []
    for _ in range(repeat):
        for target, call in ((samples_bare, work),
                             (samples_ours, lambda: ours_breaker.call(work)),
                             (samples_theirs, lambda: theirs.call(work))):
            start = time.perf_counter()
            for _ in range(number):
                call()
            target.append((time.perf_counter() - start) / number)
    return [
        summarize("breaker overhead per sync call, memory store", [
            (o - b) * 1e6 for o, b in zip(samples_ours, samples_bare, strict=True)], "us",
            baseline="bare call of the same function"),
        summarize("sync breaker.call vs pybreaker.call, per call", [
            o / t for o, t in zip(samples_ours, samples_theirs, strict=True)], "x",
            goal="about 1x, without pybreaker's lock held around the call",
            baseline="pybreaker 1.4 CircuitBreaker.call (same run)"),
    ]


# -- cache hit vs miss -----------------------------------------------------------------------

async def cache_hit_vs_miss(server: Any, number: int, repeat: int, redis: bool) -> list[Figure]:
    from kite_lab.backends.redis_client import aclose_redis_clients
    from kite_lab.core.config import load_settings
    from kite_lab.core.types import Message
    from kite_lab.memory.cache import ResponseCache
    from kite_lab.memory.cache_stores import RedisCacheStore
    from kite_lab.providers.base import LLMRequest
    from kite_lab.providers.openai_compat import OpenAIProvider

    provider = OpenAIProvider(load_settings(
        {"openai_api_key": "sk-bench", "openai_base_url": server.openai_base_url},
        env_file=None))
    request = LLMRequest("gpt-4o-mini", [Message("user", "What is the capital of France?")],
                         params={"temperature": 0})

    async def call_provider() -> dict[str, Any]:
        return (await provider.generate(request)).to_dict()

    stores: list[tuple[str, Any]] = [("memory", None)]
    if redis:
        stores.append(("Redis", RedisCacheStore(REDIS_URL, f"kitebench:{uuid.uuid4().hex[:8]}:")))
    figures = []
    for label, store in stores:
        cache = ResponseCache(store)
        warm = request.cache_key("openai")
        await cache.aget_or_set(warm, call_provider, ttl=600)
        counter = iter(range(10**9))

        async def miss(cache: Any = cache, counter: Any = counter) -> None:
            await cache.aget_or_set(f"miss:{next(counter)}", call_provider, ttl=600)

        async def hit(cache: Any = cache, warm: str = warm) -> None:
            await cache.aget_or_set(warm, call_provider, ttl=600)

        ratios = []
        for _ in range(repeat):
            miss_s = await _per_call(miss, number)
            hit_s = await _per_call(hit, number * 5)
            ratios.append(miss_s / hit_s)
        figures.append(summarize(
            f"response cache ({label}): hit vs miss through the SDK to the fake server",
            ratios, "x faster", goal=">= 50x",
            baseline="a miss: aget_or_set calling OpenAIProvider.generate (same run)",
        ))
        await cache.aclear()
    await provider.aclose()
    await aclose_redis_clients()
    return figures


# -- 1,000 concurrent calls ----------------------------------------------------------------

async def concurrent_calls(server: Any, concurrency: int, repeat: int) -> list[Figure]:
    import pybreaker

    from kite_lab.core.config import load_settings
    from kite_lab.core.types import Message
    from kite_lab.memory.cache import ResponseCache
    from kite_lab.providers.base import LLMRequest
    from kite_lab.providers.openai_compat import OpenAIProvider
    from kite_lab.safety.breaker import CircuitBreaker

    server.latency = 0.1
    provider = OpenAIProvider(load_settings(
        {"openai_api_key": "sk-bench", "openai_base_url": server.openai_base_url},
        env_file=None))
    breaker, theirs = CircuitBreaker("openai"), pybreaker.CircuitBreaker()

    def request(i: int, run: str) -> LLMRequest:
        return LLMRequest("gpt-4o-mini", [Message("user", f"{run} question {i}")],
                          params={"temperature": 0})

    async def wall(one: Callable[[int, str], Awaitable[Any]]) -> float:
        run = uuid.uuid4().hex[:8]
        start = time.perf_counter()
        await asyncio.gather(*(one(i, run) for i in range(concurrency)))
        return time.perf_counter() - start

    cache = ResponseCache()

    async def ours(i: int, run: str) -> Any:
        req = request(i, run)

        async def call() -> dict[str, Any]:
            async with breaker.guard():
                return (await provider.generate(req)).to_dict()

        return await cache.aget_or_set(req.cache_key("openai"), call, ttl=600)

    async def bare(i: int, run: str) -> Any:
        return await provider.generate(request(i, run))

    async def with_pybreaker(i: int, run: str) -> Any:
        with theirs.calling():  # pybreaker's way for a block; .call() would not await
            return await provider.generate(request(i, run))

    async def simulated(i: int, run: str) -> Any:  # the provider replaced by its latency
        req = request(i, run)

        async def call() -> dict[str, Any]:
            async with breaker.guard():
                await asyncio.sleep(0.1)
                return {"text": "ok"}

        return await cache.aget_or_set(req.cache_key("openai"), call, ttl=600)

    await wall(bare)  # warm the connection pool
    samples: dict[str, list[float]] = {"ours": [], "bare": [], "pybreaker": [], "sim": []}
    for _ in range(repeat):
        samples["bare"].append(await wall(bare))
        samples["ours"].append(await wall(ours))
        samples["pybreaker"].append(await wall(with_pybreaker))
        samples["sim"].append(await wall(simulated))
    await provider.aclose()
    server.latency = 0.0
    n = concurrency
    return [
        summarize(f"{n} concurrent generate (100 ms fake latency) via breaker + cache miss",
                  samples["ours"], "s wall", goal="<= 1.5 s",
                  baseline="the same calls on the bare SDK (see next figure)",
                  extra={"ratio_to_bare_median": statistics.median(
                      o / b for o, b in zip(samples["ours"], samples["bare"], strict=True))}),
        summarize(f"{n} concurrent generate (100 ms fake latency), bare SDK", samples["bare"],
                  "s wall", baseline="reference: what the SDK + fake server cost here"),
        summarize(f"{n} concurrent generate (100 ms fake latency) via pybreaker.calling()",
                  samples["pybreaker"], "s wall", baseline="reference"),
        summarize(f"{n} concurrent calls of a 100 ms operation via breaker + cache miss",
                  samples["sim"], "s wall", goal="<= 1.5 s",
                  baseline="ideal: 0.1 s (the operation itself)"),
    ]


async def main_async(quick: bool) -> list[Figure]:
    from kite_lab.testing import FakeLLMServer

    redis = _redis_up()
    figures = await breaker_overhead(2_000 if quick else 50_000, 3 if quick else 7, redis)
    figures += sync_breaker_vs_pybreaker(2_000 if quick else 50_000, 3 if quick else 7)
    with FakeLLMServer() as server:
        figures += await cache_hit_vs_miss(server, 10 if quick else 100, 2 if quick else 5,
                                           redis)
        figures += await concurrent_calls(server, 50 if quick else 1000, 1 if quick else 3)
    return figures


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    report(asyncio.run(main_async(args.quick)))


if __name__ == "__main__":
    main()
