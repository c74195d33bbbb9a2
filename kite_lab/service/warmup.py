"""Cold start: load the provider SDK and build every component before serving traffic.

Why: ``Kite`` builds its components on first use, which is right for a notebook but
wrong for a server. Left lazy, the first requests after ``kite-lab serve`` started each
imported SDKs and built stores *on the event loop* (~1.6 s during which nothing else ran),
and requests queued behind them were still unread when SIGTERM came, so they got 503.

So the app's lifespan starts ``warm_up`` as a background task and the port opens at once:

- ``/health`` answers ``"status": "starting"`` with 503 until the warm-up is done (a load
  balancer keeps the replica out of rotation), then the usual healthy/degraded/unhealthy;
- any other request that arrives meanwhile is counted as in flight (so a SIGTERM drains
  it instead of rejecting it) and waits for ``Readiness`` before it touches a component;
- imports and construction run in worker threads (``asyncio.to_thread``), so the loop
  stays free to accept connections; only the per-loop SDK client, which must be created
  on the loop that uses it, is built there — after its imports are done, before ready.

A failing step (no API key, Redis down) is logged and skipped: the replica becomes ready
anyway and answers as it did before (``/health`` unhealthy, a typed error per request).
A step that hangs is abandoned after ``STEP_TIMEOUT`` seconds for the same reason.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kite_lab.kite import Kite
    from kite_lab.providers.base import LLMProvider
    from kite_lab.service.limits import RouteLimits

__all__ = ["Readiness", "warm_up"]

log = logging.getLogger("kite_lab.service")

#: seconds one warm-up step may take before the replica gives up on it and serves anyway
STEP_TIMEOUT = 30.0

#: imported in a worker thread when the matching setting is set (first /health, session)
_BACKEND_MODULES: dict[str, tuple[str, ...]] = {
    "redis_url": ("redis.asyncio",),
    "postgres_url": ("psycopg",),
}
#: what a request's path imports on first use, whatever the provider (anyio loads its
#: socket and memory-stream modules lazily: streaming answers and thread hops need them)
_REQUEST_MODULES = (
    "kite_lab.providers.pricing",
    "fastapi.encoders",
    "encodings.ascii",
    "anyio._core._sockets",
    "anyio._core._streams",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "kite_lab.replay.active",  # every call asks whether a cassette answers it
    "kite_lab.replay.cassette",
)


class Readiness:
    """``starting`` -> ``ready``: what /health reports and what early requests wait for.

    Ready by default, so an app driven without its lifespan (an ASGI test transport)
    behaves as before; the lifespan calls ``begin`` and the warm-up ``set_ready``.
    """

    def __init__(self) -> None:
        self.ready = True
        self.problems: list[str] = []
        self._event: asyncio.Event | None = None

    def begin(self) -> None:
        """Enter ``starting`` (on the loop that will serve the requests)."""
        self.ready = False
        self.problems = []
        self._event = asyncio.Event()

    def set_ready(self) -> None:
        self.ready = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        """Return once ready (at once when it already is)."""
        if not self.ready and self._event is not None:
            await self._event.wait()


async def warm_up(
    kites: Sequence[Kite],
    limits: RouteLimits | None = None,
    extra: Sequence[Callable[[], Any]] = (),
) -> list[str]:
    """Build what the first requests would build, off the loop; the problems met.

    ``extra``: more zero-argument callables to run in a worker thread (the app passes
    its OpenAPI schema builder).
    """
    started = time.perf_counter()
    problems: list[str] = []

    async def step(what: str, func: Callable[[], Any]) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(func), STEP_TIMEOUT)
        except Exception as exc:  # a missing key or a down backend: reported, not fatal
            problems.append(f"{what}: {type(exc).__name__}")
            return None

    try:
        for kite in kites:
            provider = await step("provider", functools.partial(_build_components, kite))
            if provider is not None:
                await step("provider sdk", functools.partial(_load_sdk, provider))
                _client_for_this_loop(provider, problems)
        await step("modules", lambda: _import_modules(kites))
        if limits is not None:
            await limits.warm()
        for func in extra:
            await step(getattr(func, "__name__", "extra"), func)
    finally:
        seconds = time.perf_counter() - started
        log.info(
            "service_ready",
            extra={
                "event": "service_ready",
                "warmup_seconds": round(seconds, 3),
                "warmup_problems": problems,
            },
        )
    return problems


def _build_components(kite: Kite) -> LLMProvider:
    """Worker thread: the configured provider, its breaker, cache, stores and pipeline."""
    first_error: Exception | None = None
    provider: LLMProvider | None = None
    builders: list[Callable[[], Any]] = [
        lambda: kite.pipeline,
        kite.response_cache,
        lambda: kite.idempotency,
        lambda: kite.kill_switch,
        lambda: kite.session_memory,
    ]
    try:
        name = kite.provider_name
        provider = kite.provider(name)
        builders.insert(0, lambda: kite.breaker_for(name))
    except Exception as exc:  # no provider configured: still build the rest
        first_error = exc
    for build in builders:
        try:
            build()
        except Exception as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    assert provider is not None
    return provider


def _load_sdk(provider: LLMProvider) -> None:
    """Worker thread: import the SDK and build (then close) a throwaway client.

    Building one runs the SDK's lazy imports and its one-off set-up (TLS context, the
    resource classes it loads on first attribute access), all off the serving loop. It
    runs on a private loop because SDK clients are bound to the loop they are made on.
    """
    clients = provider._clients  # the provider's per-loop SDK clients (None: no SDK)
    if clients is None:
        return

    async def build_and_close() -> None:
        client = clients.get()
        for path in ("chat.completions.create", "messages.create", "messages.stream"):
            target: Any = client
            for part in path.split("."):
                target = getattr(target, part, None)
                if target is None:
                    break
        close = getattr(client, "close", None)
        if close is not None:
            await close()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(build_and_close())
    finally:
        loop.close()
        clients.clear()  # drop the throwaway; the serving loop gets its own


def _client_for_this_loop(provider: LLMProvider, problems: list[str]) -> None:
    """The serving loop's SDK client, made now (imports done) rather than in a request."""
    clients = provider._clients
    if clients is None:
        return
    try:
        clients.get()
    except Exception as exc:
        problems.append(f"provider client: {type(exc).__name__}")


def _import_modules(kites: Sequence[Kite]) -> None:
    """Worker thread: modules the first request or /health would import."""
    names = list(_REQUEST_MODULES)
    for kite in kites:
        settings = kite.settings
        for setting, modules in _BACKEND_MODULES.items():
            if getattr(settings, setting, None):
                names.extend(modules)
    for name in dict.fromkeys(names):
        try:
            importlib.import_module(name)
        except ImportError:  # an optional extra that is not installed: lazy as before
            pass
