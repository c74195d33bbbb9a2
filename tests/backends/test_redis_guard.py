"""RedisGuard: the one "Redis failed: describe, log, emit, degrade" helper."""

from __future__ import annotations

import logging

import pytest
import redis.exceptions

from kite_lab.backends.redis_guard import (
    RedisGuard,
    describe_redis_error,
    is_redis_error,
)
from kite_lab.core.events import EventBus

URL = "redis://user:s3cret@redis.internal:6379/0"


def test_redis_failures_are_told_apart_from_bugs():
    assert is_redis_error(redis.exceptions.ConnectionError("refused"))
    assert is_redis_error(redis.exceptions.ResponseError("WRONGTYPE"))
    assert is_redis_error(ConnectionRefusedError()) and is_redis_error(TimeoutError())
    assert not is_redis_error(KeyError("bug")) and not is_redis_error(ValueError())


def test_descriptions_are_short_and_never_carry_the_password():
    detail = describe_redis_error(redis.exceptions.ConnectionError("refused\nmore"), URL)
    assert detail == "ConnectionError at redis://user:***@redis.internal:6379/0: refused"
    assert describe_redis_error(TimeoutError()) == "TimeoutError"
    assert len(describe_redis_error(OSError("x" * 1000))) < 200


def test_failed_logs_emits_and_returns_the_description(caplog):
    bus = EventBus()
    guard = RedisGuard("widget store", bus, event="widget:error", url=URL,
                       logger=logging.getLogger("kitetest.guard"))
    with caplog.at_level(logging.WARNING, logger="kitetest.guard"):
        failure = guard.failed(redis.exceptions.ConnectionError("down"), "bypassed", key="h")
    assert failure.first and failure.detail.startswith("ConnectionError at redis://user:***@")
    [event] = bus.history("widget:error")
    assert event.data == {"key": "h", "error": failure.detail, "consequence": "bypassed"}
    assert caplog.messages == [f"widget store: Redis unreachable ({failure.detail}); bypassed"]
    assert "s3cret" not in caplog.text and "s3cret" not in str(event.data)
    assert guard.failures == 1 and guard.last_error == failure.detail


def test_anything_else_propagates_untouched():
    bus = EventBus()
    guard = RedisGuard("widget store", bus, event="widget:error")
    bug = KeyError("a bug of ours")
    with pytest.raises(KeyError) as info:
        guard.failed(bug, "bypassed")
    assert info.value is bug
    with pytest.raises(KeyError):
        with guard.degrade("bypassed"):
            raise bug
    assert bus.history("widget:error") == [] and guard.failures == 0


async def test_degrade_swallows_a_failure_and_says_so():
    guard = RedisGuard("widget store")
    with guard.degrade("using the last value") as outcome:
        raise redis.exceptions.TimeoutError("slow")
    assert outcome and outcome.failure is not None and "TimeoutError" in outcome.failure.detail
    with guard.degrade("using the last value") as outcome:
        pass
    assert not outcome and outcome.failure is None


async def test_run_falls_back_on_failure_only():
    guard = RedisGuard("widget store")

    async def ok() -> str:
        return "stored"

    async def down() -> str:
        raise redis.exceptions.ConnectionError("refused")

    assert await guard.run(ok(), "bypassed", fallback=lambda f: "fallback") == "stored"
    assert await guard.run(down(), "bypassed", fallback=lambda f: f.detail) == (
        "ConnectionError: refused")


def test_once_reports_an_outage_when_it_starts_and_when_it_ends():
    bus = EventBus()
    guard = RedisGuard("breaker 'x'", bus, event="breaker:fallback", detail_field="reason",
                       once=True)
    assert guard.recovered(active=False) is False  # no outage: nothing to report
    first = guard.failed(OSError("unreachable"), "using a local breaker", active=True)
    again = guard.failed(OSError("still unreachable"), "using a local breaker", active=True)
    assert first.first and not again.first and guard.degraded
    assert guard.last_error == "OSError: still unreachable" and guard.failures == 1
    assert guard.recovered(active=False) is True and not guard.degraded
    events = [e.data for e in bus.history("breaker:fallback")]
    assert events == [
        {"active": True, "reason": "OSError: unreachable", "consequence": "using a local breaker"},
        {"active": False, "reason": "redis reachable again"},
    ]


def test_extra_store_errors_count_as_failures():
    class StorageError(Exception):
        pass

    guard = RedisGuard("limiter", store_errors=lambda: (StorageError,))
    assert guard.failed(StorageError("wrapped"), "allowed").detail == "StorageError: wrapped"
    with pytest.raises(RuntimeError):
        guard.failed(RuntimeError("bug"), "allowed")
