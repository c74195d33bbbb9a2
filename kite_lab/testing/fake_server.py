"""A scripted, in-process fake of the OpenAI and Anthropic HTTP APIs.

Why a real HTTP server rather than mocking the SDKs: the code under test (and
users' code) talks to providers through the real ``openai``/``anthropic`` SDKs,
whose retries, timeouts, streaming parsers and error classes are exactly what
we need to exercise. Serving genuine wire traffic on ``127.0.0.1`` tests all of
that, with no network and no API keys.

The server runs an asyncio loop in one daemon thread; every connection is a
coroutine and injected latency is an ``asyncio.sleep``, so a thousand slow
concurrent requests cost a thousand small tasks, not a thousand threads.
Scripting (``enqueue``/``set_handler``/``latency``) and inspection
(``requests``) are thread-safe and may be used from any thread or event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeAlias

from . import _anthropic_wire, _openai_wire
from ._http import Exchange, HttpRequest, serve_connection
from ._models import Fault, RecordedRequest, Reply, Wire
from ._structured import sample_for_schema
from ._wire import JSON_HEADERS, SSE_HEADERS, WireFormat, dumps, new_id

__all__ = ["FakeLLMServer", "Handler", "HandlerResult"]

log = logging.getLogger(__name__)

HandlerResult: TypeAlias = Reply | Fault | str
Handler: TypeAlias = Callable[[RecordedRequest], HandlerResult | Awaitable[HandlerResult]]

_START_TIMEOUT = 10.0
_BACKLOG = 4096  # 1,000 simultaneous connects must not overflow the accept queue


@dataclass(frozen=True)
class _Route:
    method: str
    wire: Wire


_ROUTES = {
    "/v1/chat/completions": _Route("POST", "openai"),
    "/v1/messages": _Route("POST", "anthropic"),
    "/v1/embeddings": _Route("POST", "embeddings"),
    "/v1/models": _Route("GET", "other"),
}
_LLM_WIRES: dict[str, WireFormat] = {
    "openai": _openai_wire.OpenAIWire(),
    "anthropic": _anthropic_wire.AnthropicWire(),
}


class FakeLLMServer:
    """Fake OpenAI + Anthropic endpoints on ``127.0.0.1`` with scripted answers.

    Each chat-completions / messages request consumes the next enqueued
    :class:`Reply` or :class:`Fault`; when the queue is empty the handler set
    with :meth:`set_handler` decides, and without one the server answers
    ``"Echo: <last user message>"``. Use as a context manager or call
    :meth:`start`/:meth:`stop`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._requested_port = port
        self._lock = threading.Lock()  # guards the scripting/recording state below
        self._queue: deque[Reply | Fault] = deque()
        self._handler: Handler | None = None
        self._latency = 0.0
        self._requests: list[RecordedRequest] = []
        self._lifecycle = threading.Lock()  # serialises start()/stop()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_event: asyncio.Event | None = None
        self._port: int | None = None

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral port and serve from a daemon thread (no-op if running)."""
        with self._lifecycle:
            if self._thread is not None:
                return self
            ready = threading.Event()
            failure: list[BaseException] = []
            thread = threading.Thread(
                target=self._run, args=(ready, failure), name="kite-lab-fake-llm", daemon=True
            )
            thread.start()
            if not ready.wait(_START_TIMEOUT):
                raise RuntimeError("fake LLM server did not start in time")
            if failure:
                thread.join()
                raise failure[0]
            self._thread = thread
            return self

    def stop(self) -> None:
        """Close every connection and stop the loop thread. Safe to call repeatedly."""
        with self._lifecycle:
            thread, loop, stop_event = self._thread, self._loop, self._stop_event
            if thread is None or loop is None or stop_event is None:
                return
            with contextlib.suppress(RuntimeError):  # loop already gone
                loop.call_soon_threadsafe(stop_event.set)
            if threading.current_thread() is not thread:
                thread.join(_START_TIMEOUT)
            self._thread = self._loop = self._stop_event = None
            self._port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None

    @property
    def port(self) -> int:
        """The bound TCP port (raises if the server is not running)."""
        if self._port is None:
            raise RuntimeError("FakeLLMServer is not running; call start() or use `with`")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` -- the root every endpoint hangs off."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """Pass to ``openai.OpenAI(base_url=...)`` (the SDK appends ``/chat/completions``)."""
        return f"{self.base_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Pass to ``anthropic.Anthropic(base_url=...)`` (the SDK appends ``/v1/messages``)."""
        return self.base_url

    # -- scripting -----------------------------------------------------------------

    def enqueue(self, *actions: Reply | Fault | str) -> None:
        """Queue responses, consumed FIFO one per LLM request (a str means ``Reply(text=...)``)."""
        items = [_coerce(action) for action in actions]
        with self._lock:
            self._queue.extend(items)

    def set_handler(self, handler: Handler | None) -> None:
        """Answer requests with ``handler(request)`` once the queue is empty.

        The handler runs on the server's loop thread: it may be ``async``, and a
        blocking handler stalls every connection. If it raises, the client gets
        a 500 whose message names the exception.
        """
        with self._lock:
            self._handler = handler

    @property
    def pending(self) -> int:
        """How many enqueued responses have not been consumed yet."""
        with self._lock:
            return len(self._queue)

    @property
    def latency(self) -> float:
        """Seconds slept before every LLM response without its own ``latency``."""
        return self._latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self._latency = float(seconds)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self._requests.clear()

    def reset(self) -> None:
        """Clear the queue, the handler, the latency and the recorded requests."""
        with self._lock:
            self._queue.clear()
            self._handler = None
            self._requests.clear()
        self._latency = 0.0

    # -- serving (loop thread) -----------------------------------------------------

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        try:
            asyncio.run(self._serve(ready))
        except BaseException as exc:  # reported to start()
            failure.append(exc)
            ready.set()

    async def _serve(self, ready: threading.Event) -> None:
        connections: set[asyncio.Task[Any]] = set()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            connections.add(task)
            try:
                await serve_connection(reader, writer, self._app)
            except asyncio.CancelledError:
                # Shutdown. Swallowed because Python 3.11's stream callback logs a
                # spurious traceback for a connection task that ends cancelled.
                pass
            finally:
                connections.discard(task)

        server = await asyncio.start_server(
            on_connect, self._host, self._requested_port, backlog=_BACKLOG
        )
        self._port = server.sockets[0].getsockname()[1]
        self._loop, self._stop_event = asyncio.get_running_loop(), asyncio.Event()
        ready.set()
        try:
            await self._stop_event.wait()
        finally:
            server.close()
            for task in list(connections):
                task.cancel()
            await asyncio.gather(*connections, return_exceptions=True)
            await server.wait_closed()

    async def _app(self, http: HttpRequest, exchange: Exchange) -> None:
        path, _, query = http.target.partition("?")
        route = _ROUTES.get(path.rstrip("/") or "/")
        request = RecordedRequest(
            method=http.method,
            path=path,
            headers=http.headers,
            json=_parse_json(http.body),
            body=http.body,
            wire=route.wire if route else "other",
            query=query,
        )
        with self._lock:
            self._requests.append(request)
        anthropic_client = "anthropic-version" in http.headers

        if route is None or route.method != http.method:
            status = 404 if route is None else 405
            if anthropic_client:
                body = _anthropic_wire.not_found_body(http.method, path, new_id("req_"))
            else:
                body = _openai_wire.not_found_body(http.method, path)
            await exchange.send(status, JSON_HEADERS, dumps(body))
        elif route.wire in _LLM_WIRES:
            await self._serve_llm(_LLM_WIRES[route.wire], request, exchange)
        elif route.wire == "embeddings":
            status, body = _openai_wire.embeddings_response(request)
            await exchange.send(status, JSON_HEADERS, dumps(body))
        elif anthropic_client:
            await exchange.send(200, JSON_HEADERS, dumps(_anthropic_wire.models_response()))
        else:
            await exchange.send(200, JSON_HEADERS, dumps(_openai_wire.models_response()))

    async def _serve_llm(
        self, wire: WireFormat, request: RecordedRequest, exchange: Exchange
    ) -> None:
        # A request the real API would reject is answered 400 without using the script.
        action = wire.validate(request) or await self._next_action(request)
        latency = action.latency if action.latency is not None else self._latency
        if latency > 0:
            await asyncio.sleep(latency)

        request_id = new_id("req_")
        headers = {wire.request_id_header: request_id}
        if isinstance(action, Fault):
            await _send_fault(wire, action, request, exchange, headers, request_id)
        elif request.stream:
            await exchange.stream(200, {**SSE_HEADERS, **headers}, wire.stream(action, request))
        else:
            body = dumps(wire.completion(action, request))
            await exchange.send(200, {**JSON_HEADERS, **headers}, body)

    async def _next_action(self, request: RecordedRequest) -> Reply | Fault:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            handler = self._handler
        if handler is None:
            return _default_reply(request)
        try:
            result = handler(request)
            if inspect.isawaitable(result):
                result = await result
            return _coerce(result)
        except Exception as exc:
            log.exception("fake LLM server: handler failed")
            return Fault(status=500, message=f"fake LLM server handler raised {exc!r}")


async def _send_fault(
    wire: WireFormat,
    fault: Fault,
    request: RecordedRequest,
    exchange: Exchange,
    headers: dict[str, str],
    request_id: str,
) -> None:
    if fault.drop_connection:
        exchange.drop()
        return
    status = fault.effective_status
    if fault.retry_after is not None:
        headers["retry-after"] = f"{fault.retry_after:g}"
        headers["retry-after-ms"] = str(round(fault.retry_after * 1000))
    headers.update({k.lower(): v for k, v in (fault.headers or {}).items()})
    kind = fault.malformed_kind
    if kind is None:
        body = dumps(wire.error_body(fault, status, request_id))
        await exchange.send(status, {**JSON_HEADERS, **headers}, body)
    elif request.stream and status == 200:
        await exchange.stream(status, {**SSE_HEADERS, **headers}, [wire.malformed(kind, True)])
    else:
        await exchange.send(status, {**JSON_HEADERS, **headers}, wire.malformed(kind, False))


def _default_reply(request: RecordedRequest) -> Reply:
    """Unscripted: an answer that fits the requested schema, else an echo."""
    schema = request.response_schema
    if schema is not None:
        return Reply.json_answer(sample_for_schema(schema))
    return Reply(text=f"Echo: {request.last_user_text}")


def _coerce(action: object) -> Reply | Fault:
    if isinstance(action, Reply | Fault):
        return action
    if isinstance(action, str):
        return Reply(text=action)
    raise TypeError(f"expected Reply, Fault or str, got {type(action).__name__}")


def _parse_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
