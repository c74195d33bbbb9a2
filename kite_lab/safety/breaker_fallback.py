"""Policy when a shared (Redis) breaker cannot reach Redis: a local breaker, never a crash.

A breaker exists to keep a sick dependency from taking the application down; a breaker
that raises because *its own* store is down would do exactly that. So while Redis is
unreachable each process falls back to an in-process breaker:

- it starts from the last state this process saw in Redis (an open breaker stays open
  until the same ``open_until``), so an outage does not silently close it;
- entering fallback emits ``breaker:fallback`` (``active=True``) once, and leaving it
  emits ``breaker:fallback`` (``active=False``); metrics count these events;
- every ``retry_interval`` seconds (by the breaker's clock) the next call tries Redis
  again; the first answer switches back, and Redis is the truth again (the local
  counters are dropped);
- a call admitted by one store records its outcome in the same store.

Half-open permits taken in Redis by a process that then lost Redis expire with their
lease (``max_half_open_seconds``), so they cannot wedge the shared breaker.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TypeVar

from kite_lab.backends.redis_guard import RedisGuard
from kite_lab.core.events import EventBus
from kite_lab.safety.breaker_memory import MemoryBreakerStore
from kite_lab.safety.breaker_redis import RedisBreakerStore
from kite_lab.safety.breaker_store import BreakerStore
from kite_lab.safety.breaker_types import (
    OPEN,
    Admission,
    CircuitBreakerConfig,
    CircuitState,
    RecordResult,
    Snapshot,
)

__all__ = ["FallbackBreakerStore"]

_T = TypeVar("_T", Admission, RecordResult, Snapshot)
_DOMAIN = 2**40

log = logging.getLogger("kite_lab.safety.breaker")


class FallbackBreakerStore(BreakerStore):
    """Redis first; a local memory breaker while Redis is unreachable."""

    inline = False

    def __init__(
        self,
        primary: RedisBreakerStore,
        *,
        name: str,
        events: EventBus | None = None,
        retry_interval: float = 5.0,
        local: MemoryBreakerStore | None = None,
    ) -> None:
        self.primary = primary
        self.clock = primary.clock
        self.local = local or MemoryBreakerStore(self.clock)
        self.name = name
        self.events = events
        self.retry_interval = retry_interval
        #: describes, logs and emits ``breaker:fallback`` once per outage
        self.guard = RedisGuard(f"breaker {name!r}", events, event="breaker:fallback",
                                url=primary.url, logger=log, detail_field="reason", once=True)
        self._retry_at = 0.0
        self._known_open_until: float | None = None
        self._known_consecutive = 0
        # answers carry gen = domain * 2**40 + the store's own transition count; the domain
        # changes on every switch, so the breaker never mixes up the two stores' counts
        self._domain = 0
        self._cfg: CircuitBreakerConfig | None = None  # the last config seen, for seeding

    @property
    def backend(self) -> str:  # type: ignore[override]
        return "memory (redis unreachable)" if self.degraded else "redis"

    @property
    def degraded(self) -> bool:
        """True while this process uses its local breaker."""
        return self.guard.degraded

    @property
    def fallback_count(self) -> int:
        """Times this store entered fallback (also counted from breaker:fallback events)."""
        return self.guard.failures

    @property
    def last_error(self) -> str | None:
        return self.guard.last_error

    # -- policy ---------------------------------------------------------------------------
    def _use_local(self) -> bool:
        return self.degraded and self.clock.now() < self._retry_at

    def _degrade(self, exc: BaseException, cfg: CircuitBreakerConfig) -> None:
        """Re-raise ``exc`` unless Redis failed; else (first time) switch to a local breaker.

        The local breaker is seeded before the guard emits ``breaker:fallback``.
        """
        if not self.guard.is_failure(exc):
            raise exc
        self._retry_at = self.clock.now() + self.retry_interval
        if not self.degraded:
            self._domain += 1
            self.local = MemoryBreakerStore(self.clock)
            open_until = self._known_open_until
            if open_until is not None and open_until > self.clock.now():
                seed = Snapshot(state=OPEN, open_until=open_until)
            else:
                seed = Snapshot(consecutive_failures=self._known_consecutive)
            self.local.seed(seed, cfg)
        self.guard.failed(exc, "using a local breaker", name=self.name, active=True,
                          backend="memory")

    def _recover(self) -> None:
        if self.degraded:
            self._domain += 1
            self.guard.recovered(name=self.name, active=False, backend="redis")

    def _remember(self, state: CircuitState, retry_after: float | None,
                  cfg: CircuitBreakerConfig, consecutive: int | None = None) -> None:
        if state is OPEN:
            if retry_after is not None:
                self._known_open_until = self.clock.now() + retry_after
            elif self._known_open_until is None:
                self._known_open_until = self.clock.now() + cfg.timeout_seconds
        else:
            self._known_open_until = None
        if consecutive is not None:
            self._known_consecutive = consecutive

    # -- the contract ---------------------------------------------------------------------
    def _tag(self, answer: _T) -> _T:
        return dataclasses.replace(answer, gen=self._domain * _DOMAIN + answer.gen % _DOMAIN)

    async def acquire(self, cfg: CircuitBreakerConfig) -> Admission:
        return self._tag(await self._acquire(cfg))

    async def record(
        self, admission: Admission, outcome: str, cfg: CircuitBreakerConfig, error: str | None
    ) -> RecordResult:
        return self._tag(await self._record(admission, outcome, cfg, error))

    async def force(
        self, state: CircuitState, cfg: CircuitBreakerConfig, reason: str
    ) -> RecordResult:
        return self._tag(await self._force(state, cfg, reason))

    async def snapshot(self) -> Snapshot:
        return self._tag(await self._snapshot())

    async def _acquire(self, cfg: CircuitBreakerConfig) -> Admission:
        self._cfg = cfg
        if self._use_local():
            return self.local.acquire_now(cfg)
        try:
            admission = await self.primary.acquire(cfg)
        except Exception as exc:
            self._degrade(exc, cfg)
            return self.local.acquire_now(cfg)
        self._recover()
        self._remember(admission.state, admission.retry_after, cfg)
        return admission

    async def _record(
        self, admission: Admission, outcome: str, cfg: CircuitBreakerConfig, error: str | None
    ) -> RecordResult:
        if admission.store is not self.primary or self._use_local():
            return self.local.record_now(admission, outcome, cfg, error)
        try:
            result: RecordResult = await self.primary.record(admission, outcome, cfg, error)
        except Exception as exc:
            self._degrade(exc, cfg)
            return self.local.record_now(admission, outcome, cfg, error)
        self._recover()
        fresh_open = result.transition is not None and result.state is OPEN
        self._remember(result.state, cfg.timeout_seconds if fresh_open else None, cfg,
                       result.consecutive_failures)
        return result

    async def _force(
        self, state: CircuitState, cfg: CircuitBreakerConfig, reason: str
    ) -> RecordResult:
        try:
            result = await self.primary.force(state, cfg, reason)
        except Exception as exc:
            self._degrade(exc, cfg)
            return self.local.force_now(state, cfg, reason)
        self._recover()
        self._remember(state, cfg.timeout_seconds if state is OPEN else None, cfg, 0)
        return result

    async def _snapshot(self) -> Snapshot:
        if self._use_local():
            return self._local_snapshot()
        try:
            snap = await self.primary.snapshot()
        except Exception as exc:
            self._degrade(exc, self._cfg or CircuitBreakerConfig())
            return self._local_snapshot()
        self._recover()
        self._known_open_until = snap.open_until if snap.state is OPEN else None
        self._known_consecutive = snap.consecutive_failures
        return snap

    def _local_snapshot(self) -> Snapshot:
        snap = self.local.snapshot_now()
        snap.extra = {"fallback": True, "redis_error": self.last_error}
        return snap
