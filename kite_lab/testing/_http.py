"""A minimal asyncio HTTP/1.1 server built on h11.

Why not ``http.server``: it needs a thread per connection, and the fake server
must hold a thousand concurrent, deliberately slow requests. Why not an ASGI
server: ``kite_lab.testing`` may only depend on the stdlib and h11 (already
pulled in by httpx), so that shipping the fake in the package costs nothing.

h11 does the protocol bookkeeping (keep-alive, chunked transfer encoding for
streamed SSE bodies, ``Connection: close``); this module only moves bytes and
offers the application a small :class:`Exchange` object per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

import h11

__all__ = ["Exchange", "HttpRequest", "serve_connection"]

log = logging.getLogger(__name__)

_READ_SIZE = 65536
_SERVER_NAME = b"kite-lab-fake-llm"


@dataclass(frozen=True)
class HttpRequest:
    """A fully read request: lower-case header names, repeated headers joined by ", "."""

    method: str
    target: str
    headers: dict[str, str]
    body: bytes


class ClientGone(Exception):
    """The peer closed the connection while we were answering."""


class Exchange:
    """The response side of one request: send a body, stream one, or hang up."""

    def __init__(self, conn: h11.Connection, writer: asyncio.StreamWriter) -> None:
        self._conn = conn
        self._writer = writer
        self.dropped = False

    async def send(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Send a complete response with a ``content-length`` in a single write."""
        head = self._head(status, {**headers, "content-length": str(len(body))})
        data = self._conn.send(h11.Data(data=body)) if body else b""
        await self._write(head + (data or b"") + (self._conn.send(h11.EndOfMessage()) or b""))

    async def stream(
        self, status: int, headers: Mapping[str, str], chunks: Iterable[bytes]
    ) -> None:
        """Send a response whose body is written piece by piece (chunked encoding).

        Each piece is flushed separately so clients really parse a byte stream.
        """
        await self._write(self._head(status, headers))
        for chunk in chunks:
            await self._write(self._conn.send(h11.Data(data=chunk)) or b"")
        await self._write(self._conn.send(h11.EndOfMessage()) or b"")

    def drop(self) -> None:
        """Close the socket without a response (the client sees a disconnect)."""
        self.dropped = True
        self._writer.close()

    def _head(self, status: int, headers: Mapping[str, str]) -> bytes:
        pairs = [(b"date", _http_date()), (b"server", _SERVER_NAME)]
        pairs.extend((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
        return self._conn.send(h11.Response(status_code=status, headers=pairs)) or b""

    async def _write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise ClientGone
        if data:
            self._writer.write(data)
            await self._writer.drain()


_date_cache: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The ``date`` header value, formatted at most once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode())
    return _date_cache[1]


App = Callable[[HttpRequest, Exchange], Awaitable[None]]


async def serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, app: App
) -> None:
    """Serve keep-alive requests on one connection until either side closes it."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            try:
                request = await _read_request(conn, reader, writer)
            except h11.RemoteProtocolError as exc:
                await _send_bad_request(conn, writer, exc)
                return
            if request is None:
                return
            exchange = Exchange(conn, writer)
            await app(request, exchange)
            if exchange.dropped or conn.our_state is not h11.DONE:
                return
            try:
                conn.start_next_cycle()
            except h11.LocalProtocolError:  # e.g. Connection: close, or HTTP/1.0
                return
    except (ClientGone, ConnectionError, asyncio.IncompleteReadError):
        pass  # the client hung up (timeouts, cancelled streams): nothing to report
    except Exception:  # pragma: no cover - a server bug must not kill the loop
        log.exception("fake LLM server: error while serving a connection")
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> HttpRequest | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                writer.write(
                    conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
                )
            conn.receive_data(await reader.read(_READ_SIZE))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return HttpRequest(
                method=head.method.decode("ascii"),
                target=head.target.decode("latin-1"),
                headers=_header_dict(head.headers),
                body=bytes(body),
            )
        else:  # ConnectionClosed, or PAUSED after a protocol switch we never accept
            return None


def _header_dict(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


async def _send_bad_request(
    conn: h11.Connection, writer: asyncio.StreamWriter, exc: h11.RemoteProtocolError
) -> None:
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = f"Bad request: {exc}".encode()
    with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
        response = h11.Response(status_code=exc.error_status_hint, headers=headers)
        for event in (response, h11.Data(data=body), h11.EndOfMessage()):
            writer.write(conn.send(event) or b"")
        await writer.drain()
