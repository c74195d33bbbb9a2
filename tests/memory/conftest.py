"""Fixtures for the memory tests: a fast word-hashing embedder and the real MiniLM model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from memory_fakes import HashEmbeddings

from kite_lab.core.config import load_settings
from kite_lab.core.events import EventBus
from kite_lab.providers.embeddings import FastEmbedProvider, build_embeddings


@pytest.fixture
def hash_embeddings() -> HashEmbeddings:
    return HashEmbeddings()


@pytest.fixture
def events() -> EventBus:
    return EventBus()


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
