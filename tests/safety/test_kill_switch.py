"""The kill switch: local and shared (Redis) activation, and agent-loop limits."""

from __future__ import annotations

import time

import pytest

from kite_lab.core.config import load_settings
from kite_lab.core.errors import InvalidInput, KillSwitchError
from kite_lab.core.events import EventBus
from kite_lab.safety.kill_switch import KillSwitch, KillSwitchLimits, build_kill_switch


@pytest.fixture
def make_switch(backend, request):
    def make(bus: EventBus | None = None) -> KillSwitch:
        if backend == "redis":
            return KillSwitch(bus, redis_url=request.getfixturevalue("redis_url"),
                              prefix=request.getfixturevalue("redis_prefix"))
        return KillSwitch(bus)

    return make


async def test_activate_blocks_calls_until_deactivated(make_switch, bus):
    switch = make_switch(bus)
    await switch.acheck()
    assert not switch.is_active and switch.reason is None and switch.activated_at is None
    before = time.time()
    switch.activate("runaway agent")
    assert switch.is_active and switch.reason == "runaway agent"
    assert before <= switch.activated_at <= time.time()
    with pytest.raises(KillSwitchError, match="runaway agent") as info:
        await switch.acheck()
    assert "deactivate()" in str(info.value) and info.value.reason == "runaway agent"
    with pytest.raises(KillSwitchError):
        switch.check()
    switch.deactivate()
    assert not switch.is_active
    await switch.acheck()
    names = [e.name for e in bus.history("killswitch:*")]
    assert names == ["killswitch:activated", "killswitch:blocked", "killswitch:blocked",
                     "killswitch:deactivated"]
    assert [e.data["active"] for e in bus.history("killswitch:*")] == [True, True, True, False]


async def test_async_activation(make_switch):
    switch = make_switch()
    await switch.aactivate("from a coroutine")
    with pytest.raises(KillSwitchError):
        await switch.acheck()
    await switch.adeactivate()
    await switch.acheck()


async def test_every_replica_sees_a_shared_switch(redis_url, redis_prefix):
    replica_a = KillSwitch(redis_url=redis_url, prefix=redis_prefix)
    replica_b = KillSwitch(redis_url=redis_url, prefix=redis_prefix)
    other_app = KillSwitch(redis_url=redis_url, prefix=redis_prefix + "other:")
    await replica_a.aactivate("incident 42")
    with pytest.raises(KillSwitchError, match="incident 42"):
        await replica_b.acheck()
    assert replica_b.is_active and replica_b.reason == "incident 42"
    await other_app.acheck()  # another prefix: another switch
    replica_b.deactivate()
    await replica_a.acheck()


def test_build_kill_switch_is_shared_when_the_breakers_are(redis_url, redis_prefix):
    assert build_kill_switch(load_settings()).backend == "memory"
    shared = build_kill_switch(load_settings({"redis_url": redis_url,
                                              "kite_redis_prefix": redis_prefix}))
    assert shared.backend == "redis"
    local = build_kill_switch(load_settings({"redis_url": redis_url,
                                             "breaker_backend": "memory"}))
    assert local.backend == "memory"
    status = shared.status()
    assert status["active"] is False and status["limits"]["max_iterations"] is None


@pytest.mark.parametrize("field, value", [
    ("max_iterations", 0), ("max_iterations", 2.5), ("max_cost_usd", -1),
    ("max_seconds", 0), ("max_same_action", True), ("max_cost_usd", "1"),
])
def test_limits_are_validated(field, value):
    with pytest.raises(InvalidInput, match=field):
        KillSwitchLimits(**{field: value})
    limits = KillSwitchLimits()
    limits.max_cost_usd = None  # None: no limit
    with pytest.raises(ValueError):
        setattr(limits, field, value)


def test_limits_say_why_a_loop_must_stop():
    limits = KillSwitchLimits(max_iterations=5, max_cost_usd=0.5, max_seconds=30,
                              max_same_action=3)
    assert limits.exceeded(iterations=4, cost_usd=0.1, elapsed_s=3, same_action=1) is None
    assert "max_iterations" in limits.exceeded(iterations=5)
    assert "max_cost_usd" in limits.exceeded(cost_usd=0.5)
    assert "max_seconds" in limits.exceeded(elapsed_s=31)
    assert "same action" in limits.exceeded(same_action=3)
    assert KillSwitchLimits(max_iterations=None, max_same_action=None).exceeded(
        iterations=10**6, same_action=10**6) is None
