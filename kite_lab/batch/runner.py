"""The asyncio engine of ``ai.map``: a fixed pool of workers over the rows still to run.

Why a pool of ``concurrency`` workers and not one task per row: 100,000 rows must not
become 100,000 pending tasks (memory, and a cancelled map would have to unwind them all).

Per row: reserve its worst case in the budget, call through the pipeline (``ai.agenerate``
or ``agent.run``; cache, breaker, kill switch, metrics and events included), retry the
retryable failures with tenacity (Retry-After when the provider sent one, else exponential
backoff with jitter), commit the answer to the checkpoint, and only then report it done.

An open circuit breaker is not a row failure: the row, and every other worker, waits until
the breaker's ``retry_after`` (half-open) and tries again, without spending an attempt, so a
provider outage pauses the map instead of turning the remaining rows into errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from kite_lab.core.errors import (
    CircuitBreakerError,
    ProviderConnectionError,
    ProviderTimeout,
    RateLimitError,
    RateLimitExceeded,
    ServerError,
    redact,
)
from kite_lab.core.types import Completion

from .budget import BudgetLedger
from .checkpoint import CheckpointStore, GroupCommitter
from .planner import MapPlan, RowTask
from .structured import structured_generate

__all__ = ["BUDGET_EXCEEDED", "RetryPolicy", "RowOutcome", "Runner", "record_of"]

BUDGET_EXCEEDED = "budget exceeded"
RETRYABLE: tuple[type[Exception], ...] = (
    RateLimitError,
    ServerError,
    ProviderTimeout,
    ProviderConnectionError,
    RateLimitExceeded,
)
_RETRYABLE_NAMES = {cls.__name__ for cls in RETRYABLE}
Status = Literal["ok", "error", "budget", "resumed"]


@dataclass(frozen=True)
class RetryPolicy:
    """How rows retry: ``retries`` more attempts, backoff between ``initial`` and ``maximum``."""

    retries: int = 2
    initial: float = 0.5
    maximum: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After is capped to this
    breaker_poll: float = 0.25  # wait when the breaker gives no retry_after


@dataclass
class RowOutcome:
    key: str
    status: Status
    record: dict[str, Any] | None = None  # what the checkpoint stores (ok rows)
    error: str | None = None
    error_type: str | None = None
    attempts: int = 0
    paid_usd: float | None = 0.0  # what this run paid for the row (errors included)


class _AgentFailed(Exception):
    """An agent run came back with success=False (``Agent.run`` never raises)."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.error_type = result.error_type or "AgentError"
        self.retry_after = result.retry_after
        super().__init__(result.error or "the agent run failed")


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, _AgentFailed):
        return exc.error_type in _RETRYABLE_NAMES
    return isinstance(exc, RETRYABLE)


def record_of(completion: Completion, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "output": None if fields is not None else completion.text,
        "fields": fields,
        "cost_usd": completion.cost_usd,
        "total_tokens": completion.usage.total_tokens,
        "latency_s": round(completion.latency_s, 6),
        "cached": completion.cached,
    }


def _record_of_run(result: Any) -> dict[str, Any]:
    return {
        "output": result.response,
        "fields": None,
        "cost_usd": result.cost_usd,
        "total_tokens": result.total_tokens,
        "latency_s": round(result.latency_s, 6),
        "cached": False,
    }


def _paid(exc: BaseException) -> float | None:
    """What a failed row still cost (a paid answer that did not parse, a failed agent run)."""
    completion = getattr(exc, "completion", None)
    if isinstance(completion, Completion):
        return completion.cost_usd
    if isinstance(exc, _AgentFailed):
        cost: float | None = exc.result.cost_usd
        return cost
    return 0.0


class _BreakerGate:
    """Every worker waits here while the breaker is open (until its half-open time)."""

    def __init__(self, poll: float) -> None:
        self._until = 0.0
        self._poll = poll

    def hold(self, retry_after: float | None) -> None:
        delay = self._poll if retry_after is None else max(0.05, retry_after)
        self._until = max(self._until, time.monotonic() + delay)

    async def wait(self) -> None:
        while (delay := self._until - time.monotonic()) > 0:
            await asyncio.sleep(delay)


class Runner:
    """Runs a plan's rows; ``on_row`` hears each outcome once it is final (and committed)."""

    def __init__(
        self,
        host: Any,
        plan: MapPlan,
        *,
        concurrency: int,
        policy: RetryPolicy,
        ledger: BudgetLedger,
        store: CheckpointStore | None = None,
        on_row: Callable[[RowOutcome], None] | None = None,
    ) -> None:
        self.host, self.plan = host, plan
        self.concurrency, self.policy, self.ledger = concurrency, policy, ledger
        self._committer = GroupCommitter(store) if store is not None else None
        self._on_row = on_row
        self._gate = _BreakerGate(policy.breaker_poll)
        self._secrets: list[str] | None = None

    async def run(self, tasks: Sequence[RowTask]) -> dict[str, RowOutcome]:
        outcomes: dict[str, RowOutcome] = {}
        pending = iter(tasks)
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, len(tasks))):
                    group.create_task(self._worker(pending, outcomes))
        except BaseExceptionGroup as group_error:  # one failure (a broken checkpoint)
            raise group_error.exceptions[0] from None
        finally:
            if self._committer is not None:
                await self._committer.aclose()
        return outcomes

    async def _worker(self, pending: Iterator[RowTask], outcomes: dict[str, RowOutcome]) -> None:
        for task in pending:
            outcome = await self._row(task)
            outcomes[task.key] = outcome
            if self._on_row is not None:
                self._on_row(outcome)

    async def _row(self, task: RowTask) -> RowOutcome:
        worst = task.worst_case_usd
        if not await self.ledger.reserve(worst):
            return RowOutcome(task.key, "budget", error=BUDGET_EXCEEDED, error_type="budget")
        paid: float | None = 0.0
        try:
            record, attempts = await self._with_retries(task)
            paid = record["cost_usd"]
        except Exception as exc:
            paid = _paid(exc)
            error_type = getattr(exc, "error_type", None) or type(exc).__name__
            return RowOutcome(
                task.key, "error", error=self._message(exc, error_type), error_type=error_type,
                attempts=getattr(exc, "_kite_attempts", self.policy.retries + 1), paid_usd=paid,
            )
        finally:
            await self.ledger.settle(worst, paid)
        if self._committer is not None:
            await self._committer.commit(task.key, record)  # durable before it counts as done
        return RowOutcome(task.key, "ok", record=record, attempts=attempts, paid_usd=paid)

    async def _with_retries(self, task: RowTask) -> tuple[dict[str, Any], int]:
        from tenacity import (
            AsyncRetrying,
            retry_if_exception,
            stop_after_attempt,
            wait_exponential_jitter,
        )

        policy = self.policy
        backoff = wait_exponential_jitter(initial=policy.initial, max=policy.maximum)

        def wait(state: Any) -> float:
            exc = state.outcome.exception() if state.outcome else None
            retry_after = getattr(exc, "retry_after", None)
            if isinstance(retry_after, int | float) and retry_after > 0:
                return float(min(retry_after, policy.max_retry_after))
            return float(backoff(state))

        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.retries + 1),
            wait=wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    record = await self._until_admitted(task)
        except Exception as exc:
            exc._kite_attempts = attempts  # type: ignore[attr-defined]
            raise
        return record, attempts

    async def _until_admitted(self, task: RowTask) -> dict[str, Any]:
        """One attempt; an open breaker makes it wait for half-open, not fail."""
        while True:
            await self._gate.wait()
            try:
                return await self._call(task)
            except CircuitBreakerError as exc:
                self._gate.hold(exc.retry_after)
            except _AgentFailed as exc:
                if exc.error_type != "CircuitBreakerError":
                    raise
                self._gate.hold(exc.retry_after)

    async def _call(self, task: RowTask) -> dict[str, Any]:
        plan = self.plan
        if plan.kind == "agent":
            result = await plan.agent.run(task.prompt)
            if not result.success:
                raise _AgentFailed(result)
            return _record_of_run(result)
        if plan.schema is not None:
            fields, completion = await structured_generate(
                self.host, task.prompt, plan.schema,
                model=plan.model_arg, system=plan.system, params=plan.params,
            )
            return record_of(completion, fields)
        completion = await self.host.agenerate(
            task.prompt, model=plan.model_arg, system=plan.system, **plan.params
        )
        return record_of(completion)

    def _message(self, exc: BaseException, error_type: str) -> str:
        if self._secrets is None:
            try:
                self._secrets = list(self.host.settings.secret_values())
            except Exception:
                self._secrets = []
        return redact(f"{error_type}: {exc}", self._secrets)
