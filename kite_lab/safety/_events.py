"""Emit events whose data has a ``name`` field (``breaker:state name, old, new, reason``).

``EventBus.emit(name, **data)`` takes the event name as a parameter called ``name``, so
``bus.emit("breaker:state", name="openai")`` collides. Until ``emit`` declares its first
parameter positional-only (``def emit(self, name, /, **data)``), this helper delivers such
events the way ``emit`` does; afterwards it is a plain ``bus.emit`` call.
"""

from __future__ import annotations

import inspect
from typing import Any

from kite_lab.core.events import Event, EventBus

__all__ = ["emit"]

_params = list(inspect.signature(EventBus.emit).parameters.values())  # [self, name, data]
_NAME_IS_POSITIONAL_ONLY = len(_params) > 1 and _params[1].kind is inspect.Parameter.POSITIONAL_ONLY


def emit(bus: EventBus | None, event: str, **data: Any) -> None:
    """``bus.emit(event, **data)``, also when ``data`` has a ``name`` key; no-op without a bus."""
    if bus is None:
        return
    if _NAME_IS_POSITIONAL_ONLY or "name" not in data or not isinstance(bus, EventBus):
        bus.emit(event, **data)
        return
    # Same steps as EventBus.emit (history, then matching subscribers).
    record = Event(event, data)
    bus._history.append(record)  # noqa: SLF001
    for sub in bus._subs:  # noqa: SLF001
        if sub.matches(event):
            bus._deliver(sub, record)  # noqa: SLF001
