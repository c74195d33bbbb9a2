"""The fake LLM server against the real openai and anthropic SDKs over real HTTP.

Every assertion here is about what the SDKs make of the wire traffic, so a test
passing means production code using those SDKs sees the same objects, streams
and exceptions it would see from the real providers.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import inspect
import json
import math
import resource
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from kite_lab.testing import FakeLLMServer, Fault, RecordedRequest, Reply, ToolCallSpec

OPENAI_KEY = "sk-test-fake-0123456789"
ANTHROPIC_KEY = "sk-ant-test-fake-0123456789"
USER = [{"role": "user", "content": "hello there"}]
CITY = {"type": "object", "properties": {"city": {"type": "string"}}}
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": CITY}}
WEATHER_TOOL_ANTHROPIC = {"name": "get_weather", "input_schema": CITY}
TWO_ARGS = [{"city": "Paris"}, {"city": "Oslo", "units": ["C", "F"]}]
TWO_CALLS = [
    ToolCallSpec("get_weather", TWO_ARGS[0], id="call_paris"),
    ToolCallSpec("get_weather", TWO_ARGS[1]),
]


class SDK:
    """Builds sync or async SDK clients pointed at the server and closes them afterwards."""

    def __init__(self, server: FakeLLMServer, mode: str) -> None:
        self.server, self.mode = server, mode
        self._clients: list[Any] = []

    def openai(self, **options: Any) -> Any:
        cls = openai.OpenAI if self.mode == "sync" else openai.AsyncOpenAI
        options = {"api_key": OPENAI_KEY, "max_retries": 0, **options}
        return self._keep(cls(base_url=self.server.openai_base_url, **options))

    def anthropic(self, **options: Any) -> Any:
        cls = anthropic.Anthropic if self.mode == "sync" else anthropic.AsyncAnthropic
        options = {"api_key": ANTHROPIC_KEY, "max_retries": 0, **options}
        return self._keep(cls(base_url=self.server.anthropic_base_url, **options))

    def _keep(self, client: Any) -> Any:
        self._clients.append(client)
        return client

    async def aclose(self) -> None:
        for client in self._clients:
            await resolve(client.close())


async def resolve(value: Any) -> Any:
    """Await SDK results from async clients; pass sync results through."""
    return await value if inspect.isawaitable(value) else value


async def collect(stream: Any) -> list[Any]:
    """Drain a sync or async SDK stream."""
    if hasattr(stream, "__aiter__"):
        return [item async for item in stream]
    return list(stream)


async def run_stream_manager(manager: Any, final: str) -> tuple[list[Any], Any]:
    """Drive an SDK ``.stream(...)`` helper (sync or async) and fetch its final object."""
    if hasattr(manager, "__aenter__"):
        async with manager as stream:
            events = [event async for event in stream]
            return events, await getattr(stream, final)()
    with manager as stream:
        return list(stream), getattr(stream, final)()


@pytest.fixture
async def sdk(fake_llm: FakeLLMServer, request: pytest.FixtureRequest) -> AsyncIterator[SDK]:
    factory = SDK(fake_llm, getattr(request, "param", "sync"))
    yield factory
    await factory.aclose()


BOTH_MODES = pytest.mark.parametrize("sdk", ["sync", "async"], indirect=True)


def openai_call(client: Any, **params: Any) -> Any:
    return client.chat.completions.create(**{"model": "gpt-4o-mini", "messages": USER, **params})


def anthropic_call(client: Any, **params: Any) -> Any:
    params = {"model": "claude-test", "max_tokens": 64, "messages": USER, **params}
    return client.messages.create(**params)


# -- plain replies -----------------------------------------------------------------


@BOTH_MODES
async def test_openai_plain_reply_and_usage(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(text="Hello there, world"))
    completion = await resolve(openai_call(sdk.openai()))
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    assert completion.choices[0].message.content == "Hello there, world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (2, 3)
    assert completion.usage.total_tokens == 5


@BOTH_MODES
async def test_anthropic_plain_reply_and_usage(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(text="Hi!", prompt_tokens=11, completion_tokens=7))
    message = await resolve(anthropic_call(sdk.anthropic()))
    assert message.type == "message" and message.role == "assistant"
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Hi!"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)


async def test_default_reply_echoes_the_last_user_message(sdk: SDK) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    completion = openai_call(sdk.openai(), messages=messages)
    message = anthropic_call(sdk.anthropic(), messages=messages)
    assert completion.choices[0].message.content == "Echo: second"
    assert message.content[0].text == "Echo: second"


def test_finish_reason_is_translated_between_vocabularies(sdk: SDK) -> None:
    sdk.server.enqueue(*[Reply(text="cut", finish_reason="length")] * 2)
    assert openai_call(sdk.openai()).choices[0].finish_reason == "length"
    assert anthropic_call(sdk.anthropic()).stop_reason == "max_tokens"


# -- streaming -----------------------------------------------------------------------


@BOTH_MODES
@pytest.mark.parametrize("include_usage", [True, False])
async def test_openai_stream_accumulates_text(sdk: SDK, include_usage: bool) -> None:
    text = "The quick brown fox jumps"
    sdk.server.enqueue(Reply(text=text, chunk_size=3))
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = await resolve(openai_call(sdk.openai(), stream=True, **options))
    chunks = await collect(stream)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == text
    assert len([p for p in pieces if p]) == math.ceil(len(text) / 3)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finish[-1] == "stop" and set(finish[:-1]) == {None}
    usage = [c.usage for c in chunks if c.usage is not None]
    if include_usage:
        assert chunks[-1].choices == [] and len(usage) == 1
        assert (usage[0].prompt_tokens, usage[0].completion_tokens) == (2, 5)
    else:
        assert usage == []


@BOTH_MODES
async def test_anthropic_stream_event_sequence(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(text="Bonjour tout le monde", chunk_size=5))
    stream = await resolve(anthropic_call(sdk.anthropic(), stream=True))
    events = await collect(stream)
    types = [event.type for event in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[2:-3]) == {"content_block_delta"}
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == "Bonjour tout le monde"
    assert events[0].message.usage.input_tokens == 2
    assert events[-2].delta.stop_reason == "end_turn"
    assert events[-2].usage.output_tokens == 4


@BOTH_MODES
async def test_anthropic_stream_helper_builds_final_message(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(text="streamed text", chunk_size=2))
    client = sdk.anthropic()
    manager = client.messages.stream(model="claude-test", max_tokens=64, messages=USER)
    _, final = await run_stream_manager(manager, "get_final_message")
    assert final.content[0].text == "streamed text"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 2


# -- tool calls -------------------------------------------------------------------


def test_openai_two_tool_calls_in_one_turn(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(tool_calls=TWO_CALLS))
    completion = openai_call(sdk.openai(), tools=[WEATHER_TOOL])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_weather"]
    assert calls[0].id == "call_paris" and calls[1].id.startswith("call_")
    assert [json.loads(c.function.arguments) for c in calls] == TWO_ARGS


@BOTH_MODES
async def test_openai_streamed_tool_calls_reassemble(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(text="Checking.", tool_calls=TWO_CALLS, chunk_size=3))
    stream = await resolve(openai_call(sdk.openai(), tools=[WEATHER_TOOL], stream=True))
    calls: dict[int, dict[str, str]] = {}
    for chunk in await collect(stream):
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += delta.id or ""
            call["name"] += delta.function.name or ""
            call["arguments"] += delta.function.arguments or ""
    assert calls[0]["id"] == "call_paris"
    assert [json.loads(calls[i]["arguments"]) for i in (0, 1)] == TWO_ARGS
    assert {c["name"] for c in calls.values()} == {"get_weather"}


@BOTH_MODES
async def test_openai_stream_helper_final_completion_has_tool_calls(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(text="Checking.", tool_calls=TWO_CALLS, chunk_size=2))
    client = sdk.openai()
    manager = client.chat.completions.stream(model="m", messages=USER, tools=[WEATHER_TOOL])
    _, final = await run_stream_manager(manager, "get_final_completion")
    message = final.choices[0].message
    assert message.content == "Checking."
    assert [json.loads(c.function.arguments) for c in message.tool_calls] == TWO_ARGS
    assert final.choices[0].finish_reason == "tool_calls"


def test_anthropic_two_tool_use_blocks(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(text="Let me check.", tool_calls=TWO_CALLS))
    message = anthropic_call(sdk.anthropic(), tools=[WEATHER_TOOL_ANTHROPIC])
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].id == "call_paris" and message.content[2].id.startswith("toolu_")
    assert [block.input for block in message.content[1:]] == TWO_ARGS
    assert message.stop_reason == "tool_use"


@BOTH_MODES
async def test_anthropic_streamed_tool_input_reassembles(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(tool_calls=TWO_CALLS, chunk_size=3))
    client = sdk.anthropic()
    manager = client.messages.stream(
        model="claude-test", max_tokens=64, messages=USER, tools=[WEATHER_TOOL_ANTHROPIC]
    )
    events, final = await run_stream_manager(manager, "get_final_message")
    assert any(getattr(e, "type", "") == "input_json" for e in events)
    assert [block.input for block in final.content] == TWO_ARGS
    assert final.stop_reason == "tool_use"


def test_invalid_json_tool_arguments_reach_the_caller(sdk: SDK) -> None:
    broken = ToolCallSpec("get_weather", '{"city": "Par')
    sdk.server.enqueue(*[Reply(tool_calls=[broken])] * 3)
    call = openai_call(sdk.openai()).choices[0].message.tool_calls[0]
    assert call.function.arguments == '{"city": "Par'
    # Non-streamed Anthropic input cannot be an object, so the raw text is passed through.
    assert anthropic_call(sdk.anthropic()).content[0].input == '{"city": "Par'
    # Streamed, the anthropic SDK's partial-JSON parser silently drops the unfinished value.
    with sdk.anthropic().messages.stream(model="m", max_tokens=9, messages=USER) as stream:
        assert stream.get_final_message().content[0].input == {}


# -- faults ------------------------------------------------------------------------

OPENAI_FAULTS = [
    (400, openai.BadRequestError, "invalid_request_error"),
    (401, openai.AuthenticationError, "invalid_request_error"),
    (403, openai.PermissionDeniedError, "invalid_request_error"),
    (404, openai.NotFoundError, "invalid_request_error"),
    (422, openai.UnprocessableEntityError, "invalid_request_error"),
    (429, openai.RateLimitError, "rate_limit_exceeded"),
    (500, openai.InternalServerError, "server_error"),
    (503, openai.InternalServerError, "server_error"),
    (529, openai.InternalServerError, "server_error"),
]
ANTHROPIC_FAULTS = [
    (400, anthropic.BadRequestError, "invalid_request_error"),
    (401, anthropic.AuthenticationError, "authentication_error"),
    (403, anthropic.PermissionDeniedError, "permission_error"),
    (404, anthropic.NotFoundError, "not_found_error"),
    (422, anthropic.UnprocessableEntityError, "invalid_request_error"),
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (503, anthropic.ServiceUnavailableError, "api_error"),  # an InternalServerError subclass
    (529, anthropic.OverloadedError, "overloaded_error"),  # likewise
]


@pytest.mark.parametrize(("status", "error", "error_type"), OPENAI_FAULTS)
def test_openai_fault_status_raises_sdk_error(
    sdk: SDK, status: int, error: type, error_type: str
) -> None:
    sdk.server.enqueue(Fault(status=status, message=f"scripted {status}"))
    with pytest.raises(error) as info:
        openai_call(sdk.openai())
    assert info.value.status_code == status
    assert f"scripted {status}" in str(info.value)
    assert info.value.type == error_type
    assert info.value.body["message"] == f"scripted {status}"


@pytest.mark.parametrize(("status", "error", "error_type"), ANTHROPIC_FAULTS)
def test_anthropic_fault_status_raises_sdk_error(
    sdk: SDK, status: int, error: type, error_type: str
) -> None:
    sdk.server.enqueue(Fault(status=status, message=f"scripted {status}"))
    with pytest.raises(error) as info:
        anthropic_call(sdk.anthropic())
    assert info.value.status_code == status
    assert info.value.type == error_type
    assert info.value.api_message == f"scripted {status}"
    assert info.value.body["error"] == {"type": error_type, "message": f"scripted {status}"}
    assert info.value.request_id == info.value.body["request_id"]


def test_openai_insufficient_quota_code_is_on_the_exception(sdk: SDK) -> None:
    sdk.server.enqueue(Fault(status=429, error_type="insufficient_quota"))
    with pytest.raises(openai.RateLimitError) as info:
        openai_call(sdk.openai())
    assert info.value.code == "insufficient_quota" and info.value.type == "insufficient_quota"
    assert info.value.body["code"] == "insufficient_quota"
    assert "quota" in info.value.body["message"]


def test_anthropic_code_lands_in_error_details(sdk: SDK) -> None:
    sdk.server.enqueue(Fault(status=429, code="custom_limit", error_type="rate_limit_error"))
    with pytest.raises(anthropic.RateLimitError) as info:
        anthropic_call(sdk.anthropic())
    assert info.value.error_code == "custom_limit"


@BOTH_MODES
async def test_fault_on_a_stream_request_raises_before_iterating(sdk: SDK) -> None:
    sdk.server.enqueue(Fault(status=529), Fault(status=429))
    with pytest.raises(anthropic.OverloadedError):
        await resolve(anthropic_call(sdk.anthropic(), stream=True))
    with pytest.raises(openai.RateLimitError):
        await resolve(openai_call(sdk.openai(), stream=True))


def test_retry_after_and_custom_headers_drive_sdk_retries(sdk: SDK) -> None:
    sdk.server.enqueue(Fault(status=429, retry_after=0.05), Reply(text="second try"))
    completion = openai_call(sdk.openai(max_retries=1))
    assert completion.choices[0].message.content == "second try"
    assert len(sdk.server.requests) == 2

    sdk.server.enqueue(Fault(status=503, retry_after=2, headers={"X-Should-Retry": "false"}))
    with pytest.raises(anthropic.ServiceUnavailableError) as info:
        anthropic_call(sdk.anthropic(max_retries=3))
    assert info.value.response.headers["retry-after"] == "2"
    assert len(sdk.server.requests) == 3  # x-should-retry: false stopped the retries


@pytest.mark.parametrize("stream", [False, True])
def test_malformed_json_body_makes_the_sdks_raise_json_errors(sdk: SDK, stream: bool) -> None:
    # What the SDKs actually do: the JSON decoder's own error escapes, unwrapped.
    sdk.server.enqueue(Fault(malformed_body=True), Fault(malformed_body="json"))
    finish: Any = list if stream else (lambda result: result)
    with pytest.raises(json.JSONDecodeError):
        finish(openai_call(sdk.openai(), stream=stream))
    with pytest.raises(json.JSONDecodeError):
        finish(anthropic_call(sdk.anthropic(), stream=stream))


def test_malformed_shape_gives_objects_missing_their_fields(sdk: SDK) -> None:
    # The SDKs construct responses without validation, so the gaps surface as None.
    sdk.server.enqueue(Fault(malformed_body="shape"), Fault(malformed_body="shape"))
    completion = openai_call(sdk.openai())
    assert completion.choices is None and completion.usage is None
    message = anthropic_call(sdk.anthropic())
    assert message.content is None and message.usage is None


@BOTH_MODES
@pytest.mark.parametrize("stream", [False, True])
async def test_dropped_connection_is_a_connection_error(sdk: SDK, stream: bool) -> None:
    sdk.server.enqueue(Fault(drop_connection=True), Fault(drop_connection=True))
    with pytest.raises(openai.APIConnectionError) as openai_info:
        await resolve(openai_call(sdk.openai(), stream=stream))
    with pytest.raises(anthropic.APIConnectionError) as anthropic_info:
        await resolve(anthropic_call(sdk.anthropic(), stream=stream))
    assert not isinstance(openai_info.value, openai.APITimeoutError)
    assert not isinstance(anthropic_info.value, anthropic.APITimeoutError)


@BOTH_MODES
async def test_latency_past_the_client_timeout_is_a_timeout(sdk: SDK) -> None:
    sdk.server.enqueue(Fault(latency=5), Reply(text="slow", latency=5))
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        await resolve(openai_call(sdk.openai(timeout=0.2)))
    with pytest.raises(anthropic.APITimeoutError):
        await resolve(anthropic_call(sdk.anthropic(timeout=0.2)))
    assert time.perf_counter() - started < 2


def test_server_latency_delays_every_llm_response(sdk: SDK) -> None:
    sdk.server.latency = 0.2
    started = time.perf_counter()
    openai_call(sdk.openai())
    assert time.perf_counter() - started >= 0.2
    sdk.server.enqueue(Reply(text="fast", latency=0))
    started = time.perf_counter()
    assert openai_call(sdk.openai()).choices[0].message.content == "fast"
    assert time.perf_counter() - started < 0.2


# -- scripting and recording ---------------------------------------------------------


def test_requests_are_recorded_with_model_messages_tools_and_auth(sdk: SDK) -> None:
    openai_call(sdk.openai(), tools=[WEATHER_TOOL])
    anthropic_call(sdk.anthropic(), system="be brief", tools=[WEATHER_TOOL_ANTHROPIC], stream=True)
    first, second = sdk.server.requests
    assert (first.method, first.path, first.wire) == ("POST", "/v1/chat/completions", "openai")
    assert first.model == "gpt-4o-mini" and first.messages == USER and not first.stream
    assert first.tools == [WEATHER_TOOL]
    assert first.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert first.json == json.loads(first.body)
    assert (second.path, second.wire, second.stream) == ("/v1/messages", "anthropic", True)
    # anthropic 2.x sends its key as a bearer token; older releases used x-api-key.
    auth = second.headers.get("x-api-key") or second.headers["authorization"]
    assert auth.removeprefix("Bearer ") == ANTHROPIC_KEY
    assert "anthropic-version" in second.headers
    assert second.json["system"] == "be brief" and second.tools == [WEATHER_TOOL_ANTHROPIC]
    assert second.last_user_text == "hello there"
    sdk.server.clear_requests()
    assert sdk.server.requests == []


async def test_queue_is_fifo_then_handler_then_echo(sdk: SDK) -> None:
    server = sdk.server
    server.enqueue(Reply(text="one"), "two")
    assert server.pending == 2

    async def handler(request: RecordedRequest) -> Reply:
        await asyncio.sleep(0)
        return Reply(text=f"handled {request.model}")

    server.set_handler(handler)
    client = sdk.openai()
    texts = [openai_call(client).choices[0].message.content for _ in range(3)]
    assert texts == ["one", "two", "handled gpt-4o-mini"]
    server.set_handler(None)
    assert openai_call(client).choices[0].message.content == "Echo: hello there"

    server.enqueue(Fault(status=500))
    server.latency = 1.0
    server.set_handler(lambda request: Reply(text="x"))
    server.reset()
    assert (server.pending, server.latency, server.requests) == (0, 0.0, [])
    assert openai_call(client).choices[0].message.content == "Echo: hello there"


def test_a_failing_handler_becomes_a_500_naming_the_exception(sdk: SDK) -> None:
    def handler(request: RecordedRequest) -> Reply:
        raise LookupError("no script for this")

    sdk.server.set_handler(handler)
    with pytest.raises(openai.InternalServerError, match="LookupError"):
        openai_call(sdk.openai())


def test_requests_the_real_api_rejects_get_a_400_and_keep_the_script(sdk: SDK) -> None:
    sdk.server.enqueue(Reply(text="kept"))
    response = httpx.post(
        f"{sdk.server.base_url}/v1/messages",
        json={"model": "claude-test", "messages": USER},  # no max_tokens
        headers={"anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "max_tokens: Field required",
    }
    assert sdk.server.pending == 1


# -- other endpoints ---------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["sdk-default", "float", "base64"])
def test_embeddings_are_deterministic_unit_vectors(sdk: SDK, encoding: str) -> None:
    client = sdk.openai()
    options = {} if encoding == "sdk-default" else {"encoding_format": encoding}
    texts = ["alpha", "beta", "alpha"]
    result = client.embeddings.create(
        model="text-embedding-3-small", input=texts, dimensions=64, **options
    )
    vectors = [item.embedding for item in result.data]
    if encoding == "base64":  # explicitly requested: the SDK hands back the raw string
        vectors = [list(struct.unpack("<64f", base64.b64decode(v))) for v in vectors]
    assert [len(v) for v in vectors] == [64, 64, 64]
    assert all(math.isclose(math.hypot(*v), 1.0, rel_tol=1e-5) for v in vectors)
    assert vectors[0] == vectors[2] and vectors[0] != vectors[1]
    assert result.usage.prompt_tokens == 3
    expected = "base64" if encoding != "float" else "float"
    assert sdk.server.requests[-1].json["encoding_format"] == expected


def test_embeddings_default_dimension(sdk: SDK) -> None:
    result = sdk.openai().embeddings.create(model="text-embedding-3-small", input="hi")
    assert len(result.data[0].embedding) == 1536
    assert sdk.server.requests[-1].wire == "embeddings"


def test_models_are_listed_in_each_providers_shape(sdk: SDK) -> None:
    assert "gpt-4o-mini" in [m.id for m in sdk.openai().models.list()]
    assert all(m.type == "model" for m in sdk.anthropic().models.list())


def test_unknown_path_is_an_openai_style_404(sdk: SDK) -> None:
    response = httpx.post(f"{sdk.server.base_url}/v1/nope", json={})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "/v1/nope" in response.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        sdk.openai().completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    assert sdk.server.requests[-1].wire == "other"


# -- HTTP behaviour and lifecycle ------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_socket(fake_llm: FakeLLMServer) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", fake_llm.port, timeout=5)
    body = json.dumps({"model": "m", "messages": USER})
    sockets = []
    for _ in range(3):
        conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["object"] == "chat.completion"
        sockets.append(conn.sock)
    assert sockets[0] is not None and sockets.count(sockets[0]) == 3
    conn.close()


def test_lifecycle_is_idempotent_and_restartable() -> None:
    server = FakeLLMServer()
    with pytest.raises(RuntimeError):
        _ = server.base_url
    assert server.start() is server.start()
    assert server.openai_base_url == server.base_url + "/v1"
    assert server.anthropic_base_url == server.base_url
    server.stop()
    server.stop()
    assert not server.running
    with server:
        assert httpx.get(f"{server.openai_base_url}/models").status_code == 200
    assert not server.running


def test_session_fixture_is_a_running_server(fake_llm_session: FakeLLMServer) -> None:
    assert fake_llm_session.running
    assert httpx.get(f"{fake_llm_session.openai_base_url}/models").status_code == 200


async def raw_chat(port: int, text: str) -> str:
    """One request on its own socket through a bare HTTP/1.1 client that costs ~no CPU."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nhost: fake\r\nconnection: close\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    response = await reader.read()  # connection: close, so the body ends at EOF
    writer.close()
    assert response.startswith(b"HTTP/1.1 200")
    return json.loads(response.partition(b"\r\n\r\n")[2])["choices"][0]["message"]["content"]


async def test_a_thousand_concurrent_slow_requests(fake_llm: FakeLLMServer) -> None:
    """Latency is a sleep on the server loop, so 1,000 x 0.1 s overlap instead of adding up.

    The clients are raw sockets: the SDKs cost ~2 ms of CPU per request here, so 1,000 SDK
    calls would time the client (and whatever else shares the CPU), not the server.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:  # both ends of 1,000 sockets are ours
        if hard != resource.RLIM_INFINITY and hard < 4096:
            pytest.skip(f"needs 2,000+ file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    fake_llm.latency = 0.1
    started = time.perf_counter()
    texts = await asyncio.gather(*(raw_chat(fake_llm.port, f"q{i}") for i in range(1000)))
    elapsed = time.perf_counter() - started
    assert texts == [f"Echo: q{i}" for i in range(1000)]
    assert len(fake_llm.requests) == 1000
    assert elapsed < 5, f"1,000 concurrent requests took {elapsed:.2f}s"


@pytest.mark.parametrize("sdk", ["async"], indirect=True)
async def test_concurrent_sdk_requests_overlap_their_latency(sdk: SDK) -> None:
    client = sdk.openai()
    await openai_call(client)  # the SDK's lazy imports stay outside the clock
    sdk.server.latency = 0.5
    started = time.perf_counter()
    results = await asyncio.gather(*(openai_call(client) for _ in range(100)))
    elapsed = time.perf_counter() - started
    assert {r.choices[0].message.content for r in results} == {"Echo: hello there"}
    assert elapsed < 5, f"100 concurrent SDK requests with 0.5 s latency took {elapsed:.2f}s"
