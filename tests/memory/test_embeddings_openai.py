"""The OpenAI embedding provider, through the real SDK, against the fake server."""

from __future__ import annotations

import numpy as np
import pytest

from kite_lab.core.config import load_settings
from kite_lab.core.errors import ConfigError, MissingAPIKey, ProviderConnectionError
from kite_lab.providers.embeddings import OpenAIEmbeddingProvider, build_embeddings
from kite_lab.testing import FakeLLMServer


def _settings(base_url: str, **extra: object):
    values = {
        "embedding_provider": "openai",
        "openai_api_key": "sk-test-embeddings-key",
        "openai_base_url": base_url,
        **extra,
    }
    return load_settings(values, env_file=None)


def test_embeds_at_vector_dimension(fake_llm: FakeLLMServer) -> None:
    provider = build_embeddings(_settings(fake_llm.openai_base_url))
    assert isinstance(provider, OpenAIEmbeddingProvider)
    assert (provider.model, provider.dimension) == ("text-embedding-3-small", 384)
    vector = provider.embed("hello")
    assert len(vector) == 384
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    request = fake_llm.requests[-1]
    assert request.path.endswith("/embeddings")
    assert request.json["model"] == "text-embedding-3-small"
    assert request.json["dimensions"] == 384
    assert request.headers["authorization"] == "Bearer sk-test-embeddings-key"


def test_batch_equals_one_by_one(fake_llm: FakeLLMServer) -> None:
    provider = build_embeddings(_settings(fake_llm.openai_base_url))
    texts = ["alpha", "beta", "gamma"]
    batch = provider.embed_batch(texts)
    assert len(fake_llm.requests) == 1  # one request for the batch
    np.testing.assert_allclose(batch, [provider.embed(t) for t in texts], atol=1e-6)


async def test_async_forms(fake_llm: FakeLLMServer) -> None:
    provider = build_embeddings(_settings(fake_llm.openai_base_url))
    one = await provider.aembed("alpha")
    many = await provider.aembed_batch(["alpha", "beta"])
    np.testing.assert_allclose(many[0], one, atol=1e-6)
    await provider.aclose()


def test_missing_key_and_fixed_size_model(fake_llm: FakeLLMServer) -> None:
    with pytest.raises(MissingAPIKey, match="OPENAI_API_KEY"):
        build_embeddings(load_settings({"embedding_provider": "openai"}, env_file=None))
    with pytest.raises(ConfigError, match="1536") as info:
        build_embeddings(
            _settings(fake_llm.openai_base_url, embedding_model="text-embedding-ada-002")
        )
    assert "384" in str(info.value)
    provider = build_embeddings(
        _settings(fake_llm.openai_base_url, embedding_model="text-embedding-ada-002",
                  vector_dimension=1536)
    )  # fmt: skip
    assert len(provider.embed("x")) == 1536
    assert "dimensions" not in fake_llm.requests[-1].json


def test_unknown_model_of_wrong_size_fails_naming_both(fake_llm: FakeLLMServer) -> None:
    provider = build_embeddings(
        _settings(fake_llm.openai_base_url, embedding_model="nomic-embed-text")
    )
    with pytest.raises(ConfigError, match="1536") as info:
        provider.embed("x")  # the fake server answers 1536 dimensions by default
    assert "VECTOR_DIMENSION is 384" in str(info.value)


def test_unreachable_server_is_a_typed_error() -> None:
    provider = build_embeddings(_settings("http://127.0.0.1:9/v1", llm_timeout=5))
    with pytest.raises(ProviderConnectionError) as info:
        provider.embed("x")
    assert "sk-test-embeddings-key" not in str(info.value)
