"""Per-route rate limits for the service, keyed by API key or client IP.

The counting is ``kite_lab.safety.rate_limit.RateLimiter``: on Redis when REDIS_URL is
set, so every replica shares one budget per client ("10/minute" means 10 across the
fleet), in process memory otherwise.

KITE_RATE_LIMIT is the default for every POST route (the guide's "10/minute"); routes
can differ: ``KITE_RATE_LIMIT="10/minute, /chat=30/minute, /agents/{name}/run=5/minute"``
or ``create_app(rate_limits={"/chat": "30/minute"})``; ``off`` disables a limit.

Client IP: the socket peer, unless the peer is in KITE_TRUSTED_PROXIES (IPs or CIDRs);
then the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy.
A client can therefore never pick its own rate-limit bucket by sending the header.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import ConfigError

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings

__all__ = ["LimitDecision", "RouteLimit", "RouteLimits", "parse_rate_limits"]

#: routes rate-limited by default (POST only): the ones that spend provider money
LIMITED_ROUTES = ("/complete", "/chat", "/agents/{name}/run")
_OFF = {"off", "none", "unlimited", "0", ""}
#: what the limiter imports on its first hit, loaded in a worker thread by ``warm``
_STORAGE_MODULES = ("limits.storage", "limits.strategies", "limits.aio.strategies")
_REDIS_MODULES = ("limits.aio.storage", "redis.asyncio")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_rate_limits(value: str, routes: Iterable[str] = LIMITED_ROUTES) -> dict[str, str | None]:
    """``"10/minute, /chat=30/minute"`` -> ``{"/complete": "10/minute", "/chat": "30/minute"}``."""
    default: list[str] = []
    overrides: dict[str, str | None] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        if "=" in item:
            route, _, spec = item.partition("=")
            route, spec = route.strip(), spec.strip()
            if not route.startswith("/"):
                raise ConfigError(f"KITE_RATE_LIMIT: {item!r}: a route override is /route=N/period")
            overrides[route] = None if spec.lower() in _OFF else spec
        else:
            default.append(item)
    if len(default) > 1:
        raise ConfigError(
            f"KITE_RATE_LIMIT={value!r}: one default limit only (e.g. 10/minute), "
            "then /route=N/period overrides"
        )
    base: str | None = default[0] if default else None
    if base is not None and base.lower() in _OFF:
        base = None
    result = {route: base for route in routes}
    result.update(overrides)
    return result


@dataclass(frozen=True, slots=True)
class LimitDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    retry_after: float

    @property
    def retry_after_seconds(self) -> int:
        return max(1, int(self.retry_after + 0.999))

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(max(0, self.remaining)).encode()),
            (b"x-ratelimit-reset", str(int(self.reset_at + 0.999)).encode()),
        ]


class RouteLimit:
    """One limit (``"10/minute"``) for one route, counted per client."""

    def __init__(
        self, spec: str, route: str, settings: KiteSettings, storage_url: str | None
    ) -> None:
        from kite_lab.safety.rate_limit import RateLimiter

        self.spec = spec
        self.route = route
        prefix = f"{settings.kite_redis_prefix}http:{route}:"
        try:
            self._limiter = RateLimiter(spec, key=route, storage_url=storage_url, prefix=prefix)
        except ValueError as exc:
            raise ConfigError(
                f"KITE_RATE_LIMIT for {route}: {spec!r} is not a rate limit ({exc}); "
                "write e.g. 10/minute or 100/hour"
            ) from None

    async def hit(self, client: str) -> LimitDecision:
        result = await self._limiter.hit(client)
        return LimitDecision(
            allowed=bool(result.allowed),
            limit=int(result.limit),
            remaining=int(result.remaining),
            reset_at=float(result.reset_at),
            retry_after=float(
                result.retry_after
                if result.retry_after is not None
                else max(0.0, result.reset_at - time.time())
            ),
        )

    async def warm(self) -> None:
        """Load the counting storage now, not in the first request (see service.warmup)."""
        shared = self._limiter.storage_url is not None
        names = [*_STORAGE_MODULES, *(_REDIS_MODULES if shared else ())]
        await asyncio.to_thread(_import_quietly, names)
        try:  # builds this loop's storage client; reads a window, counts nothing
            await asyncio.wait_for(self._limiter.peek("kite-warmup"), 5.0)
        except Exception:  # Redis down: the first real hit degrades as it always did
            pass

    async def aclose(self) -> None:
        closer = getattr(self._limiter, "aclose", None)
        if closer is not None:
            await closer()


class RouteLimits:
    """The limits of every route and the client identity they count against."""

    def __init__(
        self,
        settings: KiteSettings,
        overrides: Mapping[str, str | None] | None = None,
        routes: Iterable[str] = LIMITED_ROUTES,
    ) -> None:
        specs = parse_rate_limits(settings.kite_rate_limit, routes)
        specs.update(overrides or {})
        storage = settings.redis_url
        self.specs = specs
        self._limits: dict[str, RouteLimit] = {
            route: RouteLimit(spec, route, settings, storage)
            for route, spec in specs.items()
            if spec is not None
        }
        self._trusted = _parse_networks(settings.kite_trusted_proxies)

    def for_route(self, route: str, method: str) -> RouteLimit | None:
        return self._limits.get(route) if method == "POST" else None

    def client_ip(self, scope: MutableMapping[str, Any]) -> str:
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        forwarded: str | None = None
        for key, value in scope.get("headers") or ():
            if key == b"x-forwarded-for":
                forwarded = (
                    value.decode("latin-1")
                    if forwarded is None
                    else (forwarded + "," + value.decode("latin-1"))
                )
        if not forwarded:
            return peer
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if not _valid_ip(hop):
                return peer  # a malformed chain: trust nothing in it
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    async def warm(self) -> None:
        for limit in self._limits.values():
            await limit.warm()

    async def aclose(self) -> None:
        for limit in self._limits.values():
            await limit.aclose()


def _import_quietly(names: Iterable[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_networks(value: str | None) -> list[IPNetwork]:
    networks: list[IPNetwork] = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"KITE_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR (e.g. 10.0.0.0/8)"
            ) from None
    return networks
