"""SIGTERM: in-flight requests finish, new ones get 503, leases are released, exit code 0."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from kite_lab.core.config import load_settings
from kite_lab.safety.idempotency import build_idempotency

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]


async def _leases_left(redis_url: str, prefix: str) -> list[str]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=True)
    try:
        left = []
        async for key in client.scan_iter(match=f"{prefix}*"):
            if (
                await client.type(key) == "hash"
                and await client.hget(key, "state") == "in_progress"
            ):
                left.append(key)
        return left
    finally:
        await client.aclose()


async def test_sigterm_drains_20_slow_requests(
    service_env, start_service, fake_llm, redis_url, redis_prefix
):
    service_env.update(
        REDIS_URL=redis_url, KITE_REDIS_PREFIX=redis_prefix, KITE_SHUTDOWN_GRACE_SECONDS="20"
    )
    service = start_service(service_env)
    fake_llm.latency = 1.5
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        tasks = [
            asyncio.create_task(
                client.post(
                    "/complete",
                    json={"prompt": f"job {i}"},
                    headers={"Idempotency-Key": f"job-{i}"},
                )
            )
            for i in range(20)
        ]
        deadline = time.monotonic() + 15
        while len(fake_llm.requests) < 20 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(fake_llm.requests) == 20, "all 20 requests reached the provider"
        service.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=service.url, timeout=10) as late:
            rejected = await late.post("/complete", json={"prompt": "too late"})
            health = await late.get("/health")
        results = await asyncio.gather(*tasks)
    assert rejected.status_code == 503 and rejected.json()["error"]["type"] == "shutting_down"
    assert rejected.headers["connection"] == "close" and int(rejected.headers["retry-after"]) >= 1
    assert health.status_code == 503
    assert [r.status_code for r in results] == [200] * 20
    assert {r.json()["text"] for r in results} == {f"Echo: job {i}" for i in range(20)}
    assert service.proc.wait(30) == 0
    assert len(fake_llm.requests) == 20  # the late request never reached the provider
    assert await _leases_left(redis_url, redis_prefix) == []
    manager = build_idempotency(
        load_settings({"redis_url": redis_url, "kite_redis_prefix": redis_prefix}, env_file=None)
    )
    stored = [await manager.aget(f"http:anonymous:/complete:job-{i}") for i in range(20)]
    assert all(s is not None and s.value["status"] == 200 for s in stored)
    assert "shutdown_drained" in service.log()


async def test_requests_past_the_grace_period_release_their_lease(
    service_env, start_service, fake_llm, redis_url, redis_prefix
):
    service_env.update(
        REDIS_URL=redis_url, KITE_REDIS_PREFIX=redis_prefix, KITE_SHUTDOWN_GRACE_SECONDS="0.5"
    )
    service = start_service(service_env)
    fake_llm.latency = 60
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as client:
        task = asyncio.create_task(
            client.post(
                "/complete", json={"prompt": "endless"}, headers={"Idempotency-Key": "endless-1"}
            )
        )
        while not fake_llm.requests:
            await asyncio.sleep(0.02)
        assert await _leases_left(redis_url, redis_prefix) != []
        started = time.monotonic()
        service.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(service.proc.wait, 30) == 0
        assert time.monotonic() - started < 10
        with pytest.raises(httpx.HTTPError):
            (await task).raise_for_status()
    assert await _leases_left(redis_url, redis_prefix) == []
    manager = build_idempotency(
        load_settings({"redis_url": redis_url, "kite_redis_prefix": redis_prefix}, env_file=None)
    )
    lease = await manager.abegin("http:anonymous:/complete:endless-1", "x", wait=0)
    assert hasattr(lease, "release")  # free again: a retry runs instead of waiting on a ghost
    await lease.release()
