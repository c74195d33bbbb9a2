"""The gateway behind the service's protections, for real: per-key rate limits and
per-key budgets in Redis, Idempotency-Key, metrics, JSON logs, graceful shutdown, and the
OpenAI error envelope on each of them. Real ``kite-lab serve``, real openai SDK.
"""

from __future__ import annotations

import signal
import threading

import httpx
import openai
import pytest
from conftest import SERVICE_KEY
from gateway_support import OTHER_KEY, gateway_env, log_events, openai_client, running_service

from kite_lab.service.auth import key_id
from kite_lab.testing import FakeLLMServer, Reply

pytestmark = pytest.mark.timeout(120)

MESSAGES = [{"role": "user", "content": "hi"}]
#: 1000 + 1000 tokens of gpt-4o-mini: $0.00075 a call
PRICEY = Reply(text="ok", prompt_tokens=1000, completion_tokens=1000)


@pytest.fixture
def fake():
    with FakeLLMServer() as server:
        yield server


def test_rate_limits_budgets_idempotency_metrics_and_logs(fake, redis_url, redis_prefix, tmp_path):
    env = gateway_env(
        fake.openai_base_url,
        fake.anthropic_base_url,
        tmp_path,
        REDIS_URL=redis_url,
        KITE_REDIS_PREFIX=redis_prefix,
        KITE_RATE_LIMIT="off, /v1/chat/completions=3/minute",
        KITE_KEY_BUDGETS=f"*=0.001/day, {key_id(OTHER_KEY)}=1/day",
    )
    with running_service(env, tmp_path) as service, openai_client(service) as client:
        # budget: the first two pricey calls fit in $0.001, the third is refused
        fake.enqueue(PRICEY, PRICEY)
        for _ in range(2):
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as spent:
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
        error = spent.value
        assert error.code == "insufficient_quota" and error.type == "insufficient_quota"
        assert error.response.headers["x-should-retry"] == "false"
        assert int(error.response.headers["retry-after"]) >= 1
        assert len(fake.requests) == 2  # the refused call never reached the provider
        budget_keys = _redis_keys(redis_url, f"{redis_prefix}budget:*")
        assert budget_keys and key_id(SERVICE_KEY) in budget_keys[0]

        # rate limit, per key and shared through Redis: the same key was counted 3 times
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
        assert limited.value.code == "rate_limited"
        assert int(limited.value.response.headers["retry-after"]) >= 1

        with openai_client(service, key=OTHER_KEY) as other:  # its own bucket and budget
            headers = {"Idempotency-Key": "order-42"}
            first = other.chat.completions.with_raw_response.create(
                model="openai/gpt-4o-mini", messages=MESSAGES, extra_headers=headers
            )
            again = other.chat.completions.with_raw_response.create(
                model="openai/gpt-4o-mini", messages=MESSAGES, extra_headers=headers
            )
            assert again.headers["idempotent-replayed"] == "true"
            assert again.parse().id == first.parse().id
            assert len(fake.requests) == 3  # the replay cost nothing
            with pytest.raises(openai.UnprocessableEntityError) as reused:
                other.chat.completions.create(
                    model="openai/gpt-4o-mini",
                    messages=[{"role": "user", "content": "something else"}],
                    extra_headers=headers,
                )
            assert reused.value.code == "idempotency_key_reused"

        metrics = httpx.get(f"{service.url}/metrics", timeout=10).text
        assert 'route="/v1/chat/completions"' in metrics
        lines = [
            e
            for e in log_events(service, "http_request")
            if e.get("route") == "/v1/chat/completions"
        ]
        assert {e["status"] for e in lines} >= {200, 429}
        assert SERVICE_KEY not in service.log() and OTHER_KEY not in service.log()


def _redis_keys(url: str, pattern: str) -> list[str]:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return sorted(client.scan_iter(pattern))
    finally:
        client.close()


def test_a_stream_in_flight_finishes_on_sigterm(fake, tmp_path):
    env = gateway_env(
        fake.openai_base_url, fake.anthropic_base_url, tmp_path, KITE_SHUTDOWN_GRACE_SECONDS="10"
    )
    fake.enqueue(Reply(text="a slow but complete answer", latency=1.0, chunk_size=3))
    with running_service(env, tmp_path) as service, openai_client(service) as client:
        stream = client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=MESSAGES, stream=True
        )
        timer = threading.Timer(0.3, service.proc.send_signal, args=(signal.SIGTERM,))
        timer.start()
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        timer.join()
        assert text == "a slow but complete answer"
        assert service.proc.wait(15) == 0


# -- budgets, in process ------------------------------------------------------------------


def test_budget_settings_and_periods():
    from datetime import UTC, datetime

    from kite_lab.core.errors import ConfigError
    from kite_lab.service.openai_budgets import Budget, parse_budgets

    assert parse_budgets("*=5/day, abc123def456=$100/month") == {
        "*": Budget(5.0, "day"),
        "abc123def456": Budget(100.0, "month"),
    }
    for bad in ("*=5", "*=five/day", "*=5/fortnight", "=5/day", "*=-1/day"):
        with pytest.raises(ConfigError, match="KITE_KEY_BUDGETS"):
            parse_budgets(bad)
    now = datetime(2026, 2, 18, 13, 30, tzinfo=UTC).timestamp()  # a Wednesday
    day = datetime(2026, 2, 18, tzinfo=UTC).timestamp()
    assert Budget(1, "day").window(now) == (day, day + 86_400)
    assert Budget(1, "hour").window(now)[0] == day + 13 * 3600
    assert Budget(1, "week").window(now)[0] == datetime(2026, 2, 16, tzinfo=UTC).timestamp()
    start, end = Budget(1, "month").window(now)
    assert (start, end) == (
        datetime(2026, 2, 1, tzinfo=UTC).timestamp(),
        datetime(2026, 3, 1, tzinfo=UTC).timestamp(),
    )
    assert Budget(1, "total").window(now) == (0.0, None)


async def test_budgets_charge_per_key_and_renew_with_the_period():
    from kite_lab.core.config import load_settings
    from kite_lab.service.openai_budgets import KeyBudgets
    from kite_lab.service.openai_errors import GatewayError

    settings = load_settings({"kite_key_budgets": "*=1/day, vip000000000=10/day"}, env_file=None)
    budgets = KeyBudgets(settings)
    now = 1_800_000_000.0
    await budgets.charge("alice0000000", 0.6, now)
    await budgets.check("alice0000000", now)  # 0.6 < 1
    await budgets.charge("alice0000000", 0.6, now)
    with pytest.raises(GatewayError) as spent:
        await budgets.check("alice0000000", now)
    assert spent.value.status == 429 and spent.value.code == "insufficient_quota"
    assert 1 <= int(spent.value.headers["Retry-After"]) <= 86_400
    await budgets.check("bob000000000", now)  # each key its own "*" budget
    await budgets.charge("vip000000000", 5.0, now)
    await budgets.check("vip000000000", now)
    await budgets.check("alice0000000", now + 86_400)  # the next day: renewed
    await budgets.charge("alice0000000", None, now)  # a model without a price: nothing
