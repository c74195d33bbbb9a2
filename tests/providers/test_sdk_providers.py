"""OpenAI, Anthropic, Groq and Ollama providers: the real SDKs against the fake server,
through the Kite facade and its pipeline."""

from __future__ import annotations

import asyncio

import pytest

from kite_lab import (
    AuthenticationError,
    BadRequestError,
    InvalidParameter,
    Kite,
    MalformedResponse,
    MissingAPIKey,
    NoProviderConfigured,
    ProviderConnectionError,
    ProviderTimeout,
    QuotaExceeded,
    RateLimitError,
    ServerError,
    UnknownProvider,
)
from kite_lab.testing import Fault, Reply, ToolCallSpec

OPENAI_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789abcdef"
GROQ_KEY = "gsk_test_0123456789abcdef"

ADD_TOOL = {
    "name": "add",
    "description": "Add two integers",
    "parameters": {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
}


def make_kite(provider: str, server, **extra) -> Kite:
    config = {
        "llm_provider": provider,
        "cache_backend": "none",
        "openai_api_key": OPENAI_KEY,
        "openai_base_url": server.openai_base_url,
        "anthropic_api_key": ANTHROPIC_KEY,
        "anthropic_base_url": server.anthropic_base_url,
        "groq_api_key": GROQ_KEY,
        "groq_base_url": server.openai_base_url,
        "ollama_base_url": server.openai_base_url,
        "llm_timeout": 5,
        **extra,
    }
    return Kite(config=config, env_file=None)


PROVIDERS = ["openai", "anthropic", "groq", "ollama"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_plain_completion_reports_provider_model_usage(provider, fake_llm) -> None:
    fake_llm.enqueue(Reply(text="Paris.", prompt_tokens=11, completion_tokens=2))
    ai = make_kite(provider, fake_llm)
    completion = ai.generate("Capital of France?", system="Answer briefly.", temperature=0.2)
    assert completion.text == "Paris."
    assert completion.provider == provider
    assert completion.model == type(ai.llm).default_model
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 2)
    assert completion.latency_s > 0
    sent = fake_llm.requests[-1]
    assert sent.last_user_text == "Capital of France?"
    if provider == "anthropic":  # a separate system field, not a message
        assert sent.json["system"] == "Answer briefly."
        assert all(m["role"] != "system" for m in sent.messages)
    else:
        assert sent.messages[0] == {"role": "system", "content": "Answer briefly."}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_model_id_with_provider_prefix(provider, fake_llm) -> None:
    ai = make_kite("groq", fake_llm)
    completion = ai.generate("hi there", model=f"{provider}/my-model")
    assert (completion.provider, completion.model) == (provider, "my-model")
    assert fake_llm.requests[-1].model == "my-model"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_streaming_yields_pieces_that_add_up(provider, fake_llm) -> None:
    fake_llm.enqueue(Reply(text="The quick brown fox jumps over the lazy dog", chunk_size=5))
    ai = make_kite(provider, fake_llm)
    pieces = list(ai.stream("tell me"))
    assert len(pieces) > 3
    assert "".join(pieces) == "The quick brown fox jumps over the lazy dog"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_async_calls_run_concurrently(provider, fake_llm) -> None:
    fake_llm.latency = 0.3
    ai = make_kite(provider, fake_llm)
    loop = asyncio.get_running_loop()
    started = loop.time()
    answers = await asyncio.gather(*(ai.acomplete(f"question {i}") for i in range(20)))
    assert answers == [f"Echo: question {i}" for i in range(20)]
    assert loop.time() - started < 3.0  # 20 x 0.3 s serialized would be 6 s
    chunks = [c async for c in ai.astream_chunks("stream it")]
    assert chunks[-1].completion is not None and chunks[-1].completion.text == "Echo: stream it"


async def test_sync_methods_work_inside_a_running_loop(fake_llm) -> None:
    """Jupyter runs an event loop: the sync API must still work there."""
    ai = make_kite("openai", fake_llm)
    assert ai.complete("from inside a loop") == "Echo: from inside a loop"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_calls_translate_to_one_type(provider, streamed, fake_llm) -> None:
    fake_llm.enqueue(
        Reply(
            tool_calls=[
                ToolCallSpec("add", {"a": 2, "b": 3}),
                ToolCallSpec("add", {"a": 1, "b": 1}),
            ]
        )
    )
    ai = make_kite(provider, fake_llm)
    if streamed:
        completion = [c for c in _collect_stream(ai, "add things")][-1].completion
    else:
        completion = ai.generate("add things", tools=[ADD_TOOL], tool_choice="auto")
    assert [(c.name, c.arguments) for c in completion.tool_calls] == [
        ("add", {"a": 2, "b": 3}),
        ("add", {"a": 1, "b": 1}),
    ]
    assert all(c.id for c in completion.tool_calls)
    assert completion.finish_reason in ("tool_calls", "tool_use")
    if not streamed:
        tools = fake_llm.requests[-1].tools
        names = [t.get("name") or t["function"]["name"] for t in tools]
        assert names == ["add"]


def _collect_stream(ai: Kite, prompt: str):
    from kite_lab.core.runner import iterate_sync

    return list(iterate_sync(ai.astream_chunks(prompt, tools=[ADD_TOOL])))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_tool_results_round_trip_in_each_wire_format(provider, fake_llm) -> None:
    ai = make_kite(provider, fake_llm)
    messages = [
        {"role": "user", "content": "what is 2+3?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "5"},
    ]
    fake_llm.enqueue(Reply(text="It is 5."))
    assert ai.chat(messages, tools=[ADD_TOOL]) == "It is 5."
    sent = fake_llm.requests[-1].messages
    if provider == "anthropic":
        assert sent[1]["content"][0]["type"] == "tool_use"
        assert sent[2]["content"][0] == {
            "type": "tool_result",
            "tool_use_id": "call_1",
            "content": "5",
        }
    else:
        assert sent[1]["tool_calls"][0]["function"]["name"] == "add"
        assert sent[2] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}


FAULTS = [
    (Fault(status=400), BadRequestError),
    (Fault(status=401), AuthenticationError),
    (Fault(status=429), RateLimitError),
    (Fault(status=429, error_type="insufficient_quota"), QuotaExceeded),
    (Fault(status=500), ServerError),
    (Fault(status=503), ServerError),
    (Fault(status=529), ServerError),
    (Fault(drop_connection=True), ProviderConnectionError),
    (Fault(malformed_body=True), MalformedResponse),
    (Fault(malformed_body="shape"), MalformedResponse),
    (Fault(latency=3.0), ProviderTimeout),
]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("fault", "error"), FAULTS, ids=[e.__name__ + str(i) for i, (_, e) in enumerate(FAULTS)]
)
def test_provider_faults_become_typed_errors_without_the_key(
    provider, fault, error, fake_llm
) -> None:
    fake_llm.enqueue(fault)
    ai = make_kite(provider, fake_llm, llm_timeout=1.0)
    with pytest.raises(error) as info:
        ai.complete("trigger a fault")
    message = str(info.value)
    assert OPENAI_KEY not in message and ANTHROPIC_KEY not in message
    assert info.value.provider == provider
    if fault.status:
        assert info.value.status == fault.status


def test_provider_message_reaches_the_error_but_a_leaked_key_does_not(fake_llm) -> None:
    fake_llm.enqueue(Fault(status=401, message=f"Incorrect API key provided: {OPENAI_KEY}"))
    ai = make_kite("openai", fake_llm)
    with pytest.raises(AuthenticationError) as info:
        ai.complete("hello")
    assert "Incorrect API key provided" in str(info.value)
    assert OPENAI_KEY not in str(info.value)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_unknown_or_invalid_parameter_fails_before_any_request(provider, fake_llm) -> None:
    ai = make_kite(provider, fake_llm)
    with pytest.raises(InvalidParameter, match="unknown parameter 'temprature'"):
        ai.complete("hi", temprature=0.1)
    with pytest.raises(InvalidParameter, match="max_tokens"):
        ai.complete("hi", max_tokens=-5)
    assert fake_llm.requests == []


def test_missing_key_for_chosen_provider_names_the_variable(fake_llm) -> None:
    ai = Kite(config={"llm_provider": "anthropic"}, env_file=None)
    with pytest.raises(MissingAPIKey, match="ANTHROPIC_API_KEY"):
        ai.complete("hi")
    assert fake_llm.requests == []


def test_unknown_provider_lists_registered_ones() -> None:
    ai = Kite(config={"llm_provider": "openai", "openai_api_key": "sk-x"}, env_file=None)
    with pytest.raises(UnknownProvider) as info:
        ai.complete("hi", model="nosuch/model-1")
    for name in ("openai", "anthropic", "groq", "ollama", "local"):
        assert name in str(info.value)


def test_first_provider_with_a_key_is_chosen(monkeypatch) -> None:
    monkeypatch.setenv("GROQ_API_KEY", GROQ_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    assert Kite(env_file=None).provider_name == "anthropic"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert Kite(env_file=None).provider_name == "groq"


def test_no_key_and_no_local_model_is_an_error_naming_the_fix(monkeypatch) -> None:
    from kite_lab.providers import registry

    monkeypatch.setattr(registry, "local_model_installed", lambda: False)
    with pytest.raises(NoProviderConfigured, match="OPENAI_API_KEY.*kite-lab\\[local\\]"):
        Kite(env_file=None).complete("hi")


def test_cost_comes_from_the_price_table_and_is_none_for_unknown_models(fake_llm) -> None:
    fake_llm.enqueue(Reply(text="ok", prompt_tokens=1000, completion_tokens=500))
    ai = make_kite("openai", fake_llm)
    priced = ai.generate("hi", model="openai/gpt-4o-mini")
    assert priced.cost_usd == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)
    assert ai.generate("hi", model="openai/some-new-model").cost_usd is None


def test_sdk_retries_are_off_so_one_call_is_one_request(fake_llm) -> None:
    fake_llm.enqueue(Fault(status=503))
    ai = make_kite("openai", fake_llm)
    with pytest.raises(ServerError):
        ai.complete("once")
    assert len(fake_llm.requests) == 1


def test_events_describe_each_call(fake_llm) -> None:
    ai = make_kite("openai", fake_llm)
    seen = []
    ai.event_bus.subscribe("llm:*", lambda e: seen.append((e.name, e.data)))
    ai.complete("hello")
    fake_llm.enqueue(Fault(status=500))
    with pytest.raises(ServerError):
        ai.complete("boom")
    names = [name for name, _ in seen]
    assert names == ["llm:request", "llm:response", "llm:request", "llm:error"]
    assert seen[1][1]["provider"] == "openai" and seen[1][1]["completion_tokens"] > 0
    assert seen[3][1]["error"] == "ServerError" and seen[3][1]["status"] == 500
