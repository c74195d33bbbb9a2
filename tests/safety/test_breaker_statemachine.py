"""A Hypothesis state machine drives the breaker and a tiny reference model side by side.

Calls are started (admitted or rejected) and finished (success, counted failure, ignored
error) in any interleaving, time jumps, the breaker is tripped and reset; after every
step state, counters and permits must match the model. Both stores run the same machine.

Time steps (0.7, 33.3, 101.1, 250.9 s against a 100 s timeout and a 230 s permit lease)
never add up to a boundary within 50 steps, so the Redis store -- whose clock is the
server's -- cannot land on the other side of one by a millisecond.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from kite_lab.backends.clock import FakeClock
from kite_lab.backends.redis_client import aclose_redis_clients
from kite_lab.core.errors import BadRequestError, CircuitBreakerError, ServerError
from kite_lab.safety.breaker import CircuitBreaker
from kite_lab.safety.breaker_memory import MemoryBreakerStore
from kite_lab.safety.breaker_redis import RedisBreakerStore
from kite_lab.safety.breaker_types import CircuitBreakerConfig

TIMEOUT, LEASE = 100.0, 230.0
STEPS = (0.7, 33.3, 101.1, 250.9)


@dataclass
class Model:
    failure_threshold: int
    success_threshold: int
    max_calls: int
    state: str = "closed"
    open_until: float = 0.0
    consecutive: int = 0
    ho_successes: int = 0
    permits: dict[int, float] = field(default_factory=dict)
    total: int = 0
    successes: int = 0
    failures: int = 0
    rejected: int = 0
    next_token: int = 0

    def move(self, new: str, now: float) -> None:
        self.state = new
        self.ho_successes = 0
        self.permits.clear()
        if new == "open":
            self.open_until = now + TIMEOUT
        if new == "closed":
            self.consecutive = 0

    def admit(self, now: float) -> int | None:
        """None: rejected; -1: admitted while closed; else a permit token."""
        if self.state == "closed":
            return -1
        if self.state == "open":
            if now < self.open_until:
                self.rejected += 1
                return None
            self.move("half_open", now)
        self.permits = {t: d for t, d in self.permits.items() if d > now}
        if len(self.permits) < self.max_calls:
            self.next_token += 1
            self.permits[self.next_token] = now + LEASE
            return self.next_token
        self.rejected += 1
        return None

    def finish(self, token: int, outcome: str, now: float) -> None:
        holder = token > 0 and self.permits.pop(token, None) is not None
        if outcome == "release":
            return
        self.total += 1
        if outcome == "success":
            self.successes += 1
            if self.state == "closed":
                self.consecutive = 0
            elif self.state == "half_open" and holder:
                self.ho_successes += 1
                if self.ho_successes >= self.success_threshold:
                    self.move("closed", now)
        else:
            self.failures += 1
            self.consecutive += 1
            if self.state == "closed" and self.consecutive >= self.failure_threshold:
                self.move("open", now)
            elif self.state == "half_open" and holder:
                self.move("open", now)

    def effective(self, now: float) -> str:
        if self.state == "open" and now >= self.open_until:
            return "half_open"
        return self.state


class BreakerMachine(RuleBasedStateMachine):
    backend = "memory"
    redis_url = ""

    calls = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.model: Model | None = None
        self.breaker: CircuitBreaker | None = None

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def now(self) -> float:
        if self.backend == "memory":
            return self.clock.now()

        async def server_time() -> float:
            from kite_lab.backends.redis_client import redis_client

            seconds, micros = await redis_client(self.redis_url).time()
            return seconds + micros / 1e6

        return self.run(server_time()) + self.clock.offset()

    @initialize(failure_threshold=st.integers(1, 4), success_threshold=st.integers(1, 3),
                max_calls=st.integers(1, 3))
    def configure(self, failure_threshold: int, success_threshold: int, max_calls: int) -> None:
        cfg = CircuitBreakerConfig(
            failure_threshold=failure_threshold, success_threshold=success_threshold,
            timeout_seconds=TIMEOUT, half_open_max_calls=max_calls, max_half_open_seconds=LEASE,
        )
        if self.backend == "redis":
            self.prefix = f"kitetest:sm:{uuid.uuid4().hex[:10]}:"
            store = RedisBreakerStore(self.redis_url, self.prefix, "sm", self.clock)
        else:
            store = MemoryBreakerStore(self.clock)
        self.breaker = CircuitBreaker("sm", cfg, store=store, clock=self.clock)
        self.model = Model(failure_threshold, success_threshold, max_calls)

    @rule(target=calls)
    def start_call(self):
        guard = self.breaker.guard()
        expected = self.model.admit(self.now())
        try:
            self.run(guard.__aenter__())
        except CircuitBreakerError:
            assert expected is None, "the breaker rejected a call the model admits"
            return multiple()
        assert expected is not None, "the breaker admitted a call the model rejects"
        return (guard, expected)

    @rule(call=consumes(calls), outcome=st.sampled_from(["success", "failure", "ignored",
                                                         "cancelled"]))
    def finish_call(self, call, outcome: str) -> None:
        guard, token = call
        error = {"success": None, "failure": ServerError("down", status=503),
                 "ignored": BadRequestError("bad", status=400),
                 "cancelled": asyncio.CancelledError()}[outcome]
        self.model.finish(token, {"success": "success", "failure": "failure"}.get(
            outcome, "release"), self.now())
        self.run(guard.__aexit__(type(error) if error else None, error, None))

    @rule(seconds=st.sampled_from(STEPS))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def trip(self) -> None:
        self.breaker.trip("test")
        self.model.move("open", self.now())

    @rule()
    def reset(self) -> None:
        self.breaker.reset()
        self.model.move("closed", self.now())

    @invariant()
    def matches_the_model(self) -> None:
        if self.breaker is None:  # before initialize
            return
        stats = self.run(self.breaker.aget_stats())
        model = self.model
        now = self.now()
        assert stats["state"] == model.effective(now)
        assert stats["consecutive_failures"] == model.consecutive
        assert (stats["total_calls"], stats["successful_calls"], stats["failed_calls"],
                stats["rejected_calls"]) == (model.total, model.successes, model.failures,
                                             model.rejected)
        live = sum(1 for d in model.permits.values() if d > now)
        assert stats["half_open_permits_in_use"] == live

    def teardown(self) -> None:
        if self.backend == "redis" and self.breaker is not None:
            from kite_lab.backends.redis_client import redis_client

            async def drop(keys: tuple[str, ...]) -> None:
                await redis_client(self.redis_url).delete(*keys)

            self.run(drop(self.breaker.store.keys))
        self.run(aclose_redis_clients())
        self.loop.close()


def test_memory_breaker_matches_the_model():
    machine = type("MemoryBreakerMachine", (BreakerMachine,), {"backend": "memory"})
    machine.TestCase.settings = settings(
        max_examples=150, stateful_step_count=50, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()


@pytest.mark.services
def test_redis_breaker_matches_the_model(redis_url):
    machine = type("RedisBreakerMachine", (BreakerMachine,),
                   {"backend": "redis", "redis_url": redis_url})
    machine.TestCase.settings = settings(
        max_examples=80, stateful_step_count=50, deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
