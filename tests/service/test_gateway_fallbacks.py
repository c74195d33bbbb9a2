"""Fallbacks (KITE_FALLBACKS, ``ai.generate(fallbacks=...)``): the next model answers when
the primary's upstream dies mid-run or its breaker is open; a fallback that cannot take the
request (images, context window, parameters) is skipped with a logged reason; the answer
says which model answered. Real ``kite-lab serve``, real openai SDK, fake upstreams.
"""

from __future__ import annotations

import base64
import logging
import time

import openai
import pytest
from conftest import FAKE_KEY
from gateway_support import ANTHROPIC_KEY, gateway_env, log_events, openai_client, running_service

from kite_lab import Kite
from kite_lab.core.errors import BadRequestError, ConfigError, ServerError
from kite_lab.providers.registry import local_model_installed
from kite_lab.safety.fallbacks import Needs, chain_for, parse_fallbacks, unfit_reason
from kite_lab.testing import FakeLLMServer, Fault

pytestmark = pytest.mark.timeout(120)

HAIKU = "anthropic/claude-3-5-haiku-latest"
LOCAL = "local/smollm2-135m-instruct"
CHAINS = f"openai/gpt-4o-mini={HAIKU},{LOCAL}; openai/gpt-4o={LOCAL},{HAIKU}"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()


def test_the_gateway_fails_over_when_the_primary_upstream_dies_mid_run(tmp_path):
    if not local_model_installed():
        pytest.skip("the local model is not installed (pip install 'kite-lab[local]')")
    primary, secondary = FakeLLMServer().start(), FakeLLMServer().start()
    env = gateway_env(
        primary.openai_base_url,
        secondary.anthropic_base_url,
        tmp_path,
        KITE_FALLBACKS=CHAINS,
        CIRCUIT_BREAKER_THRESHOLD="2",
        CIRCUIT_BREAKER_TIMEOUT="60",
        LLM_TIMEOUT="5",
        KITE_MAX_PROMPT_CHARS="100000",
    )
    try:
        with running_service(env, tmp_path) as service, openai_client(service) as client:
            messages = [{"role": "user", "content": "hello"}]
            models, failover_s, killed_at = [], None, None
            for i in range(12):
                if i == 4:  # the primary's upstream dies in the middle of the run
                    primary.stop()
                    killed_at = time.perf_counter()
                raw = client.chat.completions.with_raw_response.create(
                    model="openai/gpt-4o-mini", messages=messages
                )
                answer = raw.parse()  # every request answered: no error reaches the client
                assert raw.headers["x-kite-model"] == answer.model
                assert answer.choices[0].message.content == "Echo: hello"
                models.append(answer.model)
                if killed_at is not None and failover_s is None:
                    failover_s = time.perf_counter() - killed_at
            assert models[:4] == ["openai/gpt-4o-mini"] * 4
            assert models[4:] == [HAIKU] * 8
            assert failover_s is not None and failover_s < 5
            used = log_events(service, "fallback_used")
            assert used and used[0]["target"] == HAIKU
            assert used[0]["error"] == "ProviderConnectionError"
            assert used[-1]["error"] == "CircuitBreakerError"  # the breaker opened

            # streamed: the fallback answers before the first byte, and says so
            stream = client.chat.completions.with_raw_response.create(
                model="openai/gpt-4o-mini", messages=messages, stream=True
            )
            assert stream.headers["x-kite-model"] == HAIKU
            text = "".join(c.choices[0].delta.content or "" for c in stream.parse() if c.choices)
            assert text == "Echo: hello"

            # no chain for this model: the open breaker is a 503 with Retry-After
            with pytest.raises(openai.InternalServerError) as refused:
                client.chat.completions.create(model="openai/gpt-4.1", messages=messages)
            assert refused.value.status_code == 503 and refused.value.code == "circuit_open"
            assert int(refused.value.response.headers["retry-after"]) >= 1

            # images: the local fallback cannot take them, so it is skipped (logged)
            image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
            answer = client.chat.completions.create(
                model="openai/gpt-4o",
                messages=[{"role": "user", "content": [{"type": "text", "text": "see"}, image]}],
            )
            assert answer.model == HAIKU
            skipped = log_events(service, "fallback_skipped")
            assert skipped[-1]["target"] == LOCAL and "images" in skipped[-1]["reason"]

            # a prompt larger than the local model's context window: skipped too
            long = "word " * 3000
            answer = client.chat.completions.create(
                model="openai/gpt-4o", messages=[{"role": "user", "content": long}]
            )
            assert answer.model == HAIKU
            assert "context window" in log_events(service, "fallback_skipped")[-1]["reason"]

            # the local model answers when both remote upstreams are gone
            secondary.stop()
            answer = client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=messages, max_tokens=5
            )
            assert answer.model == LOCAL and answer.choices[0].message.content.strip()
            print(f"\nfailover time after the upstream died: {failover_s * 1000:.1f} ms")
    finally:
        primary.stop()
        secondary.stop()


# -- the Python API: ai.generate(..., fallbacks=[...]) ----------------------------------------


@pytest.fixture
def two_upstreams():
    with FakeLLMServer() as primary, FakeLLMServer() as secondary:
        yield primary, secondary


def make(primary, secondary, **extra) -> Kite:
    config = {
        "llm_provider": "openai",
        "openai_api_key": FAKE_KEY,
        "openai_base_url": primary.openai_base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
        "anthropic_base_url": secondary.anthropic_base_url,
        "cache_backend": "none",
        **extra,
    }
    return Kite(config=config, env_file=None)


async def test_generate_falls_back_on_retryable_errors_only(two_upstreams):
    primary, secondary = two_upstreams
    ai = make(primary, secondary)
    seen = []
    ai.event_bus.subscribe("fallback:*", lambda event: seen.append(event))

    primary.enqueue(Fault(status=500))
    answer = await ai.agenerate("hi", model="openai/gpt-4o-mini", fallbacks=[HAIKU])
    assert (answer.provider, answer.model, answer.text) == (
        "anthropic",
        "claude-3-5-haiku-latest",
        "Echo: hi",
    )
    assert seen[-1].name == "fallback:used" and seen[-1].data["error"] == "ServerError"

    primary.enqueue(Fault(status=400))  # the request is wrong: another model would hide it
    with pytest.raises(BadRequestError):
        await ai.agenerate("hi", model="openai/gpt-4o-mini", fallbacks=[HAIKU])

    primary.enqueue(Fault(status=503))
    secondary.enqueue(Fault(status=529))
    with pytest.raises(ServerError) as last:  # every target failed: the last error
        await ai.agenerate("hi", model="openai/gpt-4o-mini", fallbacks=[HAIKU])
    assert last.value.provider == "anthropic"
    await ai.aclose()


def test_kite_fallbacks_is_the_default_and_an_empty_list_turns_it_off(two_upstreams, caplog):
    primary, secondary = two_upstreams
    ai = make(
        primary, secondary, kite_fallbacks=f"gpt-4o-mini={HAIKU}", circuit_breaker_threshold=99
    )
    primary.enqueue(Fault(drop_connection=True))
    assert ai.generate("hi").model == "claude-3-5-haiku-latest"  # bare key: LLM_PROVIDER's
    primary.enqueue(Fault(status=502))
    with pytest.raises(ServerError):
        ai.generate("hi", fallbacks=())

    # skipped fallbacks are logged with the reason; the primary's error is raised
    primary.enqueue(Fault(status=502))
    with caplog.at_level(logging.WARNING, logger="kite_lab.fallbacks"):
        with pytest.raises(ServerError):
            ai.generate("hi", fallbacks=["groq/llama-3.1-8b-instant"])  # no GROQ_API_KEY
    assert "fallback_skipped" in caplog.text
    skipped = [r for r in caplog.records if getattr(r, "event", "") == "fallback_skipped"]
    assert "not configured" in skipped[0].reason

    primary.enqueue(Fault(status=502))
    with pytest.raises(ServerError):  # anthropic takes no presence_penalty: skipped, logged
        ai.generate("hi", fallbacks=[HAIKU], presence_penalty=0.5)
    ai.close()


def test_chains_and_needs(two_upstreams):
    primary, secondary = two_upstreams
    ai = make(primary, secondary, kite_fallbacks=f"*={HAIKU}; openai/gpt-4o=openai/gpt-4o-mini")
    assert chain_for(ai, "openai/gpt-4o") == ("openai/gpt-4o-mini",)
    assert chain_for(ai, "anything-else") == (HAIKU,)
    assert parse_fallbacks("") == {}
    with pytest.raises(ConfigError, match="KITE_FALLBACKS"):
        parse_fallbacks("openai/gpt-4o-mini")
    needs = Needs.of_call(None, {"messages": [{"role": "user", "content": "x" * 40_000}]})
    assert needs.prompt_tokens == 10_000
    assert "context window" in (unfit_reason(ai, "openai/gpt-4", needs) or "")
    assert unfit_reason(ai, "openai/gpt-4o", needs) is None
    wanted = "images" if local_model_installed() else "not configured"
    assert wanted in (unfit_reason(ai, LOCAL, Needs(images=True)) or "")
    ai.close()
