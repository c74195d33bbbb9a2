"""The error-classification table: what counts against a provider's breaker.

Parametrized over both SDKs' exception classes (raw, as user code might let them escape)
and over the fake server's faults as the real providers report them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anthropic
import httpx2
import openai
import pytest

from kite_lab.core.config import load_settings
from kite_lab.core.errors import (
    AuthenticationError,
    BadRequestError,
    CircuitBreakerError,
    InvalidParameter,
    KillSwitchError,
    MalformedResponse,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeout,
    QuotaExceeded,
    RateLimitError,
    ServerError,
)
from kite_lab.core.events import EventBus
from kite_lab.core.types import Message
from kite_lab.providers.anthropic_provider import AnthropicProvider
from kite_lab.providers.base import LLMRequest
from kite_lab.providers.openai_compat import OpenAIProvider
from kite_lab.safety.breaker import CircuitBreaker
from kite_lab.safety.breaker_types import CircuitBreakerConfig
from kite_lab.safety.classify import TABLE, Outcome, classify, table_markdown
from kite_lab.testing import Fault

DOC = Path(__file__).resolve().parents[2] / "docs" / "safety.md"
FAILURE, IGNORED = Outcome.FAILURE, Outcome.IGNORED

_REQUEST = httpx2.Request("POST", "http://fake.invalid/v1/chat/completions")


def _status(sdk, cls_name: str, status: int, body=None):
    cls = getattr(sdk, cls_name)
    response = httpx2.Response(status, request=_REQUEST, json=body or {})
    return cls(f"HTTP {status}", response=response, body=body)


SDK_CASES = []
for _sdk in (openai, anthropic):
    _n = _sdk.__name__
    SDK_CASES += [
        pytest.param(_sdk.APITimeoutError(request=_REQUEST), FAILURE, id=f"{_n}-timeout"),
        pytest.param(_sdk.APIConnectionError(request=_REQUEST), FAILURE, id=f"{_n}-connection"),
        pytest.param(_status(_sdk, "InternalServerError", 500), FAILURE, id=f"{_n}-500"),
        pytest.param(_status(_sdk, "APIStatusError", 502), FAILURE, id=f"{_n}-502"),
        pytest.param(_status(_sdk, "APIStatusError", 503), FAILURE, id=f"{_n}-503"),
        pytest.param(_status(_sdk, "APIStatusError", 529), FAILURE, id=f"{_n}-529"),
        pytest.param(_status(_sdk, "RateLimitError", 429,
                             {"error": {"type": "rate_limit_error", "message": "slow down"}}),
                     FAILURE, id=f"{_n}-429"),
        pytest.param(_status(_sdk, "RateLimitError", 429,
                             {"error": {"code": "insufficient_quota", "message": "pay up"}}),
                     IGNORED, id=f"{_n}-429-quota"),
        pytest.param(_status(_sdk, "BadRequestError", 400), IGNORED, id=f"{_n}-400"),
        pytest.param(_status(_sdk, "AuthenticationError", 401), IGNORED, id=f"{_n}-401"),
        pytest.param(_status(_sdk, "PermissionDeniedError", 403), IGNORED, id=f"{_n}-403"),
        pytest.param(_status(_sdk, "NotFoundError", 404), IGNORED, id=f"{_n}-404"),
        pytest.param(_status(_sdk, "APIStatusError", 413), IGNORED, id=f"{_n}-413"),
        pytest.param(_status(_sdk, "UnprocessableEntityError", 422), IGNORED, id=f"{_n}-422"),
    ]
SDK_CASES.append(pytest.param(_status(anthropic, "OverloadedError", 529), FAILURE,
                              id="anthropic-OverloadedError"))


@pytest.mark.parametrize("exc, expected", SDK_CASES)
def test_raw_sdk_errors_follow_the_table(exc, expected):
    assert classify(exc).outcome is expected


@pytest.mark.parametrize("exc, expected", [
    (ProviderTimeout("t"), FAILURE),
    (ProviderConnectionError("c"), FAILURE),
    (ServerError("s", status=500), FAILURE),
    (ServerError("overloaded", status=529), FAILURE),
    (RateLimitError("r", status=429), FAILURE),
    (MalformedResponse("m"), FAILURE),
    (QuotaExceeded("q", status=429, code="insufficient_quota"), IGNORED),
    (AuthenticationError("a", status=401), IGNORED),
    (BadRequestError("b", status=413), IGNORED),
    (InvalidParameter("p"), IGNORED),
    (ProviderError("generic 404", status=404), IGNORED),
    (ProviderError("generic 429 quota", status=429, code="insufficient_quota"), IGNORED),
    (ProviderError("generic 500", status=500), FAILURE),
    (KillSwitchError("stop"), IGNORED),
    (CircuitBreakerError("inner", 3.0), IGNORED),
    (TimeoutError(), FAILURE),
    (ConnectionResetError(), FAILURE),
    (OSError("network"), FAILURE),
    (ValueError("anything else"), FAILURE),
    (asyncio.CancelledError(), IGNORED),
    (KeyboardInterrupt(), IGNORED),
    (None, Outcome.SUCCESS),
])
def test_kite_and_builtin_errors_follow_the_table(exc, expected):
    assert classify(exc).outcome is expected


def test_ignore_list_wins_over_record_list_and_both_win_over_the_table():
    assert classify(ServerError("s"), ignore=[ServerError]).outcome is IGNORED
    assert classify(BadRequestError("b"), record=[BadRequestError]).outcome is FAILURE
    both = classify(ServerError("s"), record=[ServerError], ignore=[ProviderError])
    assert both.outcome is IGNORED


def test_auth_errors_are_flagged_for_the_auth_event():
    verdict = classify(AuthenticationError("bad key", provider="anthropic", status=401))
    assert verdict.auth_error and verdict.provider == "anthropic"
    assert not classify(ServerError("s")).auth_error


FAULTS = [
    pytest.param(Fault(status=500), ServerError, True, id="500"),
    pytest.param(Fault(status=503), ServerError, True, id="503"),
    pytest.param(Fault(status=529), ServerError, True, id="529-overloaded"),
    pytest.param(Fault(status=429), RateLimitError, True, id="429-rate-limit"),
    pytest.param(Fault(status=429, error_type="insufficient_quota"), QuotaExceeded, False,
                 id="429-insufficient-quota"),
    pytest.param(Fault(status=402), QuotaExceeded, False, id="402"),
    pytest.param(Fault(status=400), BadRequestError, False, id="400"),
    pytest.param(Fault(status=401), AuthenticationError, False, id="401"),
    pytest.param(Fault(status=403), AuthenticationError, False, id="403"),
    pytest.param(Fault(status=404), BadRequestError, False, id="404"),
    pytest.param(Fault(status=413), BadRequestError, False, id="413"),
    pytest.param(Fault(status=422), BadRequestError, False, id="422"),
    pytest.param(Fault(drop_connection=True), ProviderConnectionError, True, id="dropped"),
    pytest.param(Fault(malformed_body=True), MalformedResponse, True, id="malformed"),
    pytest.param(Fault(latency=3.0), ProviderTimeout, True, id="timeout"),
]


@pytest.mark.parametrize("provider_cls", [OpenAIProvider, AnthropicProvider],
                         ids=["openai", "anthropic"])
@pytest.mark.parametrize("fault, error, counts", FAULTS)
async def test_fake_server_faults_through_real_sdks(fake_llm, provider_cls, fault, error, counts):
    settings = load_settings({
        "openai_api_key": "sk-test", "openai_base_url": fake_llm.openai_base_url,
        "anthropic_api_key": "sk-ant-test", "anthropic_base_url": fake_llm.anthropic_base_url,
        "llm_timeout": 0.5,
    })
    provider = provider_cls(settings)
    bus = EventBus()
    breaker = CircuitBreaker(provider.name, CircuitBreakerConfig(failure_threshold=1),
                             events=bus)
    fake_llm.enqueue(fault)
    request = LLMRequest(provider.default_model, [Message("user", "hello")])
    with pytest.raises(error):
        async with breaker.guard():
            await provider.generate(request)
    await provider.aclose()
    stats = breaker.get_stats()
    assert stats["failed_calls"] == (1 if counts else 0)
    assert stats["state"] == ("open" if counts else "closed")
    assert bool(bus.history("auth:error")) == (error is AuthenticationError)


def test_the_table_in_docs_is_the_table_in_code():
    text = DOC.read_text(encoding="utf-8")
    assert table_markdown() in text, "docs/safety.md: paste classify.table_markdown() again"
    assert len(TABLE) >= 10
