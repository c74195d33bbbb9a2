"""Helpers of the gateway tests: a real ``kite-lab serve`` in front of fake upstreams.

The service runs in its own process (``conftest.ServiceProcess``); the fake OpenAI and
Anthropic upstreams run in this test process; clients are the real openai SDK and curl.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from conftest import FAKE_KEY, SERVICE_KEY, ServiceProcess

ANTHROPIC_KEY = "sk-ant-test-FAKEKEY0123456789abcdef"
GROQ_KEY = "gsk_test_FAKEKEY0123456789abcdef"
OTHER_KEY = "svc-key-other-0123456789-abcdefghij"
#: variables of the developer's shell that would leak into the service process
_DROPPED = (
    "LLM_PROVIDER",
    "LLM_MODEL",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "GROQ_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "GROQ_BASE_URL",
    "OLLAMA_BASE_URL",
    "REDIS_URL",
    "POSTGRES_URL",
    "CACHE_BACKEND",
    "BREAKER_BACKEND",
    "IDEMPOTENCY_BACKEND",
    "KITE_HOME",
    "KITE_API_KEYS",
    "KITE_API_KEYS_FILE",
    "KITE_RATE_LIMIT",
    "LOCAL_MODEL_PATH",
    "EMBEDDING_PROVIDER",
    "EMBEDDING_MODEL",
    "VECTOR_DIMENSION",
    "KITE_REDIS_PREFIX",
    "PROMETHEUS_MULTIPROC_DIR",
    "KITE_FALLBACKS",
    "KITE_KEY_BUDGETS",
    "KITE_MODEL_ALIASES",
)


def gateway_env(openai_url: str, anthropic_url: str, home: Path, **extra: str) -> dict[str, str]:
    """A service environment: openai + anthropic on fake upstreams, bearer keys on."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED}
    env.update(
        LLM_PROVIDER="openai",
        LLM_MODEL="gpt-4o-mini",
        OPENAI_API_KEY=FAKE_KEY,
        OPENAI_BASE_URL=openai_url,
        ANTHROPIC_API_KEY=ANTHROPIC_KEY,
        ANTHROPIC_BASE_URL=anthropic_url,
        KITE_HOME=str(home / "kite_home"),
        KITE_API_KEYS=f"{SERVICE_KEY},{OTHER_KEY}",
        KITE_RATE_LIMIT="off",
        CACHE_BACKEND="none",
        KITE_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def running_service(env: dict[str, str], cwd: Path, name: str = "gateway") -> Iterator[Any]:
    service = ServiceProcess(env, cwd, name=name)
    try:
        yield service.wait_ready()
    finally:
        service.stop()


def openai_client(service: Any, key: str = SERVICE_KEY, **kwargs: Any) -> Any:
    import openai

    return openai.OpenAI(
        base_url=service.url + "/v1", api_key=key, max_retries=0, timeout=60, **kwargs
    )


def async_openai_client(service: Any, key: str = SERVICE_KEY) -> Any:
    import openai

    return openai.AsyncOpenAI(base_url=service.url + "/v1", api_key=key, max_retries=0, timeout=60)


def log_events(service: Any, event: str) -> list[dict[str, Any]]:
    """The service's JSON log lines whose ``event`` is ``event``."""
    found = []
    for line in service.log().splitlines():
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if data.get("event") == event:
                found.append(data)
    return found


class CuttingUpstream:
    """An OpenAI-compatible upstream whose streams break off after ``pieces`` chunks.

    It answers every request with a chunked SSE body and closes the socket without the
    last chunk: what a provider (or a proxy) that dies mid-answer looks like.
    """

    def __init__(self, pieces: tuple[str, ...] = ("Hel", "lo")) -> None:
        self.pieces = pieces
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for piece in self.pieces:
            event = {
                "id": "chatcmpl-cut",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "cut",
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            data = f"data: {json.dumps(event)}\n\n".encode()
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.close()  # no terminating chunk, no [DONE]: the stream is cut

    def __enter__(self) -> CuttingUpstream:
        async def start() -> None:
            self._server = await asyncio.start_server(self._handle, sock=self._sock)

        self._thread.start()
        asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
