"""``GET /health``: what a load balancer, Docker's HEALTHCHECK and an operator need.

    {"status": "starting|healthy|degraded|unhealthy", "circuit_breaker": "closed",
     "llm_provider": "openai", "model": "gpt-4o-mini", "redis": "ok|down|unused",
     "postgres": "ok|down|unused", "kill_switch": false, "version": "0.1.0"}

- starting (HTTP 503): the replica is still loading its provider SDK and components
  (``kite_lab.service.warmup``); requests sent now wait for it rather than fail. The
  answer touches no component, so it costs nothing on the event loop; breaker and
  backends read "unknown" until the warm-up is done.
- unhealthy (HTTP 503): the replica cannot answer anything useful — no provider
  configured, kill switch active, or shutting down. Load balancers should skip it.
- degraded (HTTP 200): it answers, but on a fallback or fails fast — a shared backend
  (Redis, Postgres) is down so components run on their local fallback, or the breaker is
  not closed. Taking it out of rotation would not help.
- healthy (HTTP 200) otherwise.

Backend probes are cached for a couple of seconds so a scraping load balancer cannot
turn /health into a load test of Redis and Postgres. Nothing secret is ever included:
no URL, no key, no error text.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kite_lab.kite import Kite
    from kite_lab.service.shutdown import Drainer
    from kite_lab.service.warmup import Readiness

__all__ = ["HealthChecker"]

PROBE_TIMEOUT = 1.5
CACHE_SECONDS = 2.0


class HealthChecker:
    """Builds the /health body and status for one app's ``Kite``."""

    def __init__(self, kite: Kite, drainer: Drainer, readiness: Readiness) -> None:
        self._kite = kite
        self._drainer = drainer
        self._readiness = readiness
        self._cache: dict[str, tuple[float, str]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def check(self) -> tuple[dict[str, Any], int]:
        if not self._readiness.ready:
            return self._starting(), 503
        from kite_lab._version import __version__

        kite = self._kite
        settings = kite.settings
        reasons: list[str] = []
        provider: str | None
        model: str | None
        try:
            provider, model = kite.resolve()
            kite.provider(provider)  # a missing key fails here, before any call
        except Exception as exc:  # no provider configured: say which kind, never details
            provider = settings.llm_provider
            model = settings.llm_model
            reasons.append(f"llm provider not usable ({type(exc).__name__})")
        breaker_state = "unknown"
        if provider is not None:
            try:
                breaker_state = str(getattr(kite.breaker_for(provider).state, "value", "unknown"))
            except Exception:
                breaker_state = "unknown"
        kill_switch = await self._kill_switch_active()
        redis_status, postgres_status = await asyncio.gather(
            self._probe("redis", settings.redis_url, _ping_redis),
            self._probe("postgres", settings.postgres_url, _ping_postgres),
        )
        unhealthy = bool(reasons)
        if kill_switch:
            reasons.append("kill switch active")
            unhealthy = True
        if self._drainer.draining:
            reasons.append("shutting down")
            unhealthy = True
        degraded = False
        for name, status in (("redis", redis_status), ("postgres", postgres_status)):
            if status == "down":
                reasons.append(f"{name} unreachable: running on the local fallback")
                degraded = True
        if breaker_state not in ("closed", "unknown"):
            reasons.append(f"circuit breaker {breaker_state}")
            degraded = True
        status = "unhealthy" if unhealthy else "degraded" if degraded else "healthy"
        body = {
            "status": status,
            "circuit_breaker": breaker_state,
            "llm_provider": provider,
            "model": model,
            "redis": redis_status,
            "postgres": postgres_status,
            "kill_switch": kill_switch,
            "version": __version__,
            "reasons": reasons,
        }
        return body, 503 if unhealthy else 200

    def _starting(self) -> dict[str, Any]:
        from kite_lab._version import __version__

        settings = self._kite.settings
        reasons = ["starting: loading the provider SDK and components"]
        if self._drainer.draining:
            reasons.append("shutting down")
        return {
            "status": "starting",
            "circuit_breaker": "unknown",
            "llm_provider": settings.llm_provider,
            "model": settings.llm_model,
            "redis": "unknown" if settings.redis_url else "unused",
            "postgres": "unknown" if settings.postgres_url else "unused",
            "kill_switch": False,
            "version": __version__,
            "reasons": reasons,
        }

    async def _kill_switch_active(self) -> bool:
        try:
            switch = self._kite.kill_switch
            checker = getattr(switch, "ais_active", None)
            if checker is not None:
                return bool(await asyncio.wait_for(checker(), PROBE_TIMEOUT))
            if switch.backend == "memory":
                return bool(switch.is_active)
            # the sync property reads Redis through kite_lab's loop: keep ours free
            read = asyncio.to_thread(lambda: bool(switch.is_active))
            return await asyncio.wait_for(read, PROBE_TIMEOUT)
        except Exception:  # its store is down: the switch cannot be read, not "active"
            return False

    async def _probe(self, name: str, url: str | None, ping: Any) -> str:
        if not url:
            return "unused"
        cached = self._cache.get(name)
        now = time.monotonic()
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            cached = self._cache.get(name)
            if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
            try:
                await asyncio.wait_for(ping(url), PROBE_TIMEOUT)
                result = "ok"
            except Exception:
                result = "down"
            self._cache[name] = (time.monotonic(), result)
            return result


async def _ping_redis(url: str) -> None:
    from kite_lab.backends.redis_client import redis_client

    await redis_client(url).ping()


async def _ping_postgres(url: str) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://").replace(
        "postgres+psycopg://", "postgresql://"
    )
    conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=2)
    try:
        await conn.execute("SELECT 1")
    finally:
        await conn.close()
