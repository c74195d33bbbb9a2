"""Fixtures for the memory tests: a fast word-hashing embedder and the real MiniLM model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kite_lab.core.config import KiteSettings, load_settings
from kite_lab.core.events import EventBus
from kite_lab.providers.embeddings import EmbeddingProvider, FastEmbedProvider, build_embeddings


class HashEmbeddings(EmbeddingProvider):
    """Bag-of-words vectors: texts sharing words are similar. Fast and deterministic."""

    name = "hash"

    def __init__(self, dimension: int = 384, model: str = "test/hash-words") -> None:
        super().__init__(model, dimension)
        self.calls = 0
        self.fail_after: int | None = None  # raise on the call after this many

    def _embed_array(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise RuntimeError("embedding failed (injected)")
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                sign = 1.0 if digest[4] & 1 else -1.0  # signed hashing: collisions cancel out
                out[row, int.from_bytes(digest[:4], "little") % self.dimension] += sign
            if not out[row].any():
                out[row, 0] = 1.0
        return out


@pytest.fixture
def hash_embeddings() -> HashEmbeddings:
    return HashEmbeddings()


@pytest.fixture
def events() -> EventBus:
    return EventBus()


@pytest.fixture
def settings(tmp_path: Path) -> KiteSettings:
    return load_settings({"kite_home": tmp_path / "home"}, env_file=None)


@pytest.fixture(scope="session")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kite_home_model")


@pytest.fixture(scope="session")
def minilm(model_home: Path) -> Iterator[FastEmbedProvider]:
    """The bundled all-MiniLM-L6-v2, loaded once per test session."""
    provider = build_embeddings(load_settings({"kite_home": model_home}, env_file=None))
    assert isinstance(provider, FastEmbedProvider)
    provider.load()
    yield provider
