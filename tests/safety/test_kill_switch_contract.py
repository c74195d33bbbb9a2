"""One contract, two stores: the kill switch's memory store and its Redis store."""

from __future__ import annotations

import pytest

from kite_lab.backends.redis_client import redis_client
from kite_lab.core.errors import InvalidInput, KillSwitchError
from kite_lab.safety.kill_switch import KillSwitch
from kite_lab.safety.kill_switch_memory import MemoryKillSwitchStore
from kite_lab.safety.kill_switch_redis import RedisKillSwitchStore
from kite_lab.safety.kill_switch_store import INACTIVE, KillSwitchStore, SwitchState


@pytest.fixture
def make_store(backend, request):
    """``make_store()`` -> a new handle on the same switch; ``make_store("other")`` -> a
    different switch (another prefix / another memory store)."""
    shared: dict[str, MemoryKillSwitchStore] = {}

    def make(name: str = "main") -> KillSwitchStore:
        if backend == "redis":
            prefix = request.getfixturevalue("redis_prefix") + name + ":"
            return RedisKillSwitchStore(request.getfixturevalue("redis_url"), prefix)
        return shared.setdefault(name, MemoryKillSwitchStore())

    return make


async def test_starts_inactive(make_store):
    assert await make_store().read() == INACTIVE


async def test_activate_and_deactivate_are_seen_by_every_handle(make_store):
    writer, reader = make_store(), make_store()
    await writer.activate("incident 7", 1700000000.25)
    assert await reader.read() == SwitchState(True, "incident 7", 1700000000.25)
    await reader.deactivate()
    assert await writer.read() == INACTIVE
    await writer.deactivate()  # deactivating an inactive switch is fine
    assert await reader.read() == INACTIVE


async def test_activating_again_keeps_the_latest_reason_and_time(make_store):
    store = make_store()
    await store.activate("first", 1.0)
    await store.activate("second", 2.5)
    assert await store.read() == SwitchState(True, "second", 2.5)


async def test_another_name_is_another_switch(make_store):
    await make_store().activate("only here", 3.0)
    assert await make_store("other").read() == INACTIVE


async def test_a_switch_on_either_store_blocks_and_releases(make_store, bus):
    first, second = KillSwitch(bus, store=make_store()), KillSwitch(store=make_store())
    await first.aactivate("stop")
    assert await second.ais_active() is True and second.reason == "stop"
    with pytest.raises(KillSwitchError, match="stop"):
        await second.acheck()
    second.deactivate()
    await first.acheck()
    assert first.status()["backend"] == first.store.backend


async def test_redis_key_has_no_ttl(redis_url, redis_prefix):
    store = RedisKillSwitchStore(redis_url, redis_prefix)
    await store.activate("no expiry", 1.0)
    assert store.key == redis_prefix + "killswitch"
    assert await redis_client(redis_url).ttl(store.key) == -1  # a switch that expires is none


def test_store_and_redis_url_are_exclusive():
    with pytest.raises(InvalidInput, match="not both"):
        KillSwitch(store=MemoryKillSwitchStore(), redis_url="redis://127.0.0.1:6379/0")


def test_only_inline_stores_read_without_await(redis_url):
    assert MemoryKillSwitchStore().read_now() == INACTIVE
    with pytest.raises(NotImplementedError, match="await"):
        RedisKillSwitchStore(redis_url).read_now()
