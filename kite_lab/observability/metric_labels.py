"""Closed label sets: what an event's raw value may become as a metric label.

Why: a label value is a new time series. Events carry whatever the caller passed (a
model name typed by a user, a probing URL, an error class from a plugin), so each label
maps its raw value onto a closed set and reports anything unknown as ``"other"``. A
client therefore cannot blow up the number of series, and no secret — a key pasted as a
model name, a token in a URL — can ever become a label value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["OTHER", "LabelPolicy"]

#: the label value of everything outside a closed set
OTHER = "other"

_CACHE_BACKENDS = frozenset({"memory", "redis"})
_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_MAP_OUTCOMES = frozenset({"success", "cached", "resumed", "error", "budget"})
_IDEMPOTENCY_OUTCOMES = frozenset(
    {"started", "completed", "replayed", "conflict", "in_progress", "released", "expired", "error"}
)


class LabelPolicy:
    """Maps raw values from events to closed label sets ("other" for anything unknown)."""

    def __init__(
        self,
        *,
        providers: Iterable[str] | None = None,
        models: Iterable[str] = (),
        agents: Callable[[], Iterable[str]] | None = None,
        routes: Iterable[str] = (),
    ) -> None:
        if providers is None:
            from kite_lab.providers.registry import available_providers

            providers = available_providers()
        self.providers = frozenset(providers)
        self.models = frozenset(_known_models()) | frozenset(models)
        self._agents = agents or (lambda: ())
        self.routes = frozenset(routes)
        from kite_lab.core import errors

        self.errors = frozenset(errors.__all__) - {"redact"}

    def provider(self, value: Any) -> str:
        return value if value in self.providers else OTHER

    def model(self, provider: Any, model: Any) -> str:
        if not isinstance(model, str):
            return OTHER
        if f"{provider}/{model}" in self.models or model in self.models:
            return model
        return OTHER

    def error(self, value: Any) -> str:
        return value if value in self.errors else OTHER

    def agent(self, value: Any) -> str:
        return value if isinstance(value, str) and value in set(self._agents()) else OTHER

    def route(self, value: Any) -> str:
        return value if value in self.routes else OTHER

    @staticmethod
    def status(value: Any) -> str:
        return str(value) if isinstance(value, int) and 100 <= value <= 599 else OTHER

    @staticmethod
    def method(value: Any) -> str:
        return value if value in _METHODS else OTHER

    @staticmethod
    def cache_backend(value: Any) -> str:
        return value if value in _CACHE_BACKENDS else OTHER

    @staticmethod
    def map_outcome(value: Any) -> str:
        return value if value in _MAP_OUTCOMES else OTHER

    @staticmethod
    def idempotency_outcome(value: Any) -> str:
        return value if value in _IDEMPOTENCY_OUTCOMES else OTHER


def _known_models() -> set[str]:
    """``provider/model`` ids with a price entry, plus each provider's default model."""
    from kite_lab.providers import pricing, registry

    known = set(pricing.known_models())
    for name in registry.available_providers():
        try:
            known.add(f"{name}/{registry.provider_class(name).default_model}")
        except Exception:  # an uninstallable third-party provider: no default to add
            continue
    return known
