"""The response cache: one contract for memory and Redis, stampedes, keys, namespaces."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kite_lab.backends.clock import FakeClock
from kite_lab.backends.redis_client import aclose_redis_clients, redis_client
from kite_lab.core.config import load_settings
from kite_lab.core.errors import InvalidInput
from kite_lab.core.events import EventBus
from kite_lab.core.runner import run_sync
from kite_lab.core.types import Completion, Message, ToolSpec, Usage
from kite_lab.memory.cache import ResponseCache, build_cache
from kite_lab.memory.cache_stores import MemoryCacheStore, RedisCacheStore, glob_escape
from kite_lab.providers.base import LLMRequest

WORKERS = Path(__file__).resolve().parent / "cache_workers.py"


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
async def _close_this_loops_redis_clients() -> Any:
    """Each async test has its own loop: close its Redis connections before it ends."""
    yield
    await aclose_redis_clients()


def _drop_keys(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN + UNLINK): tests leave nothing behind."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=glob_escape(prefix) + "*", count=1000))
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start:start + 1000])
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_prefix: str, redis_url: str) -> Iterator[str]:
    """The shared conftest's unique prefix, and every key under it dropped afterwards."""
    yield redis_prefix
    _drop_keys(redis_url, redis_prefix)


@pytest.fixture
def shared_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix for worker processes, removed with all its keys afterwards."""
    prefix = f"kitetest:{uuid.uuid4().hex[:12]}:"
    yield prefix
    _drop_keys(redis_url, prefix)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bus() -> EventBus:
    return EventBus()


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test against the memory store and the Redis store (real Redis)."""
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return str(request.param)


def run_workers(params: dict[str, Any], processes: int, cwd: Path,
                timeout: float = 120.0) -> list[dict[str, Any]]:
    """Start ``processes`` cache workers at once; return each one's JSON findings."""
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKERS), json.dumps({**params, "processes": processes})],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        )
        for _ in range(processes)
    ]
    results = []
    deadline = time.monotonic() + timeout
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert proc.returncode == 0, f"cache worker failed:\n{err[-3000:]}"
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


@pytest.fixture
def make_cache(backend, clock, bus, request):
    def make(**options) -> ResponseCache:
        if backend == "redis":
            store = RedisCacheStore(request.getfixturevalue("redis_url"),
                                    request.getfixturevalue("redis_prefix"))
        else:
            store = MemoryCacheStore(options.pop("max_entries", 100), clock)
        return ResponseCache(store, bus, clock=clock, **options)

    return make


async def test_get_set_delete_and_defaults(make_cache):
    cache = make_cache()
    assert await cache.aget("k") is None and await cache.aget("k", "dflt") == "dflt"
    await cache.aset("k", {"text": "hi", "n": [1, 2]}, ttl=60)
    assert await cache.aget("k") == {"text": "hi", "n": [1, 2]}
    await cache.aset("none", None)
    assert await cache.aget("none", "dflt") is None  # a cached None is a hit
    assert await cache.adelete("k") is True
    assert await cache.adelete("k") is False
    assert await cache.aget("k") is None


def test_sync_api_outside_a_loop(make_cache):
    cache = make_cache()
    cache.set("k", [1], ttl=30)
    assert cache.get("k") == [1]
    assert cache.get_or_set("k2", lambda: "made", ttl=30) == "made"
    assert cache.delete("k2") is True
    assert cache.clear() >= 1
    stats = cache.stats()
    assert {"backend", "hits", "misses", "errors", "sets", "hit_rate"} <= set(stats)


async def test_sync_api_inside_a_running_loop(make_cache):
    cache = make_cache()
    cache.set("k", "from a notebook", ttl=30)
    assert cache.get("k") == "from a notebook"


async def test_every_caller_gets_its_own_copy(make_cache):
    cache = make_cache()
    first = await cache.aget_or_set("k", lambda: {"list": [1]}, ttl=30)
    first["list"].append(2)
    assert await cache.aget("k") == {"list": [1]}


async def test_objects_with_to_dict_are_stored_as_their_dict(make_cache):
    cache = make_cache()
    completion = Completion("hi", "openai", "gpt-4o-mini", Usage(3, 1))
    value = await cache.aget_or_set("c", lambda: completion, ttl=30)
    assert value == completion.to_dict() == await cache.aget("c")
    assert Completion.from_dict(value).text == "hi"


async def test_non_serializable_values_are_rejected_and_nothing_is_cached(make_cache):
    cache = make_cache()
    with pytest.raises(InvalidInput, match="JSON-serializable"):
        await cache.aset("k", object())
    with pytest.raises(InvalidInput):
        await cache.aget_or_set("k", lambda: {1, 2}, ttl=30)
    with pytest.raises(InvalidInput):
        await cache.aset("k", float("inf"))
    assert await cache.aget("k") is None


@pytest.mark.parametrize("ttl", [0, -5, "10", True])
async def test_non_positive_ttls_are_rejected(make_cache, ttl):
    cache = make_cache()
    with pytest.raises(InvalidInput, match="ttl"):
        await cache.aset("k", 1, ttl=ttl)
    with pytest.raises(InvalidInput, match="ttl"):
        make_cache(default_ttl=ttl)


@pytest.mark.parametrize("key", ["", "x" * 1025])
async def test_bad_keys_are_rejected(make_cache, key):
    with pytest.raises(InvalidInput):
        await make_cache().aget(key)
    with pytest.raises(TypeError):
        await make_cache().aget(123)  # type: ignore[arg-type]


async def test_100_concurrent_cold_get_or_set_call_func_once(make_cache, bus):
    cache = make_cache()
    calls = 0

    async def expensive() -> dict:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        return {"answer": 42}

    values = await asyncio.gather(*(cache.aget_or_set("cold", expensive, ttl=60)
                                    for _ in range(100)))
    assert calls == 1
    assert values == [{"answer": 42}] * 100
    assert len(bus.history("cache:miss")) == 1
    assert len(bus.history("cache:hit")) == 99


def test_100_concurrent_cold_sync_get_or_set_from_threads_call_func_once(make_cache):
    cache = make_cache()
    calls = 0
    lock = threading.Lock()
    barrier = threading.Barrier(100)

    def expensive() -> str:
        nonlocal calls
        with lock:
            calls += 1
        threading.Event().wait(0.2)
        return "v"

    def caller() -> str:
        barrier.wait(timeout=30)
        return cache.get_or_set("cold", expensive, ttl=60)

    with ThreadPoolExecutor(100) as pool:
        values = list(pool.map(lambda _: caller(), range(100)))
    assert values == ["v"] * 100 and calls == 1


def test_sync_get_or_set_whose_func_calls_sync_kite_lab_does_not_deadlock(make_cache):
    cache = make_cache()

    def fake_complete(prompt: str) -> str:  # like ai.complete: run_sync on kite_lab's loop
        return run_sync(asyncio.sleep(0, result=f"answer to {prompt}"))

    prompt = "What is the capital of France?"
    result = cache.get_or_set(key=f"llm_{hash(prompt)}", func=lambda: fake_complete(prompt),
                              ttl=3600)
    assert result == f"answer to {prompt}" == cache.get(f"llm_{hash(prompt)}")


async def test_the_same_inside_a_running_loop(make_cache):
    cache = make_cache()
    value = cache.get_or_set("k", lambda: run_sync(asyncio.sleep(0, result="ok")), ttl=10)
    assert value == "ok"


async def test_failing_func_caches_nothing_and_all_waiters_see_the_error(make_cache):
    cache = make_cache()
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise ConnectionError("provider down")

    results = await asyncio.gather(*(cache.aget_or_set("k", broken, ttl=10) for _ in range(10)),
                                   return_exceptions=True)
    assert calls == 1 and all(isinstance(r, ConnectionError) for r in results)
    assert await cache.aget("k") is None
    assert await cache.aget_or_set("k", lambda: "recovered", ttl=10) == "recovered"


async def test_a_cancelled_leader_hands_over_to_a_waiter(make_cache):
    cache = make_cache()
    calls = 0
    first_started = asyncio.Event()

    async def compute() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            first_started.set()
            await asyncio.sleep(3600)
        await asyncio.sleep(0.01)
        return "second leader's value"

    leader = asyncio.create_task(cache.aget_or_set("k", compute, ttl=10))
    await first_started.wait()
    waiters = [asyncio.create_task(cache.aget_or_set("k", compute, ttl=10)) for _ in range(5)]
    await asyncio.sleep(0.02)
    leader.cancel()
    assert await asyncio.gather(*waiters) == ["second leader's value"] * 5
    assert calls == 2
    with pytest.raises(asyncio.CancelledError):
        await leader


async def test_memory_ttl_and_lru(clock):
    cache = ResponseCache(MemoryCacheStore(max_entries=3, clock=clock), clock=clock)
    await cache.aset("a", 1, ttl=10)
    clock.advance(11)
    assert await cache.aget("a") is None
    for key in "bcd":
        await cache.aset(key, key, ttl=100)
    assert await cache.aget("b") == "b"  # b is now the most recently used
    await cache.aset("e", "e", ttl=100)
    assert await cache.aget("c") is None  # the least recently used went
    assert [await cache.aget(k) for k in "bde"] == ["b", "d", "e"]
    assert (await cache.astats())["entries"] == 3


async def test_every_redis_key_written_has_a_ttl(redis_url, redis_prefix):
    cache = ResponseCache(RedisCacheStore(redis_url, redis_prefix), lock_ttl=5)
    await cache.aset("plain", 1, ttl=100)
    await cache.aget_or_set("filled", lambda: 2, ttl=200)
    held = await cache.store.get_or_lock("locked", "token", 5)  # a lock left behind
    assert held == ("locked", None)
    client = redis_client(redis_url)
    keys = [k async for k in client.scan_iter(match=glob_escape(redis_prefix) + "*")]
    assert len(keys) == 3
    for key in keys:
        assert await client.pttl(key) > 0, key


async def test_clear_removes_only_its_own_namespace(redis_url, redis_prefix):
    prefix = redis_prefix + "[x]*?"  # glob characters in the prefix are matched literally
    cache = ResponseCache(RedisCacheStore(redis_url, prefix))
    client = redis_client(redis_url)
    foreign = {
        "someone-elses-key": "1",
        redis_prefix + "other": "1",
        prefix + "breaker:{openai}": "1",
        prefix + "cachelike": "1",
        redis_prefix + "[x]Zcache:v:k0": "1",
    }
    for key, value in foreign.items():
        await client.set(key, value, ex=300)
    for i in range(1200):  # more than one SCAN batch
        await cache.aset(f"k{i}", i, ttl=300)
    assert await cache.aclear() == 1200
    assert await cache.aget("k1") is None
    for key in foreign:
        assert await client.get(key) == "1", f"clear() deleted {key}"
    await client.delete(*foreign)


@pytest.mark.slow
def test_cold_key_from_4_processes_is_computed_once(redis_url, shared_prefix, tmp_path):
    prefix = shared_prefix
    results = run_workers({"url": redis_url, "prefix": prefix, "tasks": 25}, 4, tmp_path)
    values = [v for r in results for v in r["values"]]
    assert len(values) == 100 and all(v == values[0] for v in values)
    import redis

    assert redis.Redis.from_url(redis_url).get(f"{prefix}computed") == b"1"


def test_build_cache_from_settings(redis_url, redis_prefix):
    assert build_cache(load_settings({"cache_backend": "none"})) is None
    memory = build_cache(load_settings({"cache_max_entries": 5, "cache_ttl": 9}))
    assert memory.backend == "memory" and memory.store.max_entries == 5
    assert memory.default_ttl == 9
    shared = build_cache(load_settings({"redis_url": redis_url,
                                        "kite_redis_prefix": redis_prefix}))
    assert shared.backend == "redis"
    shared.set("k", "v")
    replica = build_cache(load_settings({"redis_url": redis_url,
                                         "kite_redis_prefix": redis_prefix}))
    assert replica.get("k") == "v"


async def test_events_carry_a_hash_not_the_key(make_cache, bus):
    cache = make_cache()
    secret_prompt = "my medical question"
    await cache.aget(secret_prompt)
    await cache.aset(secret_prompt, 1)
    await cache.aget(secret_prompt)
    events = bus.history("cache:*")
    assert [e.name for e in events] == ["cache:miss", "cache:hit"]
    assert all(secret_prompt not in str(e.data) for e in events)
    assert events[0].data["key"] == events[1].data["key"]


# -- cache keys of LLM requests --------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
json_dicts = st.dictionaries(st.text(min_size=1, max_size=4), json_scalars, max_size=4)


def _request(**changes) -> LLMRequest:
    base = dict(
        model="gpt-4o-mini",
        messages=[Message("user", "hi")],
        system="be brief",
        tools=[ToolSpec("lookup", "find things", {"type": "object", "properties": {
            "q": {"type": "string"}, "n": {"type": "integer"}}})],
        tool_choice="auto",
        params={"temperature": 0, "max_tokens": 50, "top_p": 1.0},
    )
    base.update(changes)
    return LLMRequest(**base)


CHANGES = {
    "provider": None,
    "model": "gpt-4o",
    "messages": [Message("user", "hi!")],
    "system": "be verbose",
    "tools": [],
    "tool_choice": "required",
    "params": {"temperature": 0, "max_tokens": 51, "top_p": 1.0},
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(sorted(CHANGES)), extra=json_dicts)
def test_changing_any_key_relevant_field_misses(field, extra):
    cache = ResponseCache()
    original = _request(params={"temperature": 0, **extra})
    key = original.cache_key("openai")
    cache.set(key, "cached answer")
    if field == "provider":
        other_key = original.cache_key("anthropic")
    elif field == "params":
        other_key = _request(params={"temperature": 0, **extra, "seed": 7}).cache_key("openai")
    else:
        other_key = _request(params={"temperature": 0, **extra},
                             **{field: CHANGES[field]}).cache_key("openai")
    assert other_key != key
    assert cache.get(other_key) is None


@settings(max_examples=60, deadline=None)
@given(params=json_dicts, data=st.data())
def test_reordering_dict_keys_hits(params, data):
    cache = ResponseCache()
    key = _request(params=params).cache_key("openai")
    cache.set(key, "cached answer")
    shuffled = data.draw(st.permutations(list(params.items())))
    props = {"n": {"type": "integer"}, "q": {"type": "string"}}  # reversed order
    reordered = _request(
        params=dict(shuffled),
        tools=[ToolSpec("lookup", "find things", {"properties": props, "type": "object"})],
    )
    assert reordered.cache_key("openai") == key
    assert cache.get(reordered.cache_key("openai")) == "cached answer"
