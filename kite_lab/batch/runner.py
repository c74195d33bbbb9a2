"""The asyncio engine of ``ai.map``: bounded concurrency, errors per row, retries, budget.

Why workers and not one task per row: ``concurrency`` workers pull row keys from one
iterator, so a 100,000-row map holds ``concurrency`` coroutines, not 100,000.

Per row: the call goes through the Kite's pipeline (cache, breaker, kill switch,
metrics, events); a retryable failure (rate limit, 5xx, timeout, connection) is retried
by tenacity up to ``retries`` times, waiting the provider's Retry-After when it gave one,
else an exponential backoff with jitter; an open circuit breaker is waited out (its
``retry_after``, until half-open admits the call) without using up a retry, so an outage
pauses the map instead of failing every remaining row. Any other failure is the row's
``_error`` (class and message, secrets scrubbed); the map goes on.

Budget: before a row starts, ``spent + worst case of the rows in flight + this row's
worst case`` must stay within ``budget_usd``; the first row that does not fit stops the
map (no new row starts) and the rows not run are reported as skipped.

A row counts as done -- progress, ``map:row`` event, result -- only after its checkpoint
commit (``checkpoint.CheckpointWriter``).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kite_lab.batch.checkpoint import CheckpointStore, CheckpointWriter
from kite_lab.batch.progress import MapProgress
from kite_lab.core.errors import (
    CircuitBreakerError,
    ProviderConnectionError,
    ProviderTimeout,
    RateLimitError,
    ServerError,
    redact,
)
from kite_lab.core.events import event_context

if TYPE_CHECKING:
    from kite_lab.batch.plan import MapPlan
    from kite_lab.core.events import EventBus

__all__ = ["RETRYABLE", "MapRunner", "RowFailed", "RowResult", "RunOutcome"]

#: errors worth asking again: the provider was busy, failing or unreachable
RETRYABLE: tuple[type[Exception], ...] = (
    RateLimitError, ServerError, ProviderTimeout, ProviderConnectionError,
)
_RETRYABLE_NAMES = frozenset(cls.__name__ for cls in RETRYABLE)
_BREAKER_WAIT = (0.05, 30.0)  # bounds of one wait for an open breaker, seconds
_RETRY_AFTER_MAX = 120.0


class RowFailed(Exception):
    """A row whose Agent run did not succeed (its RunResult names the error class)."""

    def __init__(self, error_type: str | None, message: str | None, retry_after: float | None):
        self.error_type = error_type or "AgentError"
        self.retry_after = retry_after
        super().__init__(message or "the agent run failed")


@dataclass(slots=True)
class RowResult:
    """One row's answer and what it cost, or its error."""

    output: Any = None
    error: str | None = None
    cost_usd: float | None = None
    total_tokens: int | None = None
    latency_s: float | None = None
    cached: bool = False
    #: success | cached (response cache) | resumed (checkpoint) | error | budget (not run)
    outcome: str = "success"

    def record(self) -> dict[str, Any]:
        """What the checkpoint keeps of a finished row."""
        return {"output": self.output, "cost_usd": self.cost_usd,
                "total_tokens": self.total_tokens, "latency_s": self.latency_s,
                "cached": self.cached}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RowResult:
        return cls(output=record.get("output"), cost_usd=record.get("cost_usd"),
                   total_tokens=record.get("total_tokens"), latency_s=record.get("latency_s"),
                   cached=True, outcome="resumed")


@dataclass
class RunOutcome:
    """Every unique row's result, and what the run spent."""

    results: dict[str, RowResult]
    spent_usd: float = 0.0
    skipped: int = 0  # rows not started because of the budget
    elapsed_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


RowCall = Callable[[str], Awaitable[RowResult]]


class MapRunner:
    """Runs a plan's pending rows with ``call`` (one prompt -> RowResult, raising on failure)."""

    def __init__(
        self,
        plan: MapPlan,
        call: RowCall,
        *,
        bus: EventBus,
        concurrency: int,
        retries: int,
        budget_usd: float | None = None,
        worst_case: Callable[[str], float | None] | None = None,
        store: CheckpointStore | None = None,
        progress: bool = True,
        secrets: list[str] | None = None,
        run_id: str | None = None,
        describe: dict[str, Any] | None = None,
    ) -> None:
        self.plan, self.call, self.bus = plan, call, bus
        self.concurrency, self.retries = concurrency, retries
        self.budget, self.worst_case = budget_usd, worst_case
        self.store, self.show_progress = store, progress
        self.secrets = secrets or []
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.describe = describe or {}
        self.results: dict[str, RowResult] = {}
        self.spent = 0.0
        self._reserved = 0.0
        self._budget_hit = False
        self._in_flight = 0
        self._released = asyncio.Event()
        self._writer: CheckpointWriter | None = None
        self._progress: MapProgress | None = None

    # -- the run ---------------------------------------------------------------------
    async def run(self) -> RunOutcome:
        started = time.perf_counter()
        keys = list(self.plan.jobs)
        if self.store is not None:
            for key, record in (await self.store.load(keys)).items():
                self.results[key] = RowResult.from_record(record)
        pending = [k for k in keys if k not in self.results]
        self.bus.emit("map:start", map_run=self.run_id, rows=len(self.plan.keys),
                      unique=len(keys), resumed=len(self.results), pending=len(pending),
                      concurrency=self.concurrency, budget_usd=self.budget, **self.describe)
        self._progress = MapProgress(len(keys), len(self.results), enabled=self.show_progress)
        status = "failed"
        try:
            if self.store is not None:
                self._writer = CheckpointWriter(self.store)
                self._writer.start()
            with event_context(map_run=self.run_id):
                rows = iter(pending)
                try:
                    async with asyncio.TaskGroup() as group:
                        for _ in range(min(self.concurrency, len(pending))):
                            group.create_task(self._worker(rows))
                except BaseExceptionGroup as failed:  # a checkpoint write failed
                    raise failed.exceptions[0] from None
            status = "completed"
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            if self._writer is not None:
                await asyncio.shield(self._writer.aclose())
            self._progress.close()
            skipped = sum(1 for k in keys if k not in self.results) if status == "completed" else 0
            counts: dict[str, int] = {}
            for result in self.results.values():
                counts[result.outcome] = counts.get(result.outcome, 0) + 1
            elapsed = time.perf_counter() - started
            self.bus.emit("map:done", map_run=self.run_id, status=status, rows=len(self.plan.keys),
                          spent_usd=self.spent, skipped=skipped, elapsed_s=elapsed, **counts)
        for key in keys:
            if key not in self.results:
                self.results[key] = RowResult(error="budget exceeded", outcome="budget")
        return RunOutcome(self.results, self.spent, skipped, elapsed, counts)

    async def _worker(self, rows: Iterator[str]) -> None:
        for key in rows:
            if self._budget_hit:
                return
            prompt = self.plan.prompt_of(key)
            reserve = await self._admit(prompt)
            if reserve is None:
                self._budget_hit = True
                self._released.set()  # wake the other waiting workers: they stop too
                return
            await self._row(key, prompt, reserve)

    async def _admit(self, prompt: str) -> float | None:
        """The USD reserved for this row, or None when the budget cannot cover it.

        While rows are in flight their worst case is reserved; when this row does not
        fit, wait for one of them to finish (its real cost is usually far below its worst
        case) and look again. Only with nothing in flight is "does not fit" final."""
        if self.budget is None or self.worst_case is None:
            return 0.0
        worst = self.worst_case(prompt) or 0.0
        while self.spent + self._reserved + worst > self.budget:
            if self._in_flight == 0 or self._budget_hit:
                return None
            self._released.clear()
            await self._released.wait()
        self._reserved += worst
        return worst

    async def _row(self, key: str, prompt: str, reserve: float) -> None:
        started = time.perf_counter()
        self._in_flight += 1
        try:
            with event_context(map_row=key):  # the row's calls name it as their parent
                result = await self._attempts(prompt)
        except Exception as exc:
            result = RowResult(error=self._describe_error(exc), outcome="error")
        finally:
            self._in_flight -= 1
            self._reserved = max(0.0, self._reserved - reserve)
        self.spent += result.cost_usd or 0.0
        self._released.set()
        result.latency_s = time.perf_counter() - started
        if result.error is None:
            result.outcome = "cached" if result.cached else "success"
        if result.error is None and self._writer is not None:
            await self._writer.commit(key, result.record())
        self._done(key, result)

    def _done(self, key: str, result: RowResult) -> None:
        self.results[key] = result
        assert self._progress is not None
        self._progress.advance(error=result.error is not None, spent_usd=self.spent)
        self.bus.emit("map:row", map_run=self.run_id, row_key=key, outcome=result.outcome,
                      cost_usd=result.cost_usd, latency_s=result.latency_s,
                      error=result.error.partition(":")[0] if result.error else None)

    # -- retries ---------------------------------------------------------------------
    async def _attempts(self, prompt: str) -> RowResult:
        """The first attempt directly (the common case, and cheap); tenacity for retries."""
        try:
            return await self._through_breaker(prompt)
        except Exception as exc:
            if self.retries == 0 or not _retryable(exc):
                raise
            first = exc
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

        await asyncio.sleep(_wait_for(first, 1))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retries),
            retry=retry_if_exception(_retryable),
            wait=_wait,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._through_breaker(prompt)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _through_breaker(self, prompt: str) -> RowResult:
        """One attempt; while the breaker is open, wait for it instead of failing."""
        while True:
            try:
                return await self.call(prompt)
            except CircuitBreakerError as exc:
                await asyncio.sleep(_clamp(exc.retry_after, *_BREAKER_WAIT))
            except RowFailed as exc:
                if exc.error_type != "CircuitBreakerError":
                    raise
                await asyncio.sleep(_clamp(exc.retry_after, *_BREAKER_WAIT))

    def _describe_error(self, exc: BaseException) -> str:
        kind = exc.error_type if isinstance(exc, RowFailed) else type(exc).__name__
        message = redact(str(exc), self.secrets)
        return f"{kind}: {message}" if message else kind


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RowFailed):
        return exc.error_type in _RETRYABLE_NAMES
    return isinstance(exc, RETRYABLE)


def _clamp(value: float | None, low: float, high: float) -> float:
    return min(max(value if value is not None else low, low), high)


def _wait(state: Any) -> float:
    """tenacity's wait: see ``_wait_for`` (attempt 1 was made before tenacity took over)."""
    exc = state.outcome.exception() if state.outcome is not None else None
    return _wait_for(exc, state.attempt_number + 1)


def _wait_for(exc: BaseException | None, retry: int) -> float:
    """Before retry number ``retry``: the provider's Retry-After when it sent one, else
    exponential backoff (0.2 s, 0.4 s, ... up to 20 s) with up to 20% jitter."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int | float) and retry_after >= 0:
        return min(float(retry_after), _RETRY_AFTER_MAX)
    base = min(0.2 * 2 ** (retry - 1), 20.0)
    return base * (1 + 0.2 * random.random())
