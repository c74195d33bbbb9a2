"""The service's outer ASGI middleware: request id, drain gate, auth, rate limit, telemetry.

Why one pure-ASGI class rather than a stack of ``BaseHTTPMiddleware``: every request
passes here, so it must cost microseconds and must not buffer streamed (SSE) responses.
The order of checks is the contract:

1. a request id (the client's ``X-Request-ID`` when well-formed, else a new one) is set
   in a contextvar for every log line and returned in the ``X-Request-ID`` header;
2. while draining for shutdown, every request gets 503 + ``Connection: close``;
   a request that got past this point is in flight: the drain waits for it;
3. while the replica is still starting (``kite_lab.service.warmup``), every route but
   /health and /metrics waits here until the provider and components are loaded;
4. auth (every route except /health, and /metrics when KITE_METRICS_PUBLIC is true);
5. the per-route rate limit (API key, else client IP) with ``X-RateLimit-*`` headers;
6. the Idempotency-Key handling for POST routes (``kite_lab.service.idempotency``);
7. the app. An unexpected exception becomes a JSON 500 with the request id.

``http:start`` and ``http:request`` events go to the event bus, where metrics and the
access log pick them up.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from kite_lab.observability.logging import request_id_var
from kite_lab.service.http_errors import HTTPError, send_json
from kite_lab.service.idempotency import run_idempotent

if TYPE_CHECKING:
    from kite_lab.service.state import ServiceState

__all__ = ["ServiceMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("kite_lab.service")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
#: routes answered while the replica is still starting (they touch no component)
_NO_WAIT = frozenset({"/health", "/metrics"})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class ServiceMiddleware:
    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = self.state
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        route = state.routes.route_of(scope["path"])
        method = scope["method"]
        extra_headers: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode())]
        status = 500
        started = time.perf_counter()
        response_started = False
        bus = state.kite.event_bus

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = list(message.get("headers") or ()) + extra_headers
            await send(message)

        state.drainer.request_started()
        bus.emit("http:start", method=method, route=route, request_id=request_id)
        scope.setdefault("state", {})
        scope["state"]["request_id"] = request_id
        try:
            error, key_id = await self._gate(scope, route, method, extra_headers)
            if error is not None:
                await send_json(send_wrapper, error.status, error.body(request_id), error.headers)
                return
            scope["state"]["key_id"] = key_id
            if method == "POST" and state.idempotency_enabled:
                await run_idempotent(state, self.app, scope, receive, send_wrapper, key_id, route)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled_error", extra={"event": "unhandled_error", "route": route})
            if not response_started:
                body = HTTPError(500, "internal_error", "internal error; quote the request id")
                await send_json(send_wrapper, 500, body.body(request_id))
        finally:
            state.drainer.request_finished()
            bus.emit(
                "http:request",
                method=method,
                route=route,
                status=status,
                duration_s=time.perf_counter() - started,
                request_id=request_id,
                key_id=scope["state"].get("key_id"),
                prompt=scope["state"].get("prompt"),
            )
            request_id_var.reset(token)

    async def _gate(
        self, scope: Scope, route: str, method: str, extra_headers: list[tuple[bytes, bytes]]
    ) -> tuple[HTTPError | None, str | None]:
        """Drain gate, auth and rate limit: an error to send, else the caller's key id."""
        state = self.state
        if state.drainer.draining:
            return HTTPError(
                503,
                "shutting_down",
                "this replica is shutting down; retry on another",
                headers={"Retry-After": str(state.drainer.retry_after()), "Connection": "close"},
            ), None
        if not state.readiness.ready and route not in _NO_WAIT:
            await state.readiness.wait()
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > state.max_body_bytes:
            return HTTPError(
                413, "request_too_large", f"the request body is over {state.max_body_bytes} bytes"
            ), None
        key_id: str | None = None
        if state.auth.enabled and not state.is_public(route):
            key_id = state.auth.authenticate(_header(scope, b"authorization"))
            if key_id is None:
                return HTTPError(
                    401,
                    "unauthorized",
                    "missing or invalid API key; send 'Authorization: Bearer <key>'",
                    headers={"WWW-Authenticate": 'Bearer realm="kite"'},
                ), None
        limit = state.limits.for_route(route, method)
        if limit is not None:
            client = f"key:{key_id}" if key_id else f"ip:{state.limits.client_ip(scope)}"
            result = await limit.hit(client)
            extra_headers.extend(result.headers())
            if not result.allowed:
                state.kite.event_bus.emit(
                    "ratelimit:rejected", limit=limit.spec, key=client, route=route
                )
                error = HTTPError(
                    429,
                    "rate_limited",
                    f"rate limit {limit.spec} exceeded; retry in {result.retry_after_seconds} s",
                    headers={"Retry-After": str(result.retry_after_seconds)},
                )
                return error, key_id
        return None, key_id
