"""An async-first circuit breaker whose state can be shared by every replica through Redis.

What the people who use this were burnt by, and what this module does instead:

- pybreaker holds one lock around every call: here nothing is held while the protected
  call runs, and admitting a call while closed takes no lock at all;
- async functions never counted: ``guard()``, ``acall`` and ``@protected`` count sync and
  async functions alike;
- half-open let every waiting call through: half-open hands out at most
  ``half_open_max_calls`` permits, atomically (a Lua script for Redis), each with a lease;
- shared Redis counters raced: every decision is one Lua script, timed by the server.

Which errors count is a documented table (``kite_lab.safety.classify``). Every transition
is emitted as ``breaker:state`` and reaches the ``on_open`` / ``on_close`` /
``on_half_open`` callbacks, in the process that made it and in any process that notices
it (``remote=True``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from kite_lab.backends.clock import SYSTEM_CLOCK, Clock
from kite_lab.core.errors import CircuitBreakerError, ConfigError
from kite_lab.core.runner import run_sync
from kite_lab.safety.breaker_memory import MemoryBreakerStore
from kite_lab.safety.breaker_store import BreakerStore
from kite_lab.safety.breaker_types import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Admission,
    CircuitBreakerConfig,
    CircuitState,
    RecordResult,
    Snapshot,
    Transition,
)
from kite_lab.safety.classify import Outcome, classify

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus

__all__ = ["CircuitBreaker", "build_breaker"]

log = logging.getLogger("kite_lab.safety.breaker")
P = ParamSpec("P")
T = TypeVar("T")
Listener = Callable[["CircuitBreaker", Transition], Any]


class _Guard:
    """``async with breaker.guard():`` -- admit on enter, record the outcome on exit."""

    __slots__ = ("_breaker", "_admission")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._admission: Admission | None = None

    async def __aenter__(self) -> CircuitBreaker:
        breaker = self._breaker
        if breaker._store.inline:  # memory: no await needed, keep the hot path short
            self._admission = breaker._admit_sync()
        else:
            self._admission = await breaker._aadmit()
        return breaker

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        admission, self._admission = self._admission, None
        if admission is not None:
            if self._breaker._store.inline:
                self._breaker._settle_sync(admission, exc)
            else:
                await self._breaker._asettle(admission, exc)
        return False


class CircuitBreaker:
    """Stops calling a failing dependency, then lets a few probes test it again.

    States: ``closed`` (calls go through), ``open`` (calls fail fast with
    ``CircuitBreakerError`` carrying ``retry_after``), ``half_open`` (at most
    ``half_open_max_calls`` probes at a time; ``success_threshold`` successes close it,
    one failure re-opens it).
    """

    def __init__(
        self,
        name: str = "default",
        config: CircuitBreakerConfig | None = None,
        *,
        store: BreakerStore | None = None,
        events: EventBus | None = None,
        clock: Clock | None = None,
        on_open: Listener | None = None,
        on_close: Listener | None = None,
        on_half_open: Listener | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError("a circuit breaker needs a non-empty name")
        self.name = name
        self.clock = clock or getattr(store, "clock", None) or SYSTEM_CLOCK
        self._config = config if config is not None else CircuitBreakerConfig()
        self._store = store if store is not None else MemoryBreakerStore(self.clock)
        # a memory store's synchronous core, looked up once (the hot path)
        self._now: dict[str, Callable[..., Any]] | None = None
        if self._store.inline:
            self._now = {op: getattr(self._store, op + "_now")
                         for op in ("acquire", "record", "force", "snapshot")}
        self.events = events
        self.on_open, self.on_close, self.on_half_open = on_open, on_close, on_half_open
        # last state this process knows of (shared stores); gen orders late answers
        self._known_state = CLOSED
        self._known_open_until: float | None = None
        self._known_gen = 0
        self._last_snapshot: Snapshot | None = None

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.state.value} ({self.backend})>"

    # -- configuration -------------------------------------------------------------------
    @property
    def config(self) -> CircuitBreakerConfig:
        return self._config

    @config.setter
    def config(self, value: CircuitBreakerConfig) -> None:
        if not isinstance(value, CircuitBreakerConfig):
            raise ConfigError("breaker.config must be a CircuitBreakerConfig")
        self._config = value

    @property
    def store(self) -> BreakerStore:
        return self._store

    @property
    def backend(self) -> str:
        return self._store.backend

    # -- state -----------------------------------------------------------------------------
    @property
    def state(self) -> CircuitState:
        """The current state; for a shared store, the last state this process saw.

        Refreshed by every call through the breaker; ``await aget_state()`` or
        ``refresh()`` read the store now. An open breaker whose timeout has passed is
        reported ``half_open``: the next call will be its probe.
        """
        if self._store.inline:
            return self._store.snapshot_now().state
        state = self._known_state
        if state is OPEN and self._known_open_until is not None:
            if self.clock.now() >= self._known_open_until:
                return HALF_OPEN
        return state

    async def aget_state(self) -> CircuitState:
        """Read the state from the store now."""
        return (await self._asnapshot()).state

    def refresh(self) -> CircuitState:
        """Read the state from the store now (sync; works inside a running loop too)."""
        return self._snapshot_sync().state

    # -- the guard and calls -----------------------------------------------------------
    def guard(self) -> _Guard:
        """``async with breaker.guard(): ...`` protects the block (the call pipeline's way)."""
        return _Guard(self)

    async def acall(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func`` (sync or async) under the breaker; await its result if awaitable."""
        async with _Guard(self):
            result = func(*args, **kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

    def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``func`` under the breaker from sync code, in this thread.

        An async ``func`` runs on kite_lab's loop, inside the same admission.
        """
        admission = self._admit_sync()
        try:
            result = func(*args, **kwargs)
            if hasattr(type(result), "__await__"):  # an async func: run it, still admitted
                result = run_sync(_awaited(result))
        except BaseException as exc:
            self._settle_sync(admission, exc)
            raise
        self._settle_sync(admission, None)
        return result

    def protected(self, func: Callable[P, T]) -> Callable[P, T]:
        """Decorator: every call of ``func`` (sync or async) goes through the breaker."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with _Guard(self):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(func, *args, **kwargs)

        return wrapper

    # -- manual control ------------------------------------------------------------------
    def reset(self) -> None:
        """Close the breaker now (consecutive failures back to 0; totals kept)."""
        self._force_sync(CLOSED, "manual reset")

    def trip(self, reason: str = "manual trip") -> None:
        """Open the breaker now, for ``timeout_seconds``."""
        self._force_sync(OPEN, reason or "manual trip")

    async def areset(self) -> None:
        await self._aforce(CLOSED, "manual reset")

    async def atrip(self, reason: str = "manual trip") -> None:
        await self._aforce(OPEN, reason or "manual trip")

    # -- stats ---------------------------------------------------------------------------
    def get_stats(self) -> dict[str, Any]:
        """Counters and state as a plain dict (reads the store; sync)."""
        return self._stats(self._snapshot_sync())

    async def aget_stats(self) -> dict[str, Any]:
        return self._stats(await self._asnapshot())

    def _stats(self, snap: Snapshot) -> dict[str, Any]:
        total = snap.total_calls
        stats = {
            "name": self.name,
            "state": snap.state.value,
            "total_calls": total,
            "successful_calls": snap.successful_calls,
            "failed_calls": snap.failed_calls,
            "rejected_calls": snap.rejected_calls,
            "success_rate": snap.successful_calls / total if total else 1.0,
            "consecutive_failures": snap.consecutive_failures,
            "open_until": snap.open_until if snap.state is not CLOSED else None,
            "last_failure": snap.last_failure,
            "half_open_permits_in_use": snap.permits_in_use,
            "backend": self.backend,
        }
        if snap.extra:
            stats.update(snap.extra)
        return stats

    # -- internals: one path for both kinds of store ---------------------------------------
    # A memory store decides synchronously (``<op>_now``); a shared store's coroutine is
    # awaited (async callers) or run on kite_lab's loop (sync callers).
    def _store_sync(self, op: str, *args: Any) -> Any:
        if self._now is not None:
            return self._now[op](*args)
        return run_sync(getattr(self._store, op)(*args))

    async def _store_async(self, op: str, *args: Any) -> Any:
        if self._now is not None:
            return self._now[op](*args)
        return await getattr(self._store, op)(*args)

    # -- internals: admission ------------------------------------------------------------
    async def _aadmit(self) -> Admission:
        return self._admitted(await self._store_async("acquire", self._config))

    def _admit_sync(self) -> Admission:
        return self._admitted(self._store_sync("acquire", self._config))

    def _admitted(self, admission: Admission) -> Admission:
        if not self._store.inline:
            self._observe(admission.state, admission.gen, admission.transition,
                          admission.retry_after)
        elif admission.transition is not None:
            self._publish(admission.transition, remote=False)
        if admission.allowed:
            return admission
        if self.events is not None:
            self.events.emit("breaker:rejected", name=self.name, state=admission.state.value,
                             retry_after=admission.retry_after)
        raise CircuitBreakerError(self.name, admission.retry_after)

    # -- internals: outcome ----------------------------------------------------------------
    def _classify(self, exc: BaseException | None) -> tuple[str, str | None]:
        """("success" | "failure" | "release", error class name); emits failure events."""
        cfg = self._config
        verdict = classify(exc, cfg.record_exceptions, cfg.ignore_exceptions)
        if verdict.outcome is Outcome.SUCCESS:
            return "success", None
        if self.events is not None:
            if verdict.auth_error:
                self.events.emit("auth:error", provider=verdict.provider or self.name,
                                 breaker=self.name)
            if verdict.outcome is Outcome.FAILURE:
                self.events.emit("breaker:failure", name=self.name, error=verdict.error)
        return ("failure" if verdict.outcome is Outcome.FAILURE else "release"), verdict.error

    async def _asettle(self, admission: Admission, exc: BaseException | None) -> None:
        outcome, error = self._classify(exc)
        self._recorded(await self._store_async("record", admission, outcome, self._config, error))

    def _settle_sync(self, admission: Admission, exc: BaseException | None) -> None:
        outcome, error = self._classify(exc)
        self._recorded(self._store_sync("record", admission, outcome, self._config, error))

    def _recorded(self, result: RecordResult) -> None:
        if not self._store.inline:
            self._observe(result.state, result.gen, result.transition, None)
        elif result.transition is not None:
            self._publish(result.transition, remote=False)

    # -- internals: manual transitions and snapshots ---------------------------------------
    async def _aforce(self, state: CircuitState, reason: str) -> None:
        self._forced(await self._store_async("force", state, self._config, reason))

    def _force_sync(self, state: CircuitState, reason: str) -> None:
        self._forced(self._store_sync("force", state, self._config, reason))

    def _forced(self, result: RecordResult) -> None:
        if result.state is OPEN:
            self._known_open_until = self.clock.now() + self._config.timeout_seconds
        self._recorded(result)

    async def _asnapshot(self) -> Snapshot:
        snap = await self._store_async("snapshot")
        return snap if self._store.inline else self._snapshotted(snap)

    def _snapshot_sync(self) -> Snapshot:
        if self._store.inline:
            return self._store.snapshot_now()
        try:
            snap = self._store_sync("snapshot")
        except RuntimeError:  # called on kite_lab's own loop thread: the last known state
            return self._last_snapshot or Snapshot(state=self._known_state)
        return self._snapshotted(snap)

    def _snapshotted(self, snap: Snapshot) -> Snapshot:
        self._last_snapshot = snap
        if not self._store.inline:
            stored = OPEN if snap.state is HALF_OPEN and snap.open_until else snap.state
            self._observe(stored, snap.gen, None, None, open_until=snap.open_until)
        return snap

    # -- internals: state changes ------------------------------------------------------
    def _observe(
        self,
        state: CircuitState,
        gen: int,
        transition: Transition | None,
        retry_after: float | None,
        open_until: float | None = None,
    ) -> None:
        """Update the last known state of a shared store from one of its answers.

        ``gen`` counts the store's transitions: an answer older than one already applied
        (responses on different connections can arrive out of order) changes nothing.
        """
        if transition is not None:
            self._publish(transition, remote=False)
        if gen < self._known_gen:
            return
        if state is OPEN:
            if open_until is not None:
                self._known_open_until = open_until
            elif retry_after is not None:
                self._known_open_until = self.clock.now() + retry_after
            elif transition is not None or self._known_state is not OPEN:
                self._known_open_until = self.clock.now() + self._config.timeout_seconds
        old, old_gen = self._known_state, self._known_gen
        self._known_state, self._known_gen = state, gen
        if transition is None and state is not old and gen > old_gen:
            self._publish(Transition(old, state, "changed by another process"), remote=True)

    def _publish(self, transition: Transition, *, remote: bool) -> None:
        if self.events is not None:
            self.events.emit(
                "breaker:state",
                name=self.name,
                old=transition.old.value,
                new=transition.new.value,
                reason=transition.reason,
                remote=remote,
            )
        listener = {OPEN: self.on_open, CLOSED: self.on_close, HALF_OPEN: self.on_half_open}[
            transition.new
        ]
        if listener is not None:
            try:
                listener(self, transition)
            except Exception:  # a broken listener must not break the call path
                log.exception("breaker %r: listener %r failed", self.name, listener)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def build_breaker(
    name: str,
    settings: KiteSettings,
    events: EventBus | None = None,
    *,
    clock: Clock | None = None,
    **config: Any,
) -> CircuitBreaker:
    """The breaker for ``name`` with the store ``settings.resolved_backend("breaker")`` picks.

    ``memory``: this process only. ``redis``: shared by every process using the same
    REDIS_URL and KITE_REDIS_PREFIX, with a local fallback while Redis is unreachable.
    """
    clock = clock or SYSTEM_CLOCK
    cfg = CircuitBreakerConfig.from_settings(settings, **config)
    backend = settings.resolved_backend("breaker")
    store: BreakerStore
    if backend == "redis":
        from kite_lab.safety.breaker_fallback import FallbackBreakerStore
        from kite_lab.safety.breaker_redis import RedisBreakerStore

        assert settings.redis_url is not None  # resolved_backend checked it
        primary = RedisBreakerStore(settings.redis_url, settings.kite_redis_prefix, name, clock)
        store = FallbackBreakerStore(primary, name=name, events=events)
    else:
        store = MemoryBreakerStore(clock)
    return CircuitBreaker(name, cfg, store=store, events=events, clock=clock)
