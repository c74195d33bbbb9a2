"""The Redis breaker shared by 4 processes: half-open exclusivity and trip accuracy.

Worker processes (safety_workers.py) line up on a Redis barrier each trial; time moves
through a clock offset added to Redis TIME, never by sleeping.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from kite_lab.backends.redis_client import redis_client
from kite_lab.safety.breaker import CircuitBreaker
from kite_lab.safety.breaker_redis import RedisBreakerStore
from kite_lab.safety.breaker_types import CircuitBreakerConfig
from kite_lab.testing import Fault

PROCESSES, TASKS = 4, 50


def _hold_probes_until_all_decided(fake_llm, redis_url: str, prefix: str, everyone: int) -> None:
    """Probes reaching the provider wait until all racing callers were admitted or
    rejected, then fail (which re-opens the breaker for the next trial)."""

    async def handler(request):
        trial = re.search(r"trial (\d+)", request.last_user_text).group(1)
        client = redis_client(redis_url)
        for _ in range(20_000):
            if int(await client.get(f"{prefix}decided:{trial}") or 0) >= everyone:
                break
            await asyncio.sleep(0.0005)
        return Fault(status=500, message="still down")

    fake_llm.set_handler(handler)


@pytest.mark.slow
@pytest.mark.parametrize("max_calls, trials", [(1, 200), (3, 40)])
def test_half_open_admits_exactly_max_calls_across_processes(
    fake_llm, redis_url, workers, shared_prefix, max_calls, trials
):
    prefix = shared_prefix
    _hold_probes_until_all_decided(fake_llm, redis_url, prefix, PROCESSES * TASKS)
    name, timeout = "provider", 60.0
    opener = CircuitBreaker(name, CircuitBreakerConfig(timeout_seconds=timeout),
                            store=RedisBreakerStore(redis_url, prefix, name))
    opener.trip("start of the test")

    results = workers("halfopen", {
        "url": redis_url, "prefix": prefix, "name": name, "timeout": timeout,
        "half_open_max_calls": max_calls, "success_threshold": 1000, "trials": trials,
        "tasks": TASKS, "base_url": fake_llm.openai_base_url,
    }, processes=PROCESSES, timeout=240)

    per_trial = [sum(r["admitted"][t] for r in results) for t in range(trials)]
    assert per_trial == [max_calls] * trials
    reached: dict[str, int] = {}
    for request in fake_llm.requests:
        reached[request.last_user_text] = reached.get(request.last_user_text, 0) + 1
    assert reached == {f"trial {t}": max_calls for t in range(trials)}
    stats = opener.get_stats()
    assert stats["rejected_calls"] == trials * (PROCESSES * TASKS - max_calls)
    assert stats["failed_calls"] == trials * max_calls


@pytest.mark.slow
def test_trips_after_exactly_failure_threshold_failures_across_processes(
    redis_url, workers, shared_prefix
):
    prefix = shared_prefix
    threshold, tasks = 37, 25
    results = workers("trip", {
        "url": redis_url, "prefix": prefix, "name": "provider",
        "failure_threshold": threshold, "tasks": tasks,
    }, processes=PROCESSES)

    transitions = [t for r in results for t in r["transitions"]]
    assert len(transitions) == 1, transitions  # exactly one process tripped it, once
    assert transitions[0]["old"] == "closed" and transitions[0]["new"] == "open"
    assert transitions[0]["reason"] == f"{threshold} consecutive failures"
    failed = sum(r["failed"] for r in results)
    rejected = sum(r["rejected"] for r in results)
    assert failed + rejected == PROCESSES * tasks
    assert failed >= threshold  # calls already admitted when it tripped still ran

    shared = CircuitBreaker("provider", CircuitBreakerConfig(failure_threshold=threshold),
                            store=RedisBreakerStore(redis_url, prefix, "provider"))
    stats = shared.get_stats()
    assert stats["state"] == "open"
    assert stats["failed_calls"] == failed and stats["rejected_calls"] == rejected
    assert stats["consecutive_failures"] == failed
