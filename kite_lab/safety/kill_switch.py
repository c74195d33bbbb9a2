"""The kill switch: one call stops every provider call, in this process or in all replicas.

``ai.kill_switch.activate("runaway agent")`` makes every later provider call raise
``KillSwitchError`` (the call pipeline awaits ``acheck()`` before each one) until
``deactivate()``. The state lives in a store behind one contract (``kill_switch_store``):
this process (``kill_switch_memory``) or Redis (``kill_switch_redis``, chosen like the
breaker's: BREAKER_BACKEND, or REDIS_URL set), where every replica sees it on its next
call. That key has no TTL on purpose: a kill switch that silently expires is not one.

Redis unreachable: ``acheck`` uses the last state this process saw (emits
``killswitch:error``); ``activate``/``deactivate`` then apply to this process only, and
Redis is the truth again once it answers.

``limits`` (max_iterations, max_cost_usd, max_seconds, max_same_action) bound agent
loops; the agents enforce them with ``limits.exceeded(...)``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from kite_lab.backends.redis_guard import RedisGuard
from kite_lab.core.errors import InvalidInput, KillSwitchError
from kite_lab.core.runner import run_sync
from kite_lab.core.validate import check_int, check_number
from kite_lab.safety.kill_switch_memory import MemoryKillSwitchStore
from kite_lab.safety.kill_switch_store import KillSwitchStore, SwitchState

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings
    from kite_lab.core.events import EventBus

__all__ = ["KillSwitch", "KillSwitchLimits", "build_kill_switch"]

log = logging.getLogger("kite_lab.safety.kill_switch")


@dataclass(eq=False)
class KillSwitchLimits:
    """Bounds for agent loops; None means "no limit". Assignments are validated."""

    #: None: each agent's own max_iterations governs; set it to cap every agent at once
    max_iterations: int | None = None
    max_cost_usd: float | None = None
    max_seconds: float | None = None
    #: the same tool call (name and arguments) this many times in a row stops the loop
    max_same_action: int | None = 3

    def __setattr__(self, name: str, value: Any) -> None:
        if value is not None:
            what = f"kill switch {name} (None: no limit)"
            if name in ("max_iterations", "max_same_action"):
                value = check_int(value, what, error=InvalidInput)
            else:
                value = check_number(value, what, error=InvalidInput)
        object.__setattr__(self, name, value)

    def exceeded(
        self,
        *,
        iterations: int = 0,
        cost_usd: float | None = 0.0,
        elapsed_s: float = 0.0,
        same_action: int = 0,
    ) -> str | None:
        """Why a loop at these figures must stop, or None while it may go on."""
        if self.max_iterations is not None and iterations >= self.max_iterations:
            return f"max_iterations ({self.max_iterations}) reached"
        if self.max_cost_usd is not None and (cost_usd or 0.0) >= self.max_cost_usd:
            return f"max_cost_usd (${self.max_cost_usd:.4f}) reached"
        if self.max_seconds is not None and elapsed_s >= self.max_seconds:
            return f"max_seconds ({self.max_seconds:g} s) reached"
        if self.max_same_action is not None and same_action >= self.max_same_action:
            return f"the same action was repeated {same_action} times (max_same_action)"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class KillSwitch:
    """Stops provider calls while active (see the module docstring).

    ``store``: where the switch lives (default: this process). ``redis_url`` is the
    shorthand for ``store=RedisKillSwitchStore(redis_url, prefix)``.
    """

    def __init__(
        self,
        events: EventBus | None = None,
        *,
        store: KillSwitchStore | None = None,
        redis_url: str | None = None,
        prefix: str = "kite:",
        limits: KillSwitchLimits | None = None,
    ) -> None:
        if store is None:
            if redis_url is not None:
                from kite_lab.safety.kill_switch_redis import RedisKillSwitchStore

                store = RedisKillSwitchStore(redis_url, prefix)
            else:
                store = MemoryKillSwitchStore()
        elif redis_url is not None:
            raise InvalidInput("pass a kill switch either store= or redis_url=, not both")
        self.events = events
        self.store = store
        self.limits = limits or KillSwitchLimits()
        #: Redis failures: described, logged and emitted as ``killswitch:error``
        self.guard = RedisGuard("kill switch", events, event="killswitch:error",
                                url=getattr(store, "url", None), logger=log)
        # this process's view: the last state read from (or written to) the store
        self._state = store.read_now() if store.inline else SwitchState(False)

    @property
    def backend(self) -> str:
        return self.store.backend

    def __repr__(self) -> str:
        return f"<KillSwitch {'ACTIVE' if self.is_active else 'inactive'} ({self.backend})>"

    # -- reading ---------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        """Whether calls are blocked now (reads Redis when shared)."""
        return self._refresh_sync().active

    @property
    def reason(self) -> str | None:
        return self._refresh_sync().reason

    @property
    def activated_at(self) -> float | None:
        """Epoch seconds of the activation, or None while inactive."""
        return self._refresh_sync().activated_at

    async def ais_active(self) -> bool:
        """``is_active`` for async code: reads the store on the running loop."""
        return (await self._arefresh()).active

    async def acheck(self) -> None:
        """Raise ``KillSwitchError`` when active (called before every provider call)."""
        state = await self._arefresh()
        if state.active:
            self._emit("blocked", reason=state.reason)
            raise KillSwitchError(state.reason)

    def check(self) -> None:
        state = self._refresh_sync()
        if state.active:
            self._emit("blocked", reason=state.reason)
            raise KillSwitchError(state.reason)

    def status(self) -> dict[str, Any]:
        state = self._refresh_sync()
        return {"active": state.active, "reason": state.reason,
                "activated_at": state.activated_at, "backend": self.backend,
                "limits": self.limits.to_dict()}

    # -- switching -------------------------------------------------------------------------
    async def aactivate(self, reason: str = "activated manually") -> None:
        reason = str(reason or "activated manually")
        now = time.time()
        self._state = SwitchState(True, reason, now)
        with self.guard.degrade("activated in this process only", **self._fields()):
            await self.store.activate(reason, now)
        log.warning("kill switch activated: %s", reason)
        self._emit("activated", reason=reason)

    async def adeactivate(self) -> None:
        self._state = SwitchState(False)
        with self.guard.degrade("deactivated in this process only", **self._fields()):
            await self.store.deactivate()
        log.warning("kill switch deactivated")
        self._emit("deactivated", active=False)

    def activate(self, reason: str = "activated manually") -> None:
        """Block every provider call (in every replica with the Redis store)."""
        run_sync(self.aactivate(reason))

    def deactivate(self) -> None:
        """Let provider calls through again."""
        run_sync(self.adeactivate())

    async def aclose(self) -> None:
        """Close this loop's Redis connections (they reopen on next use)."""
        await self.store.aclose()

    # -- internals -------------------------------------------------------------------------
    async def _arefresh(self) -> SwitchState:
        if self.store.inline:
            self._state = self.store.read_now()
            return self._state
        with self.guard.degrade("using the last known state", **self._fields()):
            self._state = await self.store.read()
        return self._state

    def _refresh_sync(self) -> SwitchState:
        if self.store.inline:
            self._state = self.store.read_now()
            return self._state
        try:
            return run_sync(self._arefresh())
        except RuntimeError:  # on kite_lab's own loop thread: the last known state
            return self._state

    def _fields(self) -> dict[str, Any]:
        return {"backend": self.backend, "active": self._state.active}

    def _emit(self, what: str, **data: Any) -> None:
        if self.events is not None:
            data.setdefault("active", self._state.active)
            self.events.emit(f"killswitch:{what}", backend=self.backend, **data)


def build_kill_switch(settings: KiteSettings, events: EventBus | None = None) -> KillSwitch:
    """Shared through Redis when the breakers are (``resolved_backend("breaker")``)."""
    shared = settings.resolved_backend("breaker") == "redis"
    return KillSwitch(
        events,
        redis_url=settings.redis_url if shared else None,
        prefix=settings.kite_redis_prefix,
    )
