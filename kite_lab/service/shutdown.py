"""Graceful shutdown: on SIGTERM/SIGINT, drain in-flight requests, then let uvicorn stop.

Why not uvicorn's own shutdown alone: it closes the listening socket at once, so a
request arriving during shutdown gets "connection refused" rather than an answer, and
a load balancer cannot tell a draining replica from a dead one. Here the first signal
only starts draining: the socket stays open, new requests get 503 with ``Connection:
close`` and ``Retry-After``, in-flight requests run to completion for up to
KITE_SHUTDOWN_GRACE_SECONDS, and only then is uvicorn asked to exit — without re-raising
the signal, so the process exits 0. A second SIGINT forces an immediate exit.

The hook is installed from the app's lifespan when the app runs under uvicorn (the
current SIGTERM handler is a ``uvicorn.Server`` method), so it works with ``kite-lab
serve``, plain ``uvicorn`` and uvicorn's multi-worker supervisor alike; elsewhere (tests
with an ASGI transport) nothing is installed. Idempotency leases still held when the
app shuts down are released, so no key stays "in progress" after the process is gone.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import signal
import threading
import time
from typing import Any

__all__ = ["Drainer"]

log = logging.getLogger("kite_lab.service")

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Drainer:
    """Counts in-flight requests, holds idempotency leases, and drains on a signal."""

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.in_flight = 0
        self.draining = False
        self.drain_started: float | None = None
        self._leases: set[Any] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._previous: dict[int, Any] = {}
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- request bookkeeping (event-loop thread) ----------------------------------------
    def request_started(self) -> None:
        self.in_flight += 1
        if self._idle is not None:
            self._idle.clear()

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0 and self._idle is not None:
            self._idle.set()

    def hold_lease(self, lease: Any) -> None:
        self._leases.add(lease)

    def drop_lease(self, lease: Any) -> None:
        self._leases.discard(lease)

    @property
    def held_leases(self) -> int:
        return len(self._leases)

    def retry_after(self) -> int:
        """Seconds a rejected client should wait (the rest of the grace period, >= 1)."""
        if self.drain_started is None:
            return 1
        left = self.grace_seconds - (time.monotonic() - self.drain_started)
        return max(1, int(left + 0.999))

    # -- signals ---------------------------------------------------------------------------
    def install(self) -> bool:
        """Hook SIGTERM/SIGINT if running under uvicorn in the main thread; else False."""
        if threading.current_thread() is not threading.main_thread():
            return False
        current = signal.getsignal(signal.SIGTERM)
        server = getattr(current, "__self__", None)
        if (
            server is None
            or not hasattr(server, "should_exit")
            or not hasattr(server, "force_exit")
        ):
            return False
        self._server = server
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Event()
        if self.in_flight <= 0:
            self._idle.set()
        for sig in _SIGNALS:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return True

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            try:
                signal.signal(sig, handler)
            except (ValueError, TypeError):  # not the main thread anymore: nothing to undo
                pass
        self._previous.clear()

    def _on_signal(self, sig: int, frame: Any) -> None:
        if self.draining:
            if sig == signal.SIGINT and self._server is not None:  # second Ctrl-C: now
                self._server.force_exit = True
                self._server.should_exit = True
            return
        self.draining = True
        self.drain_started = time.monotonic()
        if self._loop is not None:  # a fresh context: not the interrupted request's id
            self._loop.call_soon_threadsafe(
                self._start_drain, signal.Signals(sig).name, context=contextvars.Context()
            )

    def start_draining(self, reason: str = "requested") -> None:
        """Begin draining without a signal (tests, admin hooks). Idempotent."""
        if not self.draining:
            self.draining = True
            self.drain_started = time.monotonic()
        if self._server is not None and self._task is None:
            self._start_drain(reason)

    def _start_drain(self, reason: str) -> None:
        log.info(
            "shutdown_started",
            extra={
                "event": "shutdown_started",
                "signal": reason,
                "in_flight": self.in_flight,
                "grace_seconds": self.grace_seconds,
            },
        )
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self._idle is not None
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=self.grace_seconds)
            log.info("shutdown_drained", extra={"event": "shutdown_drained"})
        except TimeoutError:
            log.warning(
                "shutdown_grace_expired",
                extra={"event": "shutdown_grace_expired", "in_flight": self.in_flight},
            )
        if self._server is not None:
            self._server.should_exit = True  # uvicorn stops; no signal re-raised: exit 0

    # -- lifespan shutdown ---------------------------------------------------------------
    async def release_leases(self) -> int:
        """Release every idempotency lease still held; returns how many."""
        released = 0
        for lease in list(self._leases):
            try:
                await lease.release()
                released += 1
            except Exception:  # the store may be gone; the lease's TTL will expire it
                log.warning(
                    "idempotency_release_failed",
                    exc_info=True,
                    extra={"event": "idempotency_release_failed"},
                )
            self._leases.discard(lease)
        return released
