"""The deployment guide's metric API on top of labelled Prometheus metrics.

Why a wrapper: the guide writes ``metrics.llm_calls.inc()`` and
``metrics.circuit_breaker_state.set(state)`` — no labels, and a state that may be
``"open"`` or ``CircuitState.OPEN`` — while the real metrics carry labels (provider,
model, breaker ...) and a gauge only takes numbers. ``GuideMetric`` keeps both working:
calls without labels go to the series whose labels all hold their default (``"other"``),
``.labels(provider="openai")`` fills in the labels not given, and ``set`` converts with
the metric's own converter. The event handlers use ``child()``, a cached raw child, on
the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["GuideMetric"]


class GuideMetric:
    """A labelled metric usable as the guide shows: ``.inc()``, ``.observe(d)``, ``.set(x)``.

    Calls without labels go to the series whose labels all have their default value;
    ``.labels(provider="openai")`` fills the labels not given with their defaults.
    """

    def __init__(
        self,
        metric: Any,
        defaults: Mapping[str, str],
        convert: Callable[[Any], float] = float,
    ) -> None:
        self.metric = metric
        self.defaults = dict(defaults)
        self._convert = convert
        self._default_child: Any = None
        self._names = tuple(self.defaults)
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: Any, **labels: Any) -> Any:
        if values:
            labels = dict(zip(self.defaults, values, strict=False)) | labels
        unknown = set(labels) - set(self.defaults)
        if unknown:
            raise ValueError(
                f"{self.metric._name} has labels {sorted(self.defaults)}, not {sorted(unknown)}"
            )
        child = self.metric
        if self.defaults:
            child = self.metric.labels(**(self.defaults | {k: str(v) for k, v in labels.items()}))
        return child if self._convert is float else _ConvertingChild(child, self._convert)

    def child(self, *values: str) -> Any:
        """The raw child for label values in declaration order (cached: the hot path)."""
        found = self._children.get(values)
        if found is None:
            found = self.metric.labels(*values) if values else self.metric
            self._children[values] = found
        return found

    def _child(self) -> Any:
        if self._default_child is None:
            self._default_child = self.labels()
        return self._default_child

    def inc(self, amount: float = 1.0) -> None:
        self._child().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        self._child().dec(amount)

    def set(self, value: Any) -> None:
        self._child().set(value)

    def observe(self, value: float) -> None:
        self._child().observe(value)

    @property
    def name(self) -> str:
        return str(self.metric._name)

    def __repr__(self) -> str:
        return f"GuideMetric({self.name!r}, labels={sorted(self.defaults)})"


class _ConvertingChild:
    """A labelled child whose ``set`` accepts what the metric's converter does."""

    __slots__ = ("_child", "_convert")

    def __init__(self, child: Any, convert: Callable[[Any], float]) -> None:
        self._child, self._convert = child, convert

    def set(self, value: Any) -> None:
        self._child.set(self._convert(value))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._child, name)
