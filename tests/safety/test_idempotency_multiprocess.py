"""Idempotency on Redis across processes: duplicates, a SIGKILLed owner, racing reclaimers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from kite_lab.backends.clock import FakeClock
from kite_lab.safety.idempotency import IdempotencyManager, Lease
from kite_lab.safety.idempotency_redis import RedisIdempotencyStore

WORKERS = Path(__file__).resolve().parent / "safety_workers.py"


@pytest.mark.slow
def test_200_concurrent_duplicates_across_4_processes_run_func_once(
    redis_url, workers, shared_prefix
):
    prefix = shared_prefix
    results = workers("idem_dupes", {
        "url": redis_url, "prefix": prefix, "operation_id": "order_77", "tasks": 50,
        "work_seconds": 0.3,
    }, processes=4)
    everything = [r for batch in results for r in batch["results"]]
    assert len(everything) == 200
    assert all(r == everything[0] for r in everything)  # every caller got the same result
    assert everything[0]["order"] == "o-1" and everything[0]["run"] == 1
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    assert client.get(f"{prefix}runs") == "1"  # func ran exactly once


@pytest.mark.slow
def test_sigkilled_owner_is_reclaimed_only_after_its_lease_by_exactly_one(
    redis_url, workers, shared_prefix, tmp_path
):
    prefix = shared_prefix
    lease_ttl, operation = 30.0, "order_sigkill"
    params = {"url": redis_url, "prefix": prefix, "operation_id": operation,
              "lease_ttl": lease_ttl}
    owner = subprocess.Popen(
        [sys.executable, str(WORKERS), "idem_owner", json.dumps({**params, "processes": 1})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
    )
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        deadline = time.monotonic() + 60
        while client.get(f"{prefix}owner-started") is None:
            assert owner.poll() is None, owner.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the owner never started"
            time.sleep(0.01)
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=10)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        owner.stdout.close()
        owner.stderr.close()

    # Within the lease: 100 racing callers in 4 processes, nobody may take it.
    early = workers("idem_reclaim", {**params, "round": "early", "tasks": 25, "advance": 0.0})
    assert sum(r.get("in_progress", 0) for r in early) == 100
    # After the lease (the clock offset moves Redis time past it): exactly one winner.
    late = workers("idem_reclaim", {**params, "round": "late", "tasks": 25,
                                    "advance": lease_ttl + 1})
    assert sum(r.get("reclaimed", 0) for r in late) == 1
    assert sum(r.get("in_progress", 0) for r in late) == 99
    assert sum(r.get("other", 0) for r in late) == 0


async def test_stale_owner_late_write_is_rejected_on_redis(redis_url, redis_prefix):
    clock = FakeClock()
    manager = IdempotencyManager(RedisIdempotencyStore(redis_url, redis_prefix, clock),
                                 lease_ttl=5, clock=clock)
    stale = await manager.abegin("op", "fp")
    clock.advance(6)
    fresh = await manager.abegin("op", "fp")
    assert isinstance(stale, Lease) and isinstance(fresh, Lease) and fresh.reclaimed
    assert await fresh.complete({"by": "fresh"})
    assert not await stale.complete({"by": "stale"})
    assert (await manager.aget("op")).value == {"by": "fresh"}
