"""The event bus: every component emits here; metrics, logs, traces and widgets subscribe.

Components never call observers directly, so adding a widget or a metric never touches
the call path. Event names are ``area:what`` (``llm:response``, ``breaker:state``).

Known events and their main fields:

    llm:request    provider, model, request_id
    llm:response   provider, model, request_id, prompt_tokens, completion_tokens, cost_usd,
                   latency_s, cached, finish_reason
    llm:error      provider, model, request_id, error (class name), status, latency_s
    cache:hit / cache:miss / cache:error          key (hashed), backend
    breaker:state  name, old, new, reason          breaker:failure  name, error
    breaker:rejected  name                         breaker:fallback name, reason
    idempotency:*  operation_id, outcome           killswitch:*  reason
    agent:start / agent:end / agent:step           agent, run_id, ...
    tool:call / tool:result                        agent, run_id, tool, arguments / result, ok
    auth:error     provider
    ratelimit:rejected  limit, key
    memory:add / memory:search / memory:delete / memory:rebuild   ids, counts, latency
    session:append / session:clear / session:delete               session_id, role, tokens
    (memory and session events carry ids and lengths, never the text itself)
    map:start / map:row / map:done    map_run, rows / row_key, outcome, cost_usd / status
    eval:start / eval:done            run_id, name, rows, targets / cost_usd
    fallback:used / fallback:skipped  target, after, error / target, reason

Subscribers may be sync or async callables. A failing subscriber is logged and skipped;
it never breaks the call that emitted the event.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from fnmatch import fnmatchcase
from typing import Any

__all__ = ["Event", "EventBus", "Subscription", "event_context"]

_ids = itertools.count(1)


class Event:
    """One thing that happened: a name (``area:what``), its fields, a time and an id.

    A plain slotted class rather than a dataclass: events are made on every call, and
    ``dataclasses`` (with ``inspect``) would cost ``import kite_lab`` ~15 ms.
    """

    __slots__ = ("name", "data", "time", "id")

    name: str
    data: dict[str, Any]
    time: float
    id: int

    def __init__(
        self, name: str, data: dict[str, Any], time: float | None = None, id: int | None = None
    ) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "time", _now() if time is None else time)
        object.__setattr__(self, "id", next(_ids) if id is None else id)

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"Event is immutable; cannot set {key!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.name, self.data, self.time, self.id) == (
            other.name,
            other.data,
            other.time,
            other.id,
        )

    __hash__ = None  # type: ignore[assignment]  # data is a dict: events are not hashable

    def __repr__(self) -> str:
        return f"Event(name={self.name!r}, data={self.data!r}, time={self.time!r}, id={self.id})"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.name, "time": self.time, "id": self.id, **self.data}


_now = time.time


Callback = Callable[[Event], Any]

# Fields added to every event emitted in the current context (task), e.g. an agent run's
# run_id, so the pipeline's llm:* events say which run they belong to.
_context: ContextVar[dict[str, Any] | None] = ContextVar("kite_lab_event_context", default=None)


@contextmanager
def event_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every event emitted inside the block (and tasks it starts)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class Subscription:
    """A callback registered for event names matching ``pattern``; ``unsubscribe()`` ends it."""

    __slots__ = ("pattern", "callback", "bus", "_glob")

    def __init__(self, pattern: str, callback: Callback, bus: EventBus) -> None:
        self.pattern = pattern
        self.callback = callback
        self.bus = bus
        self._glob = any(ch in pattern for ch in "*?[")

    def __repr__(self) -> str:
        return f"Subscription(pattern={self.pattern!r}, callback={self.callback!r})"

    def unsubscribe(self) -> None:
        self.bus.unsubscribe(self)

    def matches(self, name: str) -> bool:
        return self.pattern == name or (self._glob and fnmatchcase(name, self.pattern))


class EventBus:
    """Thread-safe publish/subscribe with a bounded history for frames and widgets."""

    def __init__(self, history_size: int = 10_000) -> None:
        self._subs: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()
        self._history: deque[Event] = deque(maxlen=history_size)

    def subscribe(self, pattern: str, callback: Callback) -> Subscription:
        """Call ``callback(event)`` for events named ``pattern`` (``*`` and ``agent:*`` work)."""
        if not callable(callback):
            raise TypeError("callback must be callable")
        sub = Subscription(pattern, callback, self)
        with self._lock:
            self._subs = (*self._subs, sub)
        return sub

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not subscription)

    def emit(self, name: str, /, **data: Any) -> Event:
        context = _context.get()
        event = Event(name, {**context, **data} if context else data)
        self._history.append(event)  # deque.append is atomic
        for sub in self._subs:  # a tuple snapshot: subscribing during emit is safe
            if sub.matches(name):
                self._deliver(sub, event)
        return event

    def history(self, pattern: str = "*") -> list[Event]:
        """Events still held in the bounded history whose names match ``pattern``."""
        return [e for e in list(self._history) if fnmatchcase(e.name, pattern)]

    def clear_history(self) -> None:
        self._history.clear()

    @staticmethod
    def _deliver(sub: Subscription, event: Event) -> None:
        try:
            result = sub.callback(event)
            if hasattr(result, "__await__"):  # a coroutine or any awaitable
                _schedule(result, sub)
        except Exception:  # a broken observer must never break the call path
            _log().exception("event subscriber %r failed on %s", sub.callback, event.name)


def _schedule(awaitable: Any, sub: Subscription) -> None:
    import asyncio  # lazily: keeps `import kite_lab` light

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = loop.create_task(_guard(awaitable, sub))
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        return
    from kite_lab.core.runner import background_loop  # emitted from a plain thread

    asyncio.run_coroutine_threadsafe(_guard(awaitable, sub), background_loop())


_pending: set[Any] = set()  # strong refs to running subscriber tasks


async def _guard(awaitable: Any, sub: Subscription) -> None:
    try:
        await awaitable
    except Exception:
        _log().exception("async event subscriber %r failed", sub.callback)


def _log() -> Any:
    import logging  # lazily: only a failing subscriber needs it, and it costs ~10 ms

    return logging.getLogger("kite_lab.events")
