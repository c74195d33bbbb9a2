"""``ServiceState``: everything a request handler needs, built once per app.

Why its own module: the app builds it, and the middleware, routes, Idempotency-Key layer
and health checker read it. With the state defined beside ``create_app`` each of them
imported the app module back (an import cycle); here every arrow points one way:
``app -> {middleware, routes, idempotency} -> state -> {health, warmup, ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kite_lab.service.auth import APIKeyAuth
from kite_lab.service.health import HealthChecker
from kite_lab.service.limits import RouteLimits
from kite_lab.service.shutdown import Drainer
from kite_lab.service.warmup import Readiness

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import Subscription
    from kite_lab.kite import Kite
    from kite_lab.observability.metric_labels import LabelPolicy
    from kite_lab.observability.metrics import KiteMetrics

__all__ = ["RouteTable", "ServiceState"]


class RouteTable:
    """Maps a request path to its route template ("/agents/{name}/run") or "other"."""

    def __init__(self) -> None:
        self._static: dict[str, str] = {}
        self._dynamic: list[tuple[Any, str]] = []
        self.templates: list[str] = []

    def load(self, routes: list[Any]) -> None:
        for route in routes:
            path = getattr(route, "path", None)
            regex = getattr(route, "path_regex", None)
            if path is None or regex is None:
                continue
            self.templates.append(path)
            if "{" in path:
                self._dynamic.append((regex, path))
            else:
                self._static[path] = path

    def route_of(self, path: str) -> str:
        hit = self._static.get(path)
        if hit is not None:
            return hit
        for regex, template in self._dynamic:
            if regex.match(path):
                return template
        return "other"


@dataclass
class ServiceState:
    """Everything a request handler needs, built once per app."""

    kite: Kite
    kites: list[Kite]
    settings: KiteSettings
    auth: APIKeyAuth
    limits: RouteLimits
    drainer: Drainer
    metrics: KiteMetrics
    module_agents: dict[str, Any]
    secrets: list[str]
    routes: RouteTable = field(default_factory=RouteTable)
    policy: LabelPolicy | None = None
    readiness: Readiness = field(default_factory=Readiness)
    health: HealthChecker = field(init=False)
    subscriptions: list[Subscription] = field(default_factory=list)
    idempotency_enabled: bool = True
    max_body_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        self.health = HealthChecker(self.kite, self.drainer, self.readiness)

    def agents(self) -> dict[str, Any]:
        """Agents served: the module's, then any created on the app's Kite since."""
        return {**self.module_agents, **self.kite.agents}

    def is_public(self, route: str) -> bool:
        return route == "/health" or (route == "/metrics" and self.settings.kite_metrics_public)
