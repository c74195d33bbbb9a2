"""Embedding providers: fastembed (offline, the default) and OpenAI, behind one interface.

Why two execution styles: fastembed is CPU-bound local code, so its sync path is the
real one and the async methods hand it to a worker thread; the OpenAI provider is
network I/O, so its async path (one ``AsyncOpenAI`` per event loop) is the real one and
the sync methods wait for it through ``run_sync``. Each provider implements exactly one
of ``_embed_array`` / ``_aembed_array``; the base class derives everything else, so no
sync/async twin is written twice.

Vectors come back L2-normalised float32 (numpy inside); the list-returning methods are
for users, ``embed_array`` is for the vector memory (no Python-float round trip).

``build_embeddings(settings)`` checks VECTOR_DIMENSION against the model when it is
built, and never downloads a model: the default all-MiniLM-L6-v2 is assembled from
installed packages (see ``bundled_minilm``), other fastembed models must already be in
FASTEMBED_CACHE_PATH.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from kite_lab.core.errors import ConfigError, InvalidInput, MalformedResponse, MissingAPIKey
from kite_lab.core.runner import PerLoop, run_sync
from kite_lab.providers.bundled_minilm import (
    EMBEDDED_DIMENSION,
    EMBEDDED_MODEL,
    ensure_embedded_model,
    is_embedded_model,
)

if TYPE_CHECKING:
    import numpy as np

    from kite_lab.core.config import KiteSettings

__all__ = [
    "EmbeddingProvider",
    "FastEmbedProvider",
    "OpenAIEmbeddingProvider",
    "build_embeddings",
    "check_text",
    "check_texts",
]

#: texts per fastembed/onnxruntime run; 64 keeps memory flat and throughput at its peak
DEFAULT_BATCH_SIZE = 64


def check_text(value: Any, name: str = "text") -> str:
    """``value`` if it is a non-blank str; TypeError / InvalidInput naming ``name`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInput(f"{name} is empty; pass some non-blank text")
    return value


def check_texts(values: Any, name: str = "texts") -> list[str]:
    """A list of non-blank strs from any iterable of them (a bare str is refused)."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise TypeError(
            f"{name} must be a list of str, not {type(values).__name__}"
            + ("; use embed(text) for one text" if isinstance(values, str) else "")
        )
    items = list(values)
    for index, item in enumerate(items):
        check_text(item, f"{name}[{index}]")
    return items


class EmbeddingProvider:
    """Text -> unit vector. Subclasses implement ``_embed_array`` or ``_aembed_array``."""

    name: ClassVar[str]

    def __init__(self, model: str, dimension: int) -> None:
        self.model = model
        self.dimension = dimension

    # -- public API -------------------------------------------------------------------
    def embed(self, text: str) -> list[float]:
        """The vector of one text."""
        vector: list[float] = self.embed_array([check_text(text)])[0].tolist()
        return vector

    def embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        """The vectors of several texts, computed in batches."""
        items = check_texts(texts)
        vectors: list[list[float]] = self.embed_array(items).tolist() if items else []
        return vectors

    async def aembed(self, text: str) -> list[float]:
        vector: list[float] = (await self.aembed_array([check_text(text)]))[0].tolist()
        return vector

    async def aembed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        items = check_texts(texts)
        vectors: list[list[float]] = (await self.aembed_array(items)).tolist() if items else []
        return vectors

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dimension)`` float32, rows L2-normalised. Texts are not re-checked."""
        return self._finish(self._embed_array(list(texts)), len(texts))

    async def aembed_array(self, texts: Sequence[str]) -> np.ndarray:
        return self._finish(await self._aembed_array(list(texts)), len(texts))

    def describe(self) -> dict[str, Any]:
        return {"provider": self.name, "model": self.model, "dimension": self.dimension}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} model={self.model!r} dimension={self.dimension}>"

    async def aclose(self) -> None:
        """Release clients; the default holds none."""

    # -- one of these two is implemented by each subclass ------------------------------
    def _embed_array(self, texts: list[str]) -> np.ndarray:
        return run_sync(self._aembed_array(texts))

    async def _aembed_array(self, texts: list[str]) -> np.ndarray:
        return await asyncio.to_thread(self._embed_array, texts)

    # -- shared checks -------------------------------------------------------------------
    def _finish(self, matrix: Any, expected_rows: int) -> np.ndarray:
        import numpy as np

        array = np.ascontiguousarray(matrix, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] != expected_rows:
            raise MalformedResponse(
                f"expected {expected_rows} vectors, got an array of shape {array.shape}",
                provider=self.name,
            )
        if array.shape[1] != self.dimension:
            raise ConfigError(
                f"embedding model {self.model!r} returned {array.shape[1]}-dimensional vectors "
                f"but VECTOR_DIMENSION is {self.dimension}: set VECTOR_DIMENSION="
                f"{array.shape[1]}"
            )
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        np.divide(array, norms, out=array, where=norms > 0)
        return array


# -- fastembed ------------------------------------------------------------------------------


class FastEmbedProvider(EmbeddingProvider):
    """fastembed (onnxruntime) on this machine; the model loads on first use."""

    name: ClassVar[str] = "fastembed"

    def __init__(
        self,
        model: str,
        dimension: int,
        *,
        model_path: Path | None = None,
        cache_dir: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        threads: int | None = None,
    ) -> None:
        super().__init__(model, dimension)
        self.model_path = model_path
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()

    def load(self) -> Any:
        """Load the model now (otherwise it loads on first embed); returns the engine."""
        engine = self._engine
        if engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._load()
                engine = self._engine
        return engine

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def _load(self) -> Any:
        # Imported before HF_HUB_OFFLINE is set: huggingface_hub reads it at import time,
        # and kite_lab must not switch the user's own hub downloads off for the process.
        from fastembed import TextEmbedding

        kwargs: dict[str, Any] = {"threads": self.threads, "local_files_only": True}
        if self.model_path is not None:
            kwargs["specific_model_path"] = str(self.model_path)
        if self.cache_dir:
            kwargs["cache_dir"] = self.cache_dir
        with _offline():
            try:
                return TextEmbedding(self.model, **kwargs)
            except Exception as exc:  # fastembed raises bare ValueError/RuntimeError/OSError
                raise ConfigError(self._unavailable(exc)) from exc

    def _unavailable(self, exc: BaseException) -> str:
        if self.model_path is not None:
            return (
                f"cannot load the bundled embedding model from {self.model_path} ({exc}); "
                "delete that folder so kite_lab assembles it again"
            )
        where = self.cache_dir or os.environ.get("FASTEMBED_CACHE_PATH") or "fastembed's cache"
        return (
            f"fastembed model {self.model!r} is not available offline in {where} ({exc}). "
            "kite_lab never downloads models at run time. Provide its files once: on a "
            'machine with network access run `python -c "from fastembed import '
            f"TextEmbedding; TextEmbedding('{self.model}', cache_dir='models')\"`, copy the "
            "'models' folder here and set FASTEMBED_CACHE_PATH to it; or unset "
            f"EMBEDDING_MODEL to use the bundled {EMBEDDED_MODEL}"
        )

    def _embed_array(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        engine = self.load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack(list(engine.embed(texts, batch_size=self.batch_size)))


_env_lock = threading.Lock()


class _offline:
    """HF_HUB_OFFLINE=1 while fastembed resolves a model; restored afterwards."""

    def __enter__(self) -> None:
        _env_lock.acquire()
        self._old = os.environ.get("HF_HUB_OFFLINE")
        os.environ["HF_HUB_OFFLINE"] = "1"

    def __exit__(self, *exc: object) -> None:
        if self._old is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = self._old
        _env_lock.release()


def _fastembed_dimension(model: str) -> int:
    from fastembed import TextEmbedding

    for description in TextEmbedding.list_supported_models():
        if description["model"].lower() == model.lower():
            return int(description["dim"])
    raise ConfigError(
        f"unknown fastembed model {model!r}: EMBEDDING_MODEL must be one of "
        "fastembed's TextEmbedding.list_supported_models(), e.g. BAAI/bge-small-en-v1.5, "
        f"or unset to use the bundled {EMBEDDED_MODEL}"
    )


# -- OpenAI ------------------------------------------------------------------------------

#: native sizes; the text-embedding-3 models can return shorter vectors on request
_OPENAI_MODELS = {
    "text-embedding-3-small": (1536, True),
    "text-embedding-3-large": (3072, True),
    "text-embedding-ada-002": (1536, False),
}
OPENAI_DEFAULT_MODEL = "text-embedding-3-small"
_OPENAI_MAX_INPUTS = 2048  # per request, OpenAI's limit


class OpenAIEmbeddingProvider(EmbeddingProvider):
    """OpenAI's (or a compatible server's) /v1/embeddings through the openai SDK."""

    name: ClassVar[str] = "openai"

    def __init__(self, settings: KiteSettings, model: str, dimension: int) -> None:
        super().__init__(model, dimension)
        secret = settings.openai_api_key
        if secret is None or not secret.get_secret_value():
            raise MissingAPIKey("openai (embeddings)", "OPENAI_API_KEY")
        self._settings = settings
        self._api_key = secret.get_secret_value()
        native = _OPENAI_MODELS.get(model)
        #: sent as ``dimensions`` when the model can shorten its vectors to VECTOR_DIMENSION
        self._request_dimensions = dimension if native and native[1] else None
        self._clients: PerLoop[Any] = PerLoop(self._make_client)

    def _make_client(self) -> Any:
        import openai

        return openai.AsyncOpenAI(
            api_key=self._api_key,
            base_url=self._settings.openai_base_url,
            max_retries=self._settings.llm_max_retries,
            timeout=self._settings.llm_timeout,
        )

    async def _aembed_array(self, texts: list[str]) -> np.ndarray:
        import numpy as np
        import openai

        from kite_lab.providers.sdk_errors import map_sdk_error

        rows: list[list[float]] = []
        client = self._clients.get()
        extra = {"dimensions": self._request_dimensions} if self._request_dimensions else {}
        try:
            for start in range(0, len(texts), _OPENAI_MAX_INPUTS):
                part = texts[start : start + _OPENAI_MAX_INPUTS]
                response = await client.embeddings.create(
                    model=self.model, input=part, encoding_format="float", **extra
                )
                data = sorted(response.data, key=lambda item: item.index)
                rows.extend(item.embedding for item in data)
        except Exception as exc:
            raise (map_sdk_error(exc, self.name, openai) or exc) from exc
        if not rows:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(rows, dtype=np.float32)

    async def aclose(self) -> None:
        for client in self._clients.instances():
            try:
                await client.close()
            except RuntimeError:  # its loop is gone
                pass
        self._clients.clear()


# -- the factory ------------------------------------------------------------------------------


def build_embeddings(settings: KiteSettings) -> EmbeddingProvider:
    """The provider EMBEDDING_PROVIDER / EMBEDDING_MODEL name, checked against VECTOR_DIMENSION."""
    wanted = settings.vector_dimension
    if settings.embedding_provider == "openai":
        model = settings.embedding_model
        if is_embedded_model(model):  # EMBEDDING_MODEL left at the fastembed default
            model = OPENAI_DEFAULT_MODEL
        native = _OPENAI_MODELS.get(model)
        if native is not None:
            size, shortenable = native
            if wanted != size and not (shortenable and wanted < size):
                raise _mismatch(model, size, wanted)
        return OpenAIEmbeddingProvider(settings, model, wanted)

    model = settings.embedding_model
    if is_embedded_model(model):
        if wanted != EMBEDDED_DIMENSION:
            raise _mismatch(EMBEDDED_MODEL, EMBEDDED_DIMENSION, wanted)
        folder = ensure_embedded_model(Path(settings.kite_home).expanduser().absolute())
        return FastEmbedProvider(EMBEDDED_MODEL, EMBEDDED_DIMENSION, model_path=folder)
    size = _fastembed_dimension(model)
    if size != wanted:
        raise _mismatch(model, size, wanted)
    return FastEmbedProvider(model, size, cache_dir=settings.fastembed_cache_path)


def _mismatch(model: str, size: int, wanted: int) -> ConfigError:
    return ConfigError(
        f"VECTOR_DIMENSION is {wanted} but embedding model {model!r} produces "
        f"{size}-dimensional vectors: set VECTOR_DIMENSION={size} or choose an "
        f"EMBEDDING_MODEL with {wanted} dimensions"
    )
