"""Cassettes: LLM calls recorded to a JSONL file once, replayed offline ever after.

Why at the pipeline boundary: the pipeline sees every call of every provider (SDK,
local model, streaming or not) as an ``LLMRequest`` and a ``Completion``, so one
recorder covers them all and a replayed call looks to the caller (and to the events,
frames and log) exactly like the recorded one, stream chunks included.

Why the cache key: a request is found by the same canonical key the response cache uses
(``LLMRequest.cache_key``: provider namespace, model, system, messages, tools, tool
choice, parameters), so a call with other parameters is a ``CassetteMiss``, never a
wrong answer.

Why JSONL with sorted keys: one interaction per line, the same text for the same call,
so a re-recorded cassette diffs line by line. No API key, token or ``Authorization``
header is part of a request, and every string is scrubbed of the current secret values
and of anything shaped like a key before it is written.

Modes: ``record`` (always call, write a fresh file), ``replay`` (never call; a request
not recorded raises ``CassetteMiss``), ``once`` (replay what is recorded, call and
append what is not), ``off`` (do nothing). Several answers recorded for one request are
replayed in order; the last one repeats.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, get_args

from kite_lab.core.errors import CassetteError, CassetteMiss, InvalidInput, ProviderError, redact
from kite_lab.core.types import Completion, StreamChunk

if TYPE_CHECKING:
    from kite_lab.providers.base import LLMRequest

__all__ = ["MODES", "Cassette", "CassetteMode", "Interaction", "StreamRecorder"]

CassetteMode = Literal["record", "replay", "once", "off"]
MODES: tuple[str, ...] = get_args(CassetteMode)
F = TypeVar("F", bound=Callable[..., Any])
_CREDENTIAL_KEYS = ("api_key", "apikey", "password", "secret", "authorization", "token")


@dataclass(slots=True)
class Interaction:
    """One recorded call: the request, and its answer (with stream chunks) or its error."""

    key: str
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    chunks: list[tuple[float, str]] | None = None
    error_info: dict[str, Any] | None = None
    line: int = 0

    @property
    def latency_s(self) -> float:
        source = self.response or self.error_info or {}
        return float(source.get("latency_s") or 0.0)

    def completion(self) -> Completion:
        """A fresh copy of the recorded answer (usage, cost and latency as recorded)."""
        assert self.response is not None
        completion = Completion.from_dict(self.response)
        completion.cached = False
        return completion

    def error(self) -> ProviderError | None:
        """The recorded provider error, as the same class, or None for an answer."""
        info = self.error_info
        if info is None:
            return None
        from kite_lab.core import errors

        cls = getattr(errors, str(info.get("type")), None)
        if not (isinstance(cls, type) and issubclass(cls, ProviderError)):
            cls = ProviderError
        kwargs = {"provider": info.get("provider"), "status": info.get("status"),
                  "code": info.get("code"), "retry_after": info.get("retry_after")}
        try:
            return cls(str(info.get("message", "")), **kwargs)
        except TypeError:  # a subclass with its own constructor
            return ProviderError(str(info.get("message", "")), **kwargs)

    async def replay_chunks(self, speed: float = math.inf) -> AsyncIterator[str]:
        """The recorded text pieces in order, spaced as recorded divided by ``speed``."""
        if self.chunks is None:
            text = (self.response or {}).get("text", "")
            if text:
                yield text
            return
        for gap, text in self.chunks:
            if gap > 0 and math.isfinite(speed):
                await asyncio.sleep(gap / speed)
            yield text


class StreamRecorder:
    """Collects a live stream's text pieces, with the seconds since the previous one."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, str]] = []
        self.completion: Completion | None = None
        self._last = time.perf_counter()

    def add(self, chunk: StreamChunk) -> None:
        now = time.perf_counter()
        if chunk.text:
            self.chunks.append((round(now - self._last, 6), chunk.text))
            self._last = now
        if chunk.completion is not None:
            self.completion = chunk.completion


class Cassette:
    """A cassette file and a mode; a context manager, a decorator, or ``start()``/``stop()``.

    >>> with ai.cassette("tests/cassettes/labels.jsonl", mode="once"):
    ...     ai.complete("Label this: ...")
    """

    def __init__(self, path: str | Path, mode: str = "once", *, speed: float = math.inf,
                 stack: list[Cassette] | None = None) -> None:
        if mode not in MODES:
            raise InvalidInput(f"unknown cassette mode {mode!r}; use one of {', '.join(MODES)}")
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not speed > 0:
            raise InvalidInput(f"speed must be a number > 0 (math.inf: instant), not {speed!r}")
        if not str(path).strip():
            raise InvalidInput("pass the cassette's file path, e.g. tests/cassettes/x.jsonl")
        self.path = Path(path)
        self.mode: CassetteMode = cast(CassetteMode, mode)
        #: stream chunks replay with their recorded spacing divided by this (inf: instant)
        self.speed = float(speed)
        self._stack = stack
        self._lock = threading.Lock()
        self._recorded: dict[str, list[Interaction]] = {}
        self._cursor: dict[str, int] = {}
        self._lines = 0
        #: requests answered from the file, and interactions written to it
        self.replayed = self.recorded = 0

    @property
    def size(self) -> int:
        """Interactions held (read from the file or recorded since it was opened)."""
        return sum(len(found) for found in self._recorded.values())

    # -- activation --------------------------------------------------------------------
    def open(self) -> Cassette:
        """Read the file (or start a fresh one in record mode); replays restart at the top."""
        with self._lock:
            self._recorded, self._cursor, self._lines = {}, {}, 0
            self.replayed = self.recorded = 0
            if self.mode == "record":
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text("", encoding="utf-8")
            elif self.mode == "replay" and not self.path.is_file():
                raise CassetteError(
                    "no such cassette; record it first with mode='once' or 'record' "
                    "(KITE_CASSETTE_MODE=once)", path=str(self.path))
            elif self.mode != "off" and self.path.is_file():
                self._load()
        return self

    def start(self) -> Cassette:
        """Open the cassette and make it answer the calls of its Kite (or of the process)."""
        self.open()
        if self._stack is not None:
            self._stack.append(self)
        return self

    def stop(self) -> None:
        if self._stack is not None and self in self._stack:
            self._stack.remove(self)

    def __enter__(self) -> Cassette:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __call__(self, func: F) -> F:
        """Use as a decorator: every call of ``func`` runs with this cassette."""
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await func(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return cast(F, run)

    # -- the pipeline's side -----------------------------------------------------------
    def lookup(self, request: LLMRequest, namespace: str) -> Interaction | None:
        """The recorded interaction for ``request``; None means "call the provider"."""
        if self.mode in ("off", "record"):
            return None
        key = request.cache_key(namespace)
        with self._lock:
            found = self._recorded.get(key)
            if found:
                index = self._cursor.get(key, 0)
                self._cursor[key] = index + 1
                self.replayed += 1
                return found[min(index, len(found) - 1)]
        if self.mode == "replay":
            raise self._miss(key, request, namespace)
        return None

    def recorder(self) -> StreamRecorder:
        return StreamRecorder()

    def record(self, request: LLMRequest, namespace: str, *, completion: Completion | None = None,
               error: BaseException | None = None, chunks: list[tuple[float, str]] | None = None,
               secrets: Iterable[str] = ()) -> None:
        """Append one live interaction (modes record and once); provider errors only."""
        if self.mode not in ("record", "once"):
            return
        if completion is None and not isinstance(error, ProviderError):
            return  # breaker rejections, cancellations...: the pipeline's, not the provider's
        secret_list = [s for s in secrets if s]
        key = request.cache_key(namespace)
        line: dict[str, Any] = {"key": key, "request": request.fingerprint_fields(namespace)}
        if completion is not None:
            response = completion.to_dict()
            response.pop("cached", None)
            line["response"] = response
            if chunks is not None:
                line["chunks"] = [[gap, text] for gap, text in chunks]
        else:
            assert isinstance(error, ProviderError)
            line["error"] = {"type": type(error).__name__, "message": error.message,
                             "provider": error.provider, "status": error.status,
                             "code": error.code, "retry_after": error.retry_after}
        text = json.dumps(_clean(line, secret_list), sort_keys=True, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(text + "\n")
            self._lines += 1
            self.recorded += 1
            interaction = _interaction(json.loads(text), self._lines, self.path)
            self._recorded.setdefault(key, []).append(interaction)
            self._cursor[key] = len(self._recorded[key])  # already answered live

    # -- internals ---------------------------------------------------------------------
    def _load(self) -> None:
        with self.path.open(encoding="utf-8") as file:
            for number, raw in enumerate(file, start=1):
                self._lines = number
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise CassetteError(
                        f"not a JSON object ({exc.msg}); fix or delete the line, or re-record "
                        "the cassette with mode='record'", path=str(self.path), line=number
                    ) from None
                interaction = _interaction(data, number, self.path)
                self._recorded.setdefault(interaction.key, []).append(interaction)

    def _miss(self, key: str, request: LLMRequest, namespace: str) -> CassetteMiss:
        users = [m.content for m in request.messages if m.role == "user"]
        head = (users[-1] if users else "")[:60]
        hint = ""
        wanted = request.fingerprint_fields(namespace)
        for recorded in (i[0] for i in self._recorded.values()):
            same = all(recorded.request.get(f) == json.loads(json.dumps(wanted[f], default=str))
                       for f in ("model", "messages"))
            if same:
                differ = [f for f in ("provider", "system", "tools", "tool_choice", "params")
                          if recorded.request.get(f) != json.loads(json.dumps(wanted[f]))]
                hint = (f" A recording of the same messages (line {recorded.line}) differs in: "
                        f"{', '.join(differ) or 'nothing visible'}.")
                break
        return CassetteMiss(
            f"no recorded answer for request {key} (model {request.model}, prompt {head!r}) "
            f"in mode {self.mode!r}.{hint} Record it with mode='once' (KITE_CASSETTE_MODE=once) "
            "or re-record the cassette with mode='record'",
            path=str(self.path), request_hash=key, model=request.model, prompt_head=head)

    def __repr__(self) -> str:
        return (f"Cassette({str(self.path)!r}, mode={self.mode!r}, replayed={self.replayed}, "
                f"recorded={self.recorded})")


def _interaction(data: Any, line: int, path: Path) -> Interaction:
    def bad(what: str) -> CassetteError:
        return CassetteError(f"{what}; fix or delete the line, or re-record the cassette",
                             path=str(path), line=line)

    if not isinstance(data, dict) or not isinstance(data.get("key"), str):
        raise bad("an interaction needs a string 'key'")
    if not isinstance(data.get("request"), dict):
        raise bad("an interaction needs a 'request' object")
    response, error = data.get("response"), data.get("error")
    if not isinstance(response, dict) and not isinstance(error, dict):
        raise bad("an interaction needs a 'response' or an 'error' object")
    if isinstance(response, dict):
        try:
            Completion.from_dict(response)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"the response cannot be read ({type(exc).__name__}: {exc})") from None
    chunks = data.get("chunks")
    pieces = None
    if chunks is not None:
        try:
            pieces = [(float(gap), str(text)) for gap, text in chunks]
        except (TypeError, ValueError):
            raise bad("'chunks' must be a list of [seconds, text] pairs") from None
    return Interaction(key=data["key"], request=data["request"], response=response,
                       chunks=pieces, error_info=error, line=line)


def _clean(value: Any, secrets: list[str]) -> Any:
    """A copy with every string scrubbed of secrets; credential-named fields dropped."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {str(k): ("***" if any(w in str(k).lower() for w in _CREDENTIAL_KEYS)
                         and isinstance(v, str) and v else _clean(v, secrets))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item, secrets) for item in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return _clean(to_dict(), secrets)
    return value
