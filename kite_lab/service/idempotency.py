"""``Idempotency-Key`` on POST routes, through ``kite.idempotency`` (memory or Redis).

A client that retries a POST after a timeout must not pay for, or see, two generations.
With the header set:

- first request: a lease is taken on (caller, route, key) with a fingerprint of the body;
  the response (status, content type, body — a streamed SSE body too) is stored when it
  completes, for IDEMPOTENCY_TTL seconds;
- same key, same body, after completion: the stored response is replayed, marked
  ``Idempotent-Replayed: true``; nothing reaches the model;
- same key while the first is still running: 409 with ``Retry-After``;
- same key, different body: 422 (a client bug: keys must not be reused);
- the first request fails with 5xx, 429 or 409, or is cancelled: the lease is released,
  so a retry runs again instead of replaying a failure.

Keys are scoped by the caller's API key id, so one client can never read another's
stored responses. The body fingerprint is the SHA-256 of its canonical JSON, so key order
and whitespace do not matter.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import IdempotencyConflict, IdempotencyInProgress, StoreUnavailable
from kite_lab.core.types import canonical_json
from kite_lab.safety.idempotency import StoredResult
from kite_lab.service.http_errors import HTTPError, http_error_for, send_json

if TYPE_CHECKING:
    from kite_lab.service.state import ServiceState

__all__ = ["run_idempotent"]

log = logging.getLogger("kite_lab.service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_KEY_LENGTH = 255
#: responses larger than this are not stored (the lease is released instead)
MAX_STORED_BYTES = 2_000_000
_REPLAYED_HEADERS = (b"content-type", b"retry-after", b"cache-control")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body; None when the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise _TooLarge
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


def fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        normal = canonical_json(json.loads(body)) if body else ""
    except ValueError:
        normal = body.decode("latin-1")
    return hashlib.sha256(f"{method} {path}\n{normal}".encode()).hexdigest()


async def run_idempotent(
    state: ServiceState,
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    key_id: str | None,
    route: str,
) -> None:
    """Serve one POST, honouring its Idempotency-Key header when present."""
    raw_key = _header(scope, b"idempotency-key")
    if raw_key is None:
        await app(scope, receive, send)
        return
    request_id = scope["state"].get("request_id")
    raw_key = raw_key.strip()
    if not raw_key or len(raw_key) > MAX_KEY_LENGTH or not raw_key.isprintable():
        error = HTTPError(
            422,
            "invalid_idempotency_key",
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
        )
        await send_json(send, 422, error.body(request_id))
        return
    try:
        body = await _read_body(receive, state.max_body_bytes)
    except _TooLarge:
        error = HTTPError(
            413, "request_too_large", f"the request body is over {state.max_body_bytes} bytes"
        )
        await send_json(send, 413, error.body(request_id))
        return
    if body is None:
        return  # the client went away
    operation = f"http:{key_id or 'anonymous'}:{scope['path']}:{raw_key}"
    if len(operation) > 255:
        hashed = hashlib.sha256(f"{scope['path']}:{raw_key}".encode()).hexdigest()
        operation = f"http:{key_id or 'anonymous'}:sha256:{hashed}"
    digest = fingerprint(scope["method"], scope["path"], body)
    manager = state.kite.idempotency
    try:
        begun = await manager.abegin(operation, digest, wait=0)
    except IdempotencyConflict:
        error = HTTPError(
            422,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request body; "
            "use a new key for a new request",
        )
        await send_json(send, 422, error.body(request_id))
        return
    except IdempotencyInProgress:
        error = HTTPError(
            409,
            "idempotency_in_progress",
            "a request with this Idempotency-Key is still being processed; "
            "retry shortly to get its result",
            headers={"Retry-After": "1"},
        )
        await send_json(send, 409, error.body(request_id), error.headers)
        return
    except StoreUnavailable as exc:
        error = http_error_for(exc, state.secrets) or HTTPError(503, "backend_unavailable", "")
        await send_json(send, error.status, error.body(request_id), error.headers)
        return

    if isinstance(begun, StoredResult):
        await _replay(send, begun.value)
        return
    lease = begun
    state.drainer.hold_lease(lease)
    captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray(), "too_big": False}

    async def replay_receive() -> Message:
        nonlocal body
        if body is not None:
            message = {"type": "http.request", "body": body, "more_body": False}
            body = None
            return message
        return await receive()

    completed = False

    async def store() -> None:
        nonlocal completed
        status = captured["status"]
        if status < 500 and status not in (409, 429) and not captured["too_big"]:
            await lease.complete(
                {
                    "status": status,
                    "headers": captured["headers"],
                    "body": bytes(captured["body"]).decode("utf-8", "replace"),
                }
            )
            completed = True

    async def capture_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            captured["status"] = message["status"]
            captured["headers"] = [
                [k.decode("latin-1"), v.decode("latin-1")]
                for k, v in message.get("headers") or ()
                if k.lower() in _REPLAYED_HEADERS
            ]
        elif message["type"] == "http.response.body":
            if not captured["too_big"]:
                captured["body"] += message.get("body", b"")
                if len(captured["body"]) > MAX_STORED_BYTES:
                    captured["too_big"] = True
                    captured["body"] = bytearray()
            if not message.get("more_body", False) and not completed:
                # stored before the client sees the end: a retry it sends next, to any
                # replica, replays this answer instead of meeting "in progress"
                await store()
        await send(message)

    try:
        async with lease.heartbeat():  # long generations keep the lease
            await app(scope, replay_receive, capture_send)
        if not completed:
            await store()
    finally:
        if not completed:
            try:
                await lease.release()
            except Exception:
                log.warning(
                    "idempotency_release_failed",
                    exc_info=True,
                    extra={"event": "idempotency_release_failed"},
                )
        state.drainer.drop_lease(lease)


async def _replay(send: Send, stored: dict[str, Any]) -> None:
    body = str(stored.get("body", "")).encode("utf-8")
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in stored.get("headers", [])]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    await send({"type": "http.response.start", "status": int(stored["status"]), "headers": headers})
    await send({"type": "http.response.body", "body": body})
