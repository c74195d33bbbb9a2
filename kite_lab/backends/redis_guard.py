"""What a component does when its Redis store fails: describe, log, emit, degrade.

Why one guard: the breaker, the idempotency manager, the kill switch, the rate limiter
and the response cache all keep state in Redis, and each must survive an outage by its
own documented policy (fall back to a local breaker, fail closed, use the last known
state, fail open, bypass). What they share is everything *around* that policy:

- telling "Redis is unreachable or misbehaving" apart from our own bugs (those re-raise);
- a short, secret-free description of the failure (the URL's password is masked);
- one log line, ``<component>: Redis unreachable (<detail>); <consequence>``;
- one event (``cache:error``, ``killswitch:error`` ...) with the caller's fields plus
  the description and the consequence.

A component builds one :class:`RedisGuard` and applies its policy in the ``except`` arm::

    guard = RedisGuard("kill switch", events, event="killswitch:error", url=url, logger=log)
    with guard.degrade("using the last known state"):      # swallow Redis failures
        data = await client.hgetall(key)
    value = await guard.run(store.get(key), "bypassed", fallback=lambda failure: None)

With ``once=True`` an outage is logged and emitted once, when it starts, and
``recovered()`` reports its end (the breaker's ``breaker:fallback`` events).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from kite_lab.core.config import mask_url

if TYPE_CHECKING:
    from kite_lab.core.events import EventBus

__all__ = ["Degraded", "RedisFailure", "RedisGuard", "describe_redis_error", "is_redis_error"]

T = TypeVar("T")
F = TypeVar("F")


def is_redis_error(exc: BaseException) -> bool:
    """True for errors that mean "Redis is unreachable or misbehaving", not our bug."""
    exceptions = sys.modules.get("redis.exceptions")
    if exceptions is not None and isinstance(exc, exceptions.RedisError):
        return True
    return isinstance(exc, OSError | TimeoutError)


def describe_redis_error(exc: BaseException, url: str | None = None) -> str:
    """A short, secret-free description of a Redis failure for events and messages."""
    where = f" at {mask_url(url)}" if url else ""
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}{where}: {text}" if text else f"{type(exc).__name__}{where}"


@dataclass(frozen=True, slots=True)
class RedisFailure:
    """One handled failure."""

    #: secret-free description, e.g. ``ConnectionError at redis://h:6379/0: ...``
    detail: str
    #: True when this failure started an outage (``once`` guards: the one logged/emitted)
    first: bool


class Degraded:
    """What ``with guard.degrade(...) as outcome:`` saw: ``outcome.failure`` or None."""

    __slots__ = ("failure",)

    def __init__(self) -> None:
        self.failure: RedisFailure | None = None

    def __bool__(self) -> bool:
        return self.failure is not None


class RedisGuard:
    """Describe, log and emit Redis failures of one component; re-raise everything else.

    ``component``: how log lines name it ("response cache", "breaker 'openai'").
    ``event``: emitted per failure (or per outage with ``once``) with the caller's fields,
    ``<detail_field>=<description>`` and ``consequence``; None emits nothing.
    ``store_errors``: more exception classes that mean "the store failed" (the rate
    limiter's ``limits.errors.StorageError``), as a callable so they load lazily.
    """

    def __init__(
        self,
        component: str,
        events: EventBus | None = None,
        *,
        event: str | None = None,
        url: str | None = None,
        logger: logging.Logger | None = None,
        detail_field: str = "error",
        once: bool = False,
        store_errors: Callable[[], tuple[type[BaseException], ...]] | None = None,
    ) -> None:
        self.component = component
        self.events = events
        self.event = event
        self.url = url
        self.logger = logger
        self.detail_field = detail_field
        self.once = once
        self._store_errors = store_errors
        #: ``once`` guards: True from the first failure until ``recovered()``
        self.degraded = False
        #: description of the latest failure
        self.last_error: str | None = None
        #: failures handled (``once`` guards: outages started)
        self.failures = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<RedisGuard {self.component!r} failures={self.failures}>"

    def is_failure(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the store failed (else it is a bug and must propagate)."""
        if is_redis_error(exc):
            return True
        return self._store_errors is not None and isinstance(exc, self._store_errors())

    def describe(self, exc: BaseException) -> str:
        return describe_redis_error(exc, self.url)

    def failed(self, exc: BaseException, consequence: str, **data: Any) -> RedisFailure:
        """Handle ``exc``: re-raise it unless the store failed; else log, emit, return.

        Call it in an ``except`` arm; ``data`` are extra event fields.
        """
        if not self.is_failure(exc):
            raise exc
        detail = self.describe(exc)
        with self._lock:
            self.last_error = detail
            first = not self.degraded
            if self.once:
                self.degraded = True
            report = first or not self.once
            if report:
                self.failures += 1
        if report:
            if self.logger is not None:
                self.logger.warning("%s: Redis unreachable (%s); %s", self.component, detail,
                                    consequence)
            self._emit(detail, consequence, data)
        return RedisFailure(detail, first)

    def recovered(self, message: str = "redis reachable again", **data: Any) -> bool:
        """End an outage of a ``once`` guard: log and emit ``message``; False if none."""
        with self._lock:
            if not self.degraded:
                return False
            self.degraded = False
        if self.logger is not None:
            self.logger.warning("%s: Redis reachable again", self.component)
        self._emit(message, None, data)
        return True

    @contextmanager
    def degrade(self, consequence: str, **data: Any) -> Iterator[Degraded]:
        """``with guard.degrade("..."):`` -- a store failure in the block is handled and
        swallowed (see ``failed``); the yielded outcome says whether one happened."""
        outcome = Degraded()
        try:
            yield outcome
        except Exception as exc:
            outcome.failure = self.failed(exc, consequence, **data)

    async def run(
        self,
        call: Awaitable[T],
        consequence: str,
        fallback: Callable[[RedisFailure], F],
        **data: Any,
    ) -> T | F:
        """``await call``; on a store failure, ``fallback(failure)`` instead."""
        try:
            return await call
        except Exception as exc:
            return fallback(self.failed(exc, consequence, **data))

    def _emit(self, detail: str, consequence: str | None, data: dict[str, Any]) -> None:
        if self.events is None or self.event is None:
            return
        fields = dict(data)
        fields[self.detail_field] = detail
        if consequence is not None:
            fields.setdefault("consequence", consequence)
        self.events.emit(self.event, **fields)
