"""The kill switch: one call stops every provider call, in this process or in all replicas.

``ai.kill_switch.activate("runaway agent")`` makes every later provider call raise
``KillSwitchError`` (the call pipeline awaits ``acheck()`` before each one) until
``deactivate()``. With the Redis store (chosen like the breaker's: BREAKER_BACKEND, or
REDIS_URL set) the switch lives at ``{KITE_REDIS_PREFIX}killswitch`` and every replica
sees it on its next call. That key has no TTL on purpose: a kill switch that silently
expires is not one.

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

from kite_lab.core.errors import InvalidInput, KillSwitchError
from kite_lab.core.runner import run_sync
from kite_lab.backends.redis_client import (
    describe_redis_error,
    is_redis_error,
    key_join,
    redis_client,
)

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
            whole = name in ("max_iterations", "max_same_action")
            ok = not isinstance(value, bool) and (
                isinstance(value, int) if whole else isinstance(value, int | float)
            )
            if not ok or not value > 0:
                kind = "a positive integer" if whole else "a positive number"
                raise InvalidInput(f"kill switch {name} must be {kind} or None, got {value!r}")
            value = value if whole else float(value)
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
    """Stops provider calls while active (see the module docstring)."""

    def __init__(
        self,
        events: EventBus | None = None,
        *,
        redis_url: str | None = None,
        prefix: str = "kite:",
        limits: KillSwitchLimits | None = None,
    ) -> None:
        self.events = events
        self.limits = limits or KillSwitchLimits()
        self._url = redis_url
        self._key = key_join(prefix, "killswitch")
        # this process's view: the whole truth in memory, the last known state with Redis
        self._active = False
        self._reason: str | None = None
        self._activated_at: float | None = None

    @property
    def backend(self) -> str:
        return "redis" if self._url else "memory"

    def __repr__(self) -> str:
        return f"<KillSwitch {'ACTIVE' if self.is_active else 'inactive'} ({self.backend})>"

    # -- reading ---------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        """Whether calls are blocked now (reads Redis when shared)."""
        self._refresh_sync()
        return self._active

    @property
    def reason(self) -> str | None:
        self._refresh_sync()
        return self._reason

    @property
    def activated_at(self) -> float | None:
        """Epoch seconds of the activation, or None while inactive."""
        self._refresh_sync()
        return self._activated_at

    async def acheck(self) -> None:
        """Raise ``KillSwitchError`` when active (called before every provider call)."""
        if self._url is not None:
            await self._arefresh()
        if self._active:
            self._emit("blocked", reason=self._reason)
            raise KillSwitchError(self._reason)

    def check(self) -> None:
        self._refresh_sync()
        if self._active:
            self._emit("blocked", reason=self._reason)
            raise KillSwitchError(self._reason)

    def status(self) -> dict[str, Any]:
        self._refresh_sync()
        return {"active": self._active, "reason": self._reason,
                "activated_at": self._activated_at, "backend": self.backend,
                "limits": self.limits.to_dict()}

    # -- switching -------------------------------------------------------------------------
    async def aactivate(self, reason: str = "activated manually") -> None:
        reason = str(reason or "activated manually")
        now = time.time()
        self._set(True, reason, now)
        if self._url is not None:
            try:
                await redis_client(self._url).hset(
                    self._key, mapping={"reason": reason, "activated_at": repr(now)}
                )
            except Exception as exc:
                self._redis_failed(exc, "activated in this process only")
        log.warning("kill switch activated: %s", reason)
        self._emit("activated", reason=reason)

    async def adeactivate(self) -> None:
        self._set(False, None, None)
        if self._url is not None:
            try:
                await redis_client(self._url).delete(self._key)
            except Exception as exc:
                self._redis_failed(exc, "deactivated in this process only")
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
        if self._url is not None:
            from kite_lab.backends.redis_client import aclose_redis_clients

            await aclose_redis_clients()

    # -- internals -------------------------------------------------------------------------
    def _set(self, active: bool, reason: str | None, at: float | None) -> None:
        self._active, self._reason, self._activated_at = active, reason, at

    async def _arefresh(self) -> None:
        try:
            data = await redis_client(self._url).hgetall(self._key)  # type: ignore[arg-type]
        except Exception as exc:
            self._redis_failed(exc, "using the last known state")
            return
        if data:
            at = data.get("activated_at")
            self._set(True, data.get("reason") or None, float(at) if at else None)
        else:
            self._set(False, None, None)

    def _refresh_sync(self) -> None:
        if self._url is None:
            return
        try:
            run_sync(self._arefresh())
        except RuntimeError:  # on kite_lab's own loop thread: the last known state
            pass

    def _redis_failed(self, exc: Exception, consequence: str) -> None:
        if not is_redis_error(exc):
            raise exc
        detail = describe_redis_error(exc, self._url)
        log.warning("kill switch: Redis unreachable (%s); %s", detail, consequence)
        self._emit("error", error=detail, consequence=consequence)

    def _emit(self, what: str, **data: Any) -> None:
        if self.events is not None:
            data.setdefault("active", self._active)
            self.events.emit(f"killswitch:{what}", backend=self.backend, **data)


def build_kill_switch(settings: KiteSettings, events: EventBus | None = None) -> KillSwitch:
    """Shared through Redis when the breakers are (``resolved_backend("breaker")``)."""
    shared = settings.resolved_backend("breaker") == "redis"
    return KillSwitch(
        events,
        redis_url=settings.redis_url if shared else None,
        prefix=settings.kite_redis_prefix,
    )
