"""One contract, two stores: IdempotencyManager on memory and on Redis."""

from __future__ import annotations

import asyncio
import threading

import pytest

from kite_lab.backends.clock import FakeClock
from kite_lab.core.errors import (
    IdempotencyConflict,
    IdempotencyInProgress,
    IdempotencySerializationError,
    InvalidInput,
)
from kite_lab.core.events import EventBus
from kite_lab.core.runner import run_sync
from kite_lab.safety.idempotency import (
    IdempotencyManager,
    Lease,
    StoredResult,
    build_idempotency,
    fingerprint,
)
from kite_lab.safety.idempotency_memory import MemoryIdempotencyStore
from kite_lab.safety.idempotency_redis import RedisIdempotencyStore


@pytest.fixture
def make_manager(backend, clock, bus, request):
    def make(**options) -> IdempotencyManager:
        if backend == "redis":
            store = RedisIdempotencyStore(request.getfixturevalue("redis_url"),
                                          request.getfixturevalue("redis_prefix"), clock)
        else:
            store = MemoryIdempotencyStore(clock)
        return IdempotencyManager(store, bus, clock=clock, **options)

    return make


async def test_completed_key_replays_without_calling_func(make_manager, bus):
    manager = make_manager()
    calls = []

    async def pay(order: int, amount: float) -> dict:
        calls.append(order)
        return {"order": order, "charged": amount}

    first = await manager.aexecute("order_1", pay, (1, 9.99))
    again = await manager.aexecute("order_1", pay, (1, 9.99))
    assert first == again == {"order": 1, "charged": 9.99}
    assert calls == [1]
    outcomes = [e.data["outcome"] for e in bus.history("idempotency:*")]
    assert outcomes == ["started", "completed", "replayed"]
    stored = await manager.aget("order_1")
    assert stored is not None and stored.value == first


async def test_same_id_with_other_arguments_is_a_conflict(make_manager):
    manager = make_manager()
    await manager.aexecute("order_2", lambda a: a, (1,))
    with pytest.raises(IdempotencyConflict, match="different arguments"):
        await manager.aexecute("order_2", lambda a: a, (2,))
    with pytest.raises(IdempotencyConflict):
        await manager.aexecute("order_2", lambda a: a, (), {"a": 1})  # kwargs differ too


async def test_conflict_also_while_the_first_is_in_flight(make_manager):
    manager = make_manager()
    lease = await manager.abegin("op", fingerprint((1,)))
    assert isinstance(lease, Lease)
    with pytest.raises(IdempotencyConflict, match="in_progress"):
        await manager.abegin("op", fingerprint((2,)), wait=0)


async def test_duplicate_in_flight_waits_for_the_result(make_manager):
    manager = make_manager()
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return "done"

    first = asyncio.create_task(manager.aexecute("op", slow))
    await started.wait()
    duplicates = [asyncio.create_task(manager.aexecute("op", slow)) for _ in range(20)]
    await asyncio.sleep(0.05)
    assert not any(d.done() for d in duplicates)
    release.set()
    assert await first == "done"
    assert await asyncio.gather(*duplicates) == ["done"] * 20
    assert calls == 1


async def test_duplicate_in_flight_raises_when_asked_to(make_manager):
    manager = make_manager(on_in_progress="raise")
    lease = await manager.abegin("op", "fp")
    with pytest.raises(IdempotencyInProgress) as info:
        await manager.abegin("op", "fp")
    assert info.value.retry_after > 0
    await lease.release()
    waiting = make_manager(wait_timeout=0.05)
    await waiting.abegin("op2", "fp")
    with pytest.raises(IdempotencyInProgress, match="waited"):
        await waiting.abegin("op2", "fp")


async def test_failed_func_stores_nothing_and_releases_the_lease(make_manager, bus):
    manager = make_manager()
    attempts = 0

    async def flaky() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("payment gateway down")
        return "charged"

    with pytest.raises(ConnectionError):
        await manager.aexecute("op", flaky)
    assert await manager.aget("op") is None
    assert await manager.aexecute("op", flaky) == "charged"
    assert attempts == 2
    assert "released" in [e.data["outcome"] for e in bus.history("idempotency:*")]


async def test_cancelled_func_releases_the_lease(make_manager):
    manager = make_manager()
    entered = asyncio.Event()

    async def hang() -> None:
        entered.set()
        await asyncio.sleep(3600)

    task = asyncio.create_task(manager.aexecute("op", hang))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await manager.aexecute("op", lambda: "second try") == "second try"


async def test_non_serializable_result_is_a_clear_error_and_nothing_is_half_stored(make_manager):
    manager = make_manager()
    calls = 0

    def returns_object() -> object:
        nonlocal calls
        calls += 1
        return object() if calls == 1 else {"ok": True}

    with pytest.raises(IdempotencySerializationError, match="cannot be stored") as info:
        await manager.aexecute("op", returns_object)
    assert isinstance(info.value, TypeError)
    assert await manager.aget("op") is None
    assert await manager.aexecute("op", returns_object) == {"ok": True}  # the id is free
    with pytest.raises(IdempotencySerializationError):
        await manager.aexecute("nan", lambda: float("nan"))


async def test_results_round_trip_the_same_for_first_and_later_callers(make_manager):
    manager = make_manager()
    first = await manager.aexecute("op", lambda: (1, 2, {"a": [3]}))
    again = await manager.aexecute("op", lambda: "not called")
    assert first == again == [1, 2, {"a": [3]}]  # JSON: the tuple comes back as a list


async def test_crashed_owner_can_be_reclaimed_only_after_the_lease(make_manager, clock, bus):
    manager = make_manager(lease_ttl=30)
    dead = await manager.abegin("op", "fp")  # its owner "crashes": never completes
    assert isinstance(dead, Lease)
    clock.advance(29)
    with pytest.raises(IdempotencyInProgress):
        await manager.abegin("op", "fp", wait=0)
    clock.advance(2)
    results = await asyncio.gather(
        *(manager.abegin("op", "fp", wait=0) for _ in range(100)), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, Lease)]
    assert len(winners) == 1 and winners[0].reclaimed
    assert all(isinstance(r, IdempotencyInProgress) for r in results if r is not winners[0])
    assert "expired" in [e.data["outcome"] for e in bus.history("idempotency:*")]


async def test_stale_owner_can_never_overwrite_the_new_owners_result(make_manager, clock):
    manager = make_manager(lease_ttl=10)
    stale = await manager.abegin("op", "fp")
    clock.advance(11)
    fresh = await manager.abegin("op", "fp")
    assert isinstance(stale, Lease) and isinstance(fresh, Lease)
    assert await stale.complete("stale") is False  # the new owner holds the lease
    assert await stale.extend() is False
    assert await stale.release() is False
    assert await fresh.complete("fresh") is True
    assert await stale.complete("stale, later") is False
    stored = await manager.abegin("op", "fp")
    assert isinstance(stored, StoredResult) and stored.value == "fresh"


async def test_heartbeat_keeps_a_live_owner_s_lease(make_manager, clock):
    manager = make_manager(lease_ttl=0.3)
    lease = await manager.abegin("op", "fp")
    async with lease.heartbeat():
        await asyncio.sleep(0.25)
        clock.advance(0.2)  # past the original lease end
        await asyncio.sleep(0.15)  # a beat happened in between
        with pytest.raises(IdempotencyInProgress):
            await manager.abegin("op", "fp", wait=0)
    assert await lease.complete("ok")


async def test_completed_results_expire_after_their_ttl(make_manager, clock):
    manager = make_manager()
    await manager.aexecute("op", lambda: 1, ttl=60)
    clock.advance(61)
    assert await manager.aget("op") is None
    assert await manager.aexecute("op", lambda: 2, ttl=60) == 2


@pytest.mark.parametrize("operation_id", ["", "x" * 256])
async def test_operation_ids_must_be_1_to_255_characters(make_manager, operation_id):
    manager = make_manager()
    with pytest.raises(InvalidInput, match="1 to 255"):
        await manager.aexecute(operation_id, lambda: 1)
    assert await manager.aexecute("x" * 255, lambda: 1) == 1
    with pytest.raises(TypeError):
        await manager.aexecute(123, lambda: 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["ttl", "lease_ttl"])
@pytest.mark.parametrize("value", [0, -1, "60", True])
async def test_non_positive_ttls_are_rejected(make_manager, field, value):
    with pytest.raises(InvalidInput, match=field):
        make_manager(**{field: value})
    manager = make_manager()
    with pytest.raises(InvalidInput):
        await manager.aexecute("op", lambda: 1, **{field: value})


def test_sync_execute_as_in_the_guide_and_nested_sync_calls(make_manager):
    manager = make_manager()
    calls = []

    def process_payment(order_id, amount):
        calls.append(threading.current_thread().name)
        # a sync func may call sync kite_lab methods (they run on kite_lab's loop)
        nested = run_sync(asyncio.sleep(0, result="nested ok"))
        return {"order": order_id, "charged": amount, "nested": nested}

    order_id, amount = 42, 9.99
    result = manager.execute(operation_id=f"order_{order_id}", func=process_payment,
                             args=(order_id, amount))
    again = manager.execute(operation_id=f"order_{order_id}", func=process_payment,
                            args=(order_id, amount))
    assert result == again == {"order": 42, "charged": 9.99, "nested": "nested ok"}
    assert len(calls) == 1


async def test_sync_execute_works_inside_a_running_loop(make_manager):
    manager = make_manager()
    assert manager.execute("op", lambda: "from a notebook cell") == "from a notebook cell"


async def test_decorator_sync_and_async(make_manager):
    manager = make_manager()
    calls = []

    @manager.idempotent("charge_{order_id}")
    async def charge(order_id: int, amount: float = 1.0) -> float:
        calls.append(order_id)
        return amount

    @manager.idempotent(lambda user: f"welcome_{user}")
    def welcome(user: str) -> str:
        calls.append(user)
        return f"hi {user}"

    assert await charge(7, amount=2.5) == 2.5
    assert await charge(7, amount=2.5) == 2.5
    with pytest.raises(IdempotencyConflict):
        await charge(7, amount=3.0)
    assert await asyncio.to_thread(welcome, "ann") == "hi ann"
    assert await asyncio.to_thread(welcome, "ann") == "hi ann"
    assert calls == [7, "ann"]


async def test_explicit_lease_api_for_the_http_layer(make_manager):
    manager = make_manager()
    key, body_hash = "idem-key-123", fingerprint(({"prompt": "hi"},))
    lease = await manager.abegin(key, body_hash)
    assert isinstance(lease, Lease) and not lease.reclaimed
    assert await lease.complete({"status": 200, "body": {"text": "hello"}})
    replay = await manager.abegin(key, body_hash)
    assert isinstance(replay, StoredResult)
    assert replay.value == {"status": 200, "body": {"text": "hello"}}
    with pytest.raises(IdempotencyConflict):
        await manager.abegin(key, fingerprint(({"prompt": "other"},)))
    on_shutdown = await manager.abegin("in-flight", body_hash)
    assert await on_shutdown.release()
    assert isinstance(await manager.abegin("in-flight", body_hash), Lease)
    assert await manager.adelete(key)
    assert isinstance(await manager.abegin(key, body_hash), Lease)


def test_fingerprint_is_stable_and_order_insensitive_for_kwargs():
    assert fingerprint((1, "a"), {"x": 1, "y": [1, 2]}) == fingerprint((1, "a"), {"y": [1, 2],
                                                                                   "x": 1})
    assert fingerprint((1,)) != fingerprint((2,))
    assert fingerprint((1,)) != fingerprint((), {"a": 1})


def test_build_idempotency_from_settings(redis_url, redis_prefix):
    from kite_lab.core.config import load_settings

    memory = build_idempotency(load_settings({"idempotency_ttl": 120}), EventBus())
    assert memory.backend == "memory" and memory.ttl == 120
    shared = build_idempotency(load_settings({"redis_url": redis_url,
                                              "kite_redis_prefix": redis_prefix}))
    assert shared.backend == "redis"
    assert shared.execute("op", lambda: 5) == 5
    other_replica = build_idempotency(load_settings({"redis_url": redis_url,
                                                     "kite_redis_prefix": redis_prefix}))
    assert other_replica.execute("op", lambda: 6) == 5


async def test_redis_keys_have_a_ttl_and_live_under_the_prefix(redis_url, redis_prefix):
    from kite_lab.backends.redis_client import redis_client

    manager = IdempotencyManager(RedisIdempotencyStore(redis_url, redis_prefix, FakeClock()))
    await manager.aexecute("done", lambda: 1, ttl=100)
    await manager.abegin("running", "fp")
    client = redis_client(redis_url)
    keys = [k async for k in client.scan_iter(match=redis_prefix + "*")]
    assert sorted(keys) == [f"{redis_prefix}idem:done", f"{redis_prefix}idem:running"]
    for key in keys:
        assert await client.pttl(key) > 0
