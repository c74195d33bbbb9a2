"""Every status of the HTTP API, in process (httpx.ASGITransport), real SDK -> fake server."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import FAKE_KEY, SERVICE_KEY, free_port

from kite_lab.service.app import create_app
from kite_lab.testing import Fault, Reply

pytestmark = pytest.mark.timeout(60)


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_complete_chat_and_stream(make_kite, asgi_client, fake_llm):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        r = await c.post(
            "/complete",
            json={"prompt": "hello", "max_tokens": 20},
            headers={"X-Request-ID": "req-123"},
        )
        assert r.status_code == 200
        body = r.json()
        assert body["text"] == "Echo: hello"
        assert body["provider"] == "openai" and body["model"] == "gpt-4o-mini"
        assert body["usage"]["total_tokens"] > 0 and body["request_id"] == "req-123"
        assert r.headers["x-request-id"] == "req-123"
        assert fake_llm.requests[-1].json["max_tokens"] == 20

        r = await c.post(
            "/chat",
            json={
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "hi there"},
                ]
            },
        )
        assert r.status_code == 200 and r.json()["text"] == "Echo: hi there"
        assert fake_llm.requests[-1].messages[0] == {"role": "system", "content": "be brief"}

        r = await c.post("/complete", json={"prompt": "stream me", "stream": True})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.text)
        assert [e for e, _ in events[:-1]] == ["chunk"] * (len(events) - 1)
        assert "".join(d["text"] for e, d in events if e == "chunk") == "Echo: stream me"
        assert events[-1][0] == "done" and events[-1][1]["text"] == "Echo: stream me"


async def test_session_history_is_sent_and_stored(make_kite, asgi_client, fake_llm):
    kite = make_kite()
    app = create_app(kite)
    async with asgi_client(app) as c:
        assert (
            await c.post("/complete", json={"prompt": "my name is Ada", "session_id": "s1"})
        ).status_code == 200
        r = await c.post(
            "/chat",
            json={"messages": [{"role": "user", "content": "who am I?"}], "session_id": "s1"},
        )
        assert r.status_code == 200 and r.json()["session_id"] == "s1"
        sent = [m["content"] for m in fake_llm.requests[-1].messages]
        assert sent == ["my name is Ada", "Echo: my name is Ada", "who am I?"]
        history = await kite.session_memory.aget_history("s1")
        assert [m.role for m in history] == ["user", "assistant", "user", "assistant"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"prompt": "x" * 51}, "the limit is 50 (KITE_MAX_PROMPT_CHARS)"),
        ({"prompt": "hi", "temperature": "hot"}, "temperature"),
        ({"prompt": "hi", "max_tokens": "5"}, "max_tokens"),
        ({"prompt": "hi", "surprise": 1}, "surprise"),
        ({"prompt": "   "}, "blank"),
        ({}, "prompt"),
    ],
)
async def test_invalid_requests_get_422(make_kite, asgi_client, fake_llm, body, needle):
    app = create_app(make_kite(kite_max_prompt_chars=50))
    async with asgi_client(app) as c:
        r = await c.post("/complete", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "validation_error" and needle in json.dumps(error)
    assert fake_llm.requests == []


async def test_malformed_json_and_long_chat_get_422(make_kite, asgi_client):
    app = create_app(make_kite(kite_max_prompt_chars=50))
    async with asgi_client(app) as c:
        r = await c.post(
            "/complete", content=b'{"prompt": "hi"', headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and "json" in r.text.lower()
        r = await c.post("/chat", json={"messages": [{"role": "user", "content": "y" * 30}] * 2})
        assert r.status_code == 422 and "the limit is 50" in r.text
        r = await c.post("/chat", json={"messages": [{"role": "robot", "content": "hi"}]})
        assert r.status_code == 422


async def test_unknown_model_is_400_listing_providers(make_kite, asgi_client, fake_llm):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        r = await c.post("/complete", json={"prompt": "hi", "model": "nosuch/model-x"})
        assert r.status_code == 400
        error = r.json()["error"]
        assert error["type"] == "unknown_model" and "openai" in error["details"]["providers"]
        assert "openai" in error["message"] and "anthropic" in error["message"]
        # the provider itself does not know the model: also 400, providers listed
        fake_llm.enqueue(
            Fault(
                status=404,
                error_type="invalid_request_error",
                message="The model `gpt-9` does not exist",
                code="model_not_found",
            )
        )
        r = await c.post("/complete", json={"prompt": "hi", "model": "gpt-9"})
        assert r.status_code == 400 and "gpt-9" in r.text
        assert "openai" in r.json()["error"]["details"]["providers"]


async def test_breaker_open_is_503_with_retry_after(make_kite, asgi_client, fake_llm):
    kite = make_kite(circuit_breaker_threshold=2, circuit_breaker_timeout=30)
    app = create_app(kite)
    async with asgi_client(app) as c:
        fake_llm.enqueue(Fault(status=500), Fault(status=500))
        assert [
            (await c.post("/complete", json={"prompt": "x"})).status_code for _ in range(2)
        ] == [502, 502]
        before = len(fake_llm.requests)
        r = await c.post("/complete", json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "circuit_open"
        assert 1 <= int(r.headers["retry-after"]) <= 30
        assert len(fake_llm.requests) == before  # rejected without calling the provider
        health = (await c.get("/health")).json()
        assert health["circuit_breaker"] == "open" and health["status"] == "degraded"


async def test_kill_switch_is_503(make_kite, asgi_client, fake_llm):
    kite = make_kite()
    app = create_app(kite)
    async with asgi_client(app) as c:
        await kite.kill_switch.aactivate("runaway costs")
        r = await c.post("/complete", json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["type"] == "kill_switch_active"
        assert "runaway costs" in r.json()["error"]["message"]
        health = await c.get("/health")
        assert health.status_code == 503 and health.json()["kill_switch"] is True
        assert health.json()["status"] == "unhealthy"
        await kite.kill_switch.adeactivate()
        assert (await c.post("/complete", json={"prompt": "x"})).status_code == 200
    assert len(fake_llm.requests) == 1


async def test_provider_errors_map_to_gateway_statuses(make_kite, asgi_client, fake_llm):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        fake_llm.enqueue(Fault(status=401, message=f"Incorrect API key provided: {FAKE_KEY}"))
        r = await c.post("/complete", json={"prompt": "x"})
        assert r.status_code == 502 and r.json()["error"]["type"] == "provider_auth_failed"
        assert FAKE_KEY not in r.text and FAKE_KEY[:12] not in r.text

        fake_llm.enqueue(Fault(status=429, error_type="insufficient_quota"))
        r = await c.post("/complete", json={"prompt": "x"})
        assert r.status_code == 402 and "quota" in r.json()["error"]["message"]

        fake_llm.enqueue(Fault(status=429, retry_after=7))
        r = await c.post("/complete", json={"prompt": "x"})
        assert r.status_code == 429 and r.headers["retry-after"] == "7"
        assert r.json()["error"]["type"] == "provider_rate_limited"

        fake_llm.enqueue(Fault(status=500, message="upstream exploded"))
        r = await c.post("/complete", json={"prompt": "x"})
        assert r.status_code == 502 and r.json()["error"]["type"] == "provider_error"


async def test_stream_errors_before_first_token_keep_their_status(make_kite, asgi_client, fake_llm):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        fake_llm.enqueue(Fault(status=429, error_type="insufficient_quota"))
        r = await c.post("/complete", json={"prompt": "x", "stream": True})
        assert r.status_code == 402


async def test_api_keys_required_except_health(make_kite, asgi_client, fake_llm):
    other = "other-key-0123456789abcdef"
    app = create_app(make_kite(kite_api_keys=f"{SERVICE_KEY}, {other}"))
    async with asgi_client(app) as c:
        assert (await c.post("/complete", json={"prompt": "x"})).status_code == 401
        bad = await c.post(
            "/complete",
            json={"prompt": "x"},
            headers={"Authorization": "Bearer nope-nope-nope-nope"},
        )
        assert bad.status_code == 401 and bad.headers["www-authenticate"].startswith("Bearer")
        assert (
            await c.post(
                "/complete", json={"prompt": "x"}, headers={"Authorization": f"Basic {SERVICE_KEY}"}
            )
        ).status_code == 401
        for key in (SERVICE_KEY, other):
            ok = await c.post(
                "/complete", json={"prompt": "x"}, headers={"Authorization": f"Bearer {key}"}
            )
            assert ok.status_code == 200
        assert (await c.get("/health")).status_code == 200
        assert (await c.get("/metrics")).status_code == 200  # public by default
        assert (await c.get("/openapi.json")).status_code == 401
        assert (await c.get("/agents")).status_code == 401


async def test_metrics_can_require_a_key_and_keys_come_from_a_file(
    make_kite, asgi_client, tmp_path
):
    keys = tmp_path / "keys"
    keys.write_text(f"# service keys\n{SERVICE_KEY}\n", encoding="utf-8")
    app = create_app(make_kite(kite_api_keys_file=str(keys), kite_metrics_public=False))
    async with asgi_client(app) as c:
        assert (await c.get("/metrics")).status_code == 401
        r = await c.get("/metrics", headers={"Authorization": f"Bearer {SERVICE_KEY}"})
        assert r.status_code == 200 and "kite_http_requests_total" in r.text


async def test_rate_limit_429_with_headers_per_key_and_route(make_kite, asgi_client):
    other = "other-key-0123456789abcdef"
    app = create_app(
        make_kite(kite_api_keys=f"{SERVICE_KEY},{other}", kite_rate_limit="3/minute, /chat=off")
    )
    auth = {"Authorization": f"Bearer {SERVICE_KEY}"}
    async with asgi_client(app) as c:
        statuses = []
        for _ in range(4):
            r = await c.post("/complete", json={"prompt": "x"}, headers=auth)
            statuses.append(r.status_code)
        assert statuses == [200, 200, 200, 429]
        assert r.json()["error"]["type"] == "rate_limited"
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["x-ratelimit-limit"] == "3" and r.headers["x-ratelimit-remaining"] == "0"
        assert int(r.headers["x-ratelimit-reset"]) > 0
        # another key has its own budget; /chat is not limited; GETs never are
        other_r = await c.post(
            "/complete", json={"prompt": "x"}, headers={"Authorization": f"Bearer {other}"}
        )
        assert other_r.status_code == 200 and other_r.headers["x-ratelimit-remaining"] == "2"
        chat = [
            await c.post(
                "/chat", json={"messages": [{"role": "user", "content": "x"}]}, headers=auth
            )
            for _ in range(4)
        ]
        assert {x.status_code for x in chat} == {200}
        assert (await c.get("/health")).status_code == 200
        metrics = (await c.get("/metrics")).text
        assert 'kite_rate_limit_rejections_total{route="/complete"}' in metrics


async def test_forwarded_for_trusted_only_from_trusted_proxies(make_kite, asgi_client):
    async def statuses(app, forwarded: list[str]) -> list[int]:
        async with asgi_client(app) as c:
            return [
                (
                    await c.post(
                        "/complete", json={"prompt": "x"}, headers={"X-Forwarded-For": xff}
                    )
                ).status_code
                for xff in forwarded
            ]

    spoofed = ["1.1.1.1", "2.2.2.2", "3.3.3.3"]
    # peer 127.0.0.1 not trusted: X-Forwarded-For ignored, one bucket for all three
    untrusted = create_app(make_kite(kite_rate_limit="2/minute"))
    assert await statuses(untrusted, spoofed) == [200, 200, 429]
    # trusted proxy: each client address has its own bucket
    trusted = create_app(make_kite(kite_rate_limit="1/minute", kite_trusted_proxies="127.0.0.0/8"))
    assert await statuses(trusted, spoofed) == [200, 200, 200]
    # a client prepending fake hops cannot escape its bucket: the right-most untrusted hop counts
    chained = create_app(make_kite(kite_rate_limit="1/minute", kite_trusted_proxies="127.0.0.1"))
    assert await statuses(chained, ["9.9.9.1, 5.5.5.5", "9.9.9.2, 5.5.5.5"]) == [200, 429]


async def test_idempotency_replay_conflict_and_in_flight(make_kite, asgi_client, fake_llm):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        key = {"Idempotency-Key": "order-42"}
        first = await c.post("/complete", json={"prompt": "pay", "temperature": 0.5}, headers=key)
        again = await c.post("/complete", json={"temperature": 0.5, "prompt": "pay"}, headers=key)
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
        assert len(fake_llm.requests) == 1

        other = await c.post("/complete", json={"prompt": "refund"}, headers=key)
        assert (
            other.status_code == 422 and other.json()["error"]["type"] == "idempotency_key_reused"
        )

        fake_llm.latency = 0.5
        slow_key = {"Idempotency-Key": "slow-1"}
        slow = asyncio.create_task(c.post("/complete", json={"prompt": "slow"}, headers=slow_key))
        while len(fake_llm.requests) < 2:
            await asyncio.sleep(0.01)
        dup = await c.post("/complete", json={"prompt": "slow"}, headers=slow_key)
        assert dup.status_code == 409 and dup.headers["retry-after"] == "1"
        assert (await slow).status_code == 200
        assert (await c.post("/complete", json={"prompt": "slow"}, headers=slow_key)).json()[
            "text"
        ] == "Echo: slow"
        assert len(fake_llm.requests) == 2


async def test_idempotency_failure_is_not_replayed(make_kite, asgi_client, fake_llm):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        key = {"Idempotency-Key": "retry-me"}
        fake_llm.enqueue(Fault(status=500))
        assert (await c.post("/complete", json={"prompt": "x"}, headers=key)).status_code == 502
        r = await c.post("/complete", json={"prompt": "x"}, headers=key)
        assert r.status_code == 200 and "idempotent-replayed" not in r.headers
        stream = await c.post(
            "/complete", json={"prompt": "s", "stream": True}, headers={"Idempotency-Key": "sse"}
        )
        replay = await c.post(
            "/complete", json={"prompt": "s", "stream": True}, headers={"Idempotency-Key": "sse"}
        )
        assert replay.text == stream.text and replay.headers["content-type"].startswith(
            "text/event-stream"
        )
        long_key = await c.post(
            "/complete", json={"prompt": "x"}, headers={"Idempotency-Key": "k" * 300}
        )
        assert long_key.status_code == 422


async def test_agents_routes(make_kite, asgi_client, fake_llm):
    kite = make_kite()
    kite.create_agent("helper", "You are concise.")
    app = create_app(kite)
    async with asgi_client(app) as c:
        listing = await c.get("/agents")
        assert listing.status_code == 200 and listing.json()[0]["name"] == "helper"
        r = await c.post("/agents/helper/run", json={"input": "hello agent"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["success"] is True and body["response"] == "Echo: hello agent"
        assert body["agent"] == "helper" and body["total_tokens"] > 0
        missing = await c.post("/agents/nobody/run", json={"input": "x"})
        assert missing.status_code == 404 and "helper" in missing.json()["error"]["message"]
        await kite.kill_switch.aactivate("stop")
        stopped = await c.post("/agents/helper/run", json={"input": "x"})
        assert stopped.status_code == 503 and stopped.json()["result"]["success"] is False
        metrics = (await c.get("/metrics")).text
        assert 'kite_agent_calls_total{agent="helper",outcome="success"}' in metrics
        assert 'kite_agent_success_rate{agent="helper"}' in metrics


async def test_health_degraded_when_redis_is_down(make_kite, asgi_client):
    kite = make_kite(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(kite)
    async with asgi_client(app) as c:
        r = await c.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "degraded" and body["redis"] == "down" and body["postgres"] == "unused"
    assert set(body) >= {
        "status",
        "circuit_breaker",
        "llm_provider",
        "model",
        "redis",
        "postgres",
        "kill_switch",
        "version",
    }


async def test_health_unhealthy_without_provider(asgi_client, tmp_path):
    from kite_lab import Kite

    app = create_app(
        Kite(config={"llm_provider": "openai", "kite_home": str(tmp_path)}, env_file=None)
    )
    async with asgi_client(app) as c:
        health = await c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "unhealthy"
        r = await c.post("/complete", json={"prompt": "x"})
        assert r.status_code == 503 and "OPENAI_API_KEY" in r.json()["error"]["message"]


async def test_body_too_large_is_413(make_kite, asgi_client):
    app = create_app(make_kite())
    async with asgi_client(app) as c:
        r = await c.post(
            "/complete", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
        )
    assert r.status_code == 413


async def test_openapi_lists_the_routes(make_kite, asgi_client):
    app = create_app(make_kite(kite_max_prompt_chars=1234))
    async with asgi_client(app) as c:
        schema = (await c.get("/openapi.json")).json()
        assert (await c.get("/docs")).status_code == 200
    assert {"/complete", "/chat", "/agents/{name}/run", "/health", "/agents"} <= set(
        schema["paths"]
    )
    prompt = schema["components"]["schemas"]["CompletionRequest"]["properties"]["prompt"]
    assert prompt["maxLength"] == 1234


async def test_unexpected_error_is_json_500_with_request_id(make_kite, asgi_client, fake_llm):
    fake_llm.enqueue(Reply(text="ok"))
    kite = make_kite()
    app = create_app(kite)

    async def broken(*args, **kwargs):
        raise RuntimeError("boom")

    kite.agenerate = broken  # a bug inside the facade
    async with asgi_client(app) as c:
        r = await c.post("/complete", json={"prompt": "x"})
    assert r.status_code == 500 and r.json()["error"]["request_id"] == r.headers["x-request-id"]
    assert "boom" not in r.text
