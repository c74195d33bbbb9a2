"""``schema=`` / ``ai.extract``: the real SDKs against the fake server, every provider.

The fake server answers an unscripted schema request with a value built to fit it, and
turns a scripted text reply into the forced tool's input on the Anthropic wire, so one
script serves every provider.
"""

from __future__ import annotations

import json
from typing import TypedDict

import pytest
from pydantic import BaseModel

from kite_lab import (
    InvalidInput,
    OutputParseError,
    OutputValidationError,
)
from kite_lab.core.runner import iterate_sync
from kite_lab.testing import Reply


class Person(BaseModel):
    name: str
    age: int


class Movie(TypedDict):
    title: str
    year: int


class Scores(BaseModel):
    scores: dict[str, int]


POINT = {
    "title": "Point",
    "type": "object",
    "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
    "required": ["x", "y"],
    "additionalProperties": False,
}
PROVIDERS = ["openai", "anthropic", "groq", "ollama"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_asks_natively_and_parses(provider, make_kite, fake_llm) -> None:
    ai = make_kite(provider)
    completion = ai.generate("Ada Lovelace was 36.", schema=Person)
    assert isinstance(completion.parsed, Person)
    assert json.loads(completion.text) == completion.parsed.model_dump()
    body = fake_llm.requests[-1].json
    if provider == "openai":
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
        assert fmt["json_schema"]["name"] == "Person"
        assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    elif provider == "anthropic":
        assert body["tool_choice"] == {"type": "tool", "name": "Person"}
        assert body["tools"][0]["input_schema"]["required"] == ["name", "age"]
    elif provider == "groq":  # llama-3.3 has no json_schema mode: json_object + the schema
        assert body["response_format"] == {"type": "json_object"}
        assert '"age"' in body["messages"][0]["content"]
        assert "JSON" in body["messages"][0]["content"]
    else:  # ollama: json_schema on /v1 is its format=<schema>
        fmt = body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is False


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_scripted_answer_typeddict_and_json_schema_dict(provider, make_kite, fake_llm) -> None:
    ai = make_kite(provider)
    fake_llm.enqueue(Reply.json_answer({"title": "Alien", "year": 1979}))
    assert ai.extract("A 1979 film", Movie) == {"title": "Alien", "year": 1979}
    fake_llm.enqueue(Reply.json_answer({"x": 1, "y": 2}))
    point = ai.extract("a point", POINT)
    assert point == {"x": 1, "y": 2} and isinstance(point, dict)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_list_schema_is_wrapped_for_the_provider_and_unwrapped(
    provider, make_kite, fake_llm
) -> None:
    ai = make_kite(provider)
    two = [{"name": "A", "age": 1}, {"name": "B", "age": 2}]
    fake_llm.enqueue(Reply.json_answer({"items": two}))
    people = ai.extract("two people", list[Person])
    assert people == [Person(name="A", age=1), Person(name="B", age=2)]
    sent = fake_llm.requests[-1].response_schema
    assert sent["type"] == "object" and sent["properties"]["items"]["type"] == "array"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_one_repair_round_sends_the_errors_back(provider, make_kite, fake_llm) -> None:
    fake_llm.enqueue(
        Reply.json_answer({"name": "Ada", "age": "36 y"}, prompt_tokens=10, completion_tokens=5),
        Reply.json_answer({"name": "Ada", "age": 36}, prompt_tokens=20, completion_tokens=4),
    )
    ai = make_kite(provider)
    completion = ai.generate("Ada, 36", schema=Person)
    assert completion.parsed == Person(name="Ada", age=36)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (30, 9)
    first, second = fake_llm.requests[-2:]
    assert second.response_schema == first.response_schema  # the repair asks natively too
    roles = [m["role"] for m in second.messages if m["role"] != "system"]
    assert roles == ["user", "assistant", "user"]
    assert "36 y" in json.dumps(second.messages[-2]["content"])
    assert "age" in second.last_user_text and "valid integer" in second.last_user_text


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_second_failure_raises_output_validation_error(provider, make_kite, fake_llm) -> None:
    fake_llm.enqueue(Reply("not json at all"), Reply.json_answer({"name": "Ada"}))
    ai = make_kite(provider)
    with pytest.raises(OutputValidationError) as caught:
        ai.extract("Ada", Person)
    error = caught.value
    assert isinstance(error, OutputParseError)
    assert json.loads(error.text) == {"name": "Ada"}
    assert any(e.startswith("age: Field required") for e in error.errors)
    assert "Person" in str(error) and "repair" in str(error)
    assert len(fake_llm.requests) == 2  # exactly one repair round
    assert "not JSON" in fake_llm.requests[1].last_user_text


async def test_aextract_and_fenced_answers(make_kite, fake_llm) -> None:
    fake_llm.enqueue(Reply('```json\n{"name": "Bo", "age": 3}\n```'))
    ai = make_kite("openai")
    assert await ai.aextract("Bo is 3", Person) == Person(name="Bo", age=3)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_streaming_yields_text_and_ends_with_the_parsed_object(
    provider, make_kite, fake_llm
) -> None:
    fake_llm.enqueue(Reply.json_answer({"name": "Cy", "age": 41}, chunk_size=3))
    ai = make_kite(provider)
    chunks = list(iterate_sync(ai.astream_chunks("Cy, 41", schema=Person)))
    pieces = [c.text for c in chunks if c.text]
    assert len(pieces) > 3
    assert json.loads("".join(pieces)) == {"name": "Cy", "age": 41}
    final = chunks[-1].completion
    assert final is not None and final.parsed == Person(name="Cy", age=41)
    assert list(ai.stream("again", schema=Person))  # plain text pieces work too


def test_streaming_repairs_in_one_more_call(make_kite, fake_llm) -> None:
    fake_llm.enqueue(Reply.json_answer({"name": "Cy"}), Reply.json_answer({"name": "Cy", "age": 1}))
    ai = make_kite("openai")
    chunks = list(iterate_sync(ai.astream_chunks("Cy", schema=Person)))
    assert chunks[-1].completion.parsed == Person(name="Cy", age=1)
    assert [r.stream for r in fake_llm.requests] == [True, False]


def test_cache_key_includes_the_schema(make_kite, fake_llm) -> None:
    ai = make_kite("openai", cache_backend="memory")
    first = ai.generate("same prompt", schema=Person, temperature=0)
    again = ai.generate("same prompt", schema=Person, temperature=0)
    assert len(fake_llm.requests) == 1 and again.cached
    assert again.parsed == first.parsed  # re-validated from the cached text
    other = ai.generate("same prompt", schema=Movie, temperature=0)
    assert len(fake_llm.requests) == 2 and set(other.parsed) == {"title", "year"}
    ai.generate("same prompt", temperature=0)
    assert len(fake_llm.requests) == 3


@pytest.mark.parametrize(
    "bad", [int, "Person", 3, Person(name="a", age=1), [Person], list[int]], ids=repr
)
def test_a_schema_of_the_wrong_kind_is_a_type_error(bad, make_kite, fake_llm) -> None:
    ai = make_kite("openai")
    with pytest.raises(TypeError) as caught:
        ai.generate("hi", schema=bad)
    message = str(caught.value)
    assert "pydantic model class" in message and "TypedDict" in message
    assert "JSON-schema dict" in message or "not an instance" in message
    assert fake_llm.requests == []


def test_other_bad_combinations_fail_before_any_call(make_kite, fake_llm) -> None:
    ai = make_kite("openai")
    with pytest.raises(InvalidInput, match="not a valid JSON schema"):
        ai.generate("hi", schema={"type": 12})
    with pytest.raises(InvalidInput, match="cannot be combined"):
        ai.generate("hi", schema=Person, tools=[{"name": "add", "parameters": {}}])
    with pytest.raises(InvalidInput, match="response_format"):
        ai.generate("hi", schema=Person, response_format={"type": "json_object"})
    assert fake_llm.requests == []


def test_strict_mode_only_where_model_and_schema_allow(make_kite, fake_llm) -> None:
    ai = make_kite("openai")
    fake_llm.enqueue(Reply.json_answer({"scores": {"a": 1}}))
    assert ai.extract("scores", Scores) == Scores(scores={"a": 1})
    assert fake_llm.requests[-1].json["response_format"]["json_schema"]["strict"] is False
    ai.extract("Ada", Person, model="gpt-3.5-turbo")  # predates json_schema
    body = fake_llm.requests[-1].json
    assert body["response_format"] == {"type": "json_object"}
    groq = make_kite("groq")
    groq.extract("Ada", Person, model="groq/openai/gpt-oss-20b")
    assert fake_llm.requests[-1].json["response_format"]["json_schema"]["strict"] is True
    groq.extract("Ada", Person, model="groq/meta-llama/llama-4-scout-17b-16e-instruct")
    assert fake_llm.requests[-1].json["response_format"]["json_schema"]["strict"] is False


def test_parsing_tolerates_fences_prose_and_raw_newlines_but_not_junk() -> None:
    from kite_lab.structured.schema import SchemaMismatch, normalize_schema

    schema = normalize_schema(Person)
    assert schema.parse('Sure! {"name": "A\nB", "age": 1} Hope it helps.').name == "A\nB"
    assert schema.parse('```\n{"name": "C", "age": 2}\n```').age == 2
    with pytest.raises(SchemaMismatch, match="not JSON"):
        schema.parse("no braces here")
