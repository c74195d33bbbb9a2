"""Two service processes sharing real Redis and Postgres behave as one service.

One breaker state, one rate-limit budget ("10/minute": exactly 10 of 200 accepted across
both), one idempotency record, one session history.
"""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest
from conftest import SERVICE_KEY

from kite_lab.testing import Fault

pytestmark = [pytest.mark.services, pytest.mark.timeout(120)]


@pytest.fixture
def replicas(service_env, start_service, redis_url, redis_prefix, postgres_url):
    service_env.update(
        REDIS_URL=redis_url,
        KITE_REDIS_PREFIX=redis_prefix,
        POSTGRES_URL=postgres_url,
        KITE_API_KEYS=SERVICE_KEY,
        KITE_RATE_LIMIT="10/minute, /chat=off, /agents/{name}/run=off",
        CIRCUIT_BREAKER_THRESHOLD="3",
        CIRCUIT_BREAKER_TIMEOUT="60",
    )
    first = start_service(service_env, name="a", wait=False)
    second = start_service(service_env, name="b", wait=False)
    return first.wait_ready(), second.wait_ready()


def chat(text: str, **extra):
    return {"messages": [{"role": "user", "content": text}], **extra}


async def test_two_replicas_share_state(replicas, fake_llm):
    a, b = replicas
    auth = {"Authorization": f"Bearer {SERVICE_KEY}"}
    async with (
        httpx.AsyncClient(base_url=a.url, headers=auth, timeout=20) as ca,
        httpx.AsyncClient(base_url=b.url, headers=auth, timeout=20) as cb,
    ):
        # -- one session history: a turn stored by A is sent by B ------------------------
        assert (
            await ca.post("/chat", json=chat("my name is Ada", session_id="shared"))
        ).status_code == 200
        r = await cb.post("/chat", json=chat("who am I?", session_id="shared"))
        assert r.status_code == 200
        assert [m["content"] for m in fake_llm.requests[-1].messages] == [
            "my name is Ada",
            "Echo: my name is Ada",
            "who am I?",
        ]

        # -- one idempotency record: in flight on A -> 409 on B; then B replays A's answer --
        fake_llm.latency = 1.0
        key = {"Idempotency-Key": "pay-1"}
        calls = len(fake_llm.requests)
        first = asyncio.create_task(ca.post("/chat", json=chat("pay"), headers=key))
        while len(fake_llm.requests) == calls:
            await asyncio.sleep(0.01)
        assert (await cb.post("/chat", json=chat("pay"), headers=key)).status_code == 409
        assert (await first).status_code == 200
        fake_llm.latency = 0
        replay = await cb.post("/chat", json=chat("pay"), headers=key)
        assert replay.status_code == 200 and replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == (await first).json()
        assert len(fake_llm.requests) == calls + 1
        assert (await cb.post("/chat", json=chat("refund"), headers=key)).status_code == 422

        # -- one rate limit: exactly 10 of 200 accepted across both ------------------------
        clients = itertools.cycle([ca, cb])
        sem = asyncio.Semaphore(20)

        async def one(client):
            async with sem:
                return (await client.post("/complete", json={"prompt": "hit"})).status_code

        statuses = await asyncio.gather(*(one(next(clients)) for _ in range(200)))
        assert statuses.count(200) == 10 and statuses.count(429) == 190

        # -- one breaker: 3 failures through A open it for B too ----------------------------
        fake_llm.enqueue(*[Fault(status=500)] * 3)
        assert [(await ca.post("/chat", json=chat("x"))).status_code for _ in range(3)] == [502] * 3
        calls = len(fake_llm.requests)
        r = await cb.post("/chat", json=chat("x"))
        assert r.status_code == 503 and r.json()["error"]["type"] == "circuit_open"
        assert "retry-after" in r.headers
        assert len(fake_llm.requests) == calls  # B did not call the provider
        health = (await cb.get("/health")).json()
        assert health["circuit_breaker"] == "open"
        assert health["redis"] == "ok" and health["postgres"] == "ok"
    assert a.stop() == 0 and b.stop() == 0
