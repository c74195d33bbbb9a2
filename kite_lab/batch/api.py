"""``amap`` / ``map``: one prompt over every row of a table, as a frame of answers.

The order of work, and why: plan (render and check every row, no I/O) -> open the
checkpoint and find rows already done -> budget checks -> run only the rest -> assemble a
frame in the input's order. Everything that can be wrong with the arguments is found in
the first step, before anything is paid.

Events (on ``ai.event_bus``; metrics and frames subscribe to them):

    map:start  map_id, rows, distinct, to_run, resumed, concurrency, engine, provider,
               model, budget_usd, checkpoint (masked)
    map:row    map_id, row_key, outcome (ok | error | budget | resumed), rows (how many
               input rows share the key), cost_usd, total_tokens, latency_s, cached,
               error_type, attempts
    map:done   map_id, rows, ok, errors, budget_skipped, resumed, spent_usd, elapsed_s,
               rows_per_s, stopped_by_budget
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

from kite_lab.core.errors import BudgetExceeded, InvalidInput
from kite_lab.core.runner import run_sync
from kite_lab.core.validate import check_int

from .budget import BudgetLedger, BudgetWarning, check_budget
from .checkpoint import CheckpointStore, open_checkpoint
from .planner import MapPlan, plan_map
from .progress import MapProgress
from .runner import BUDGET_EXCEEDED, RetryPolicy, RowOutcome, Runner

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MapEstimate", "amap", "map"]

META_COLUMNS = ("_error", "_cost_usd", "_total_tokens", "_latency_s", "_cached", "_row_key")
Engine = Literal["asyncio", "ray"]


@dataclass(frozen=True)
class MapEstimate:
    """What a map would do (``dry_run=True``): nothing was called to compute it.

    ``prompt_tokens`` is an upper bound (UTF-8 bytes + message overhead, which byte-level
    tokenizers never exceed); ``worst_case_usd`` prices it plus ``max_tokens`` per row at
    the price table's rates, and is None when the table has no price (never a guess) or
    ``max_tokens`` is not set.
    """

    rows: int
    distinct_rows: int
    already_done: int
    to_run: int
    prompt_tokens: int
    max_completion_tokens: int | None
    worst_case_usd: float | None
    provider: str | None
    model: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _estimate(plan: MapPlan, done: set[str]) -> MapEstimate:
    todo = [t for t in plan.tasks if t.key not in done]
    per_row = plan.max_completion_tokens
    worst = [t.worst_case_usd for t in todo]
    return MapEstimate(
        rows=len(plan.row_keys),
        distinct_rows=len(plan.tasks),
        already_done=len(plan.tasks) - len(todo),
        to_run=len(todo),
        prompt_tokens=sum(t.prompt_tokens_max for t in todo),
        max_completion_tokens=None if per_row is None else per_row * len(todo),
        worst_case_usd=None if any(w is None for w in worst) else sum(w or 0.0 for w in worst),
        provider=plan.provider,
        model=plan.model,
    )


def _check_args(concurrency: Any, retries: Any, output: Any, engine: Any) -> None:
    check_int(concurrency, "concurrency")
    check_int(retries, "retries", minimum=0)
    if not isinstance(output, str) or not output:
        raise InvalidInput(f"output must be a column name (a non-empty str), got {output!r}")
    if engine not in ("asyncio", "ray"):
        raise InvalidInput(f"engine must be 'asyncio' or 'ray', got {engine!r}")


def _check_budget_plan(plan: MapPlan, budget: float | None) -> None:
    if budget is None or plan.price_known:
        return
    if plan.kind == "agent":
        raise InvalidInput(
            "budget_usd cannot bound an Agent's rows: a run's worst case (iterations, tools) "
            "is not known in advance; drop budget_usd or map a prompt instead"
        )
    if plan.max_completion_tokens is None and plan.provider is not None:
        raise InvalidInput(
            "budget_usd needs max_tokens=... so each row's worst case is known "
            "(e.g. ai.map(df, prompt, budget_usd=5, max_tokens=256))"
        )
    raise InvalidInput(
        f"budget_usd needs a price for {plan.provider}/{plan.model}, which the price table "
        "does not have; add it with kite_lab.providers.pricing.register_price(...)"
    )


def _output_columns(plan: MapPlan, output: str) -> list[str]:
    names = list(plan.schema.fields) if plan.schema is not None else [output]
    clash = [n for n in names if n in plan.frame.columns]
    if clash:
        raise InvalidInput(
            f"the data already has column(s) {', '.join(repr(c) for c in clash)}; choose another "
            f"output= name (or rename the column) so no input column is overwritten"
        )
    return names


def _frame(
    plan: MapPlan, output_columns: list[str], outcomes: dict[str, RowOutcome]
) -> pd.DataFrame:
    """The input plus answers and metadata, in input order; a repeated key is paid once."""
    import pandas as pd

    frame = plan.frame
    values: dict[str, list[Any]] = {name: [] for name in [*output_columns, *META_COLUMNS]}
    seen: set[str] = set()
    for key in plan.row_keys:
        outcome = outcomes[key]
        record = outcome.record
        first = key not in seen
        seen.add(key)
        if record is not None:
            fields = record.get("fields") or {}
            for name in output_columns:
                values[name].append(fields.get(name) if plan.schema else record.get("output"))
            cost = record.get("cost_usd") if first else 0.0
            values["_error"].append(None)
            values["_cost_usd"].append(float("nan") if cost is None else cost)
            values["_total_tokens"].append(int(record.get("total_tokens") or 0))
            values["_latency_s"].append(float(record.get("latency_s") or 0.0))
            values["_cached"].append(bool(record.get("cached")) or not first)
        else:
            for name in output_columns:
                values[name].append(None)
            paid = outcome.paid_usd if first else 0.0
            values["_error"].append(outcome.error)
            values["_cost_usd"].append(float("nan") if paid is None else paid)
            values["_total_tokens"].append(0)
            values["_latency_s"].append(0.0)
            values["_cached"].append(False)
        values["_row_key"].append(key)
    added = pd.DataFrame(values, index=frame.index)
    return pd.concat([frame, added], axis=1)


def _emit(host: Any, name: str, **data: Any) -> None:
    host.event_bus.emit(name, **data)


@overload
async def amap(
    host: Any, data: Any, prompt: Any, *, dry_run: Literal[True], **kwargs: Any
) -> MapEstimate: ...


@overload
async def amap(
    host: Any,
    data: Any,
    prompt: str | Callable[[dict[str, Any]], str] | Any,
    *,
    model: str | None = None,
    system: str | None = None,
    schema: Any = None,
    concurrency: int = 16,
    budget_usd: float | None = None,
    checkpoint: str | CheckpointStore | None = None,
    retries: int | RetryPolicy = 2,
    progress: bool = True,
    output: str = "answer",
    engine: Engine = "asyncio",
    strict: bool = False,
    dry_run: Literal[False] = False,
    **params: Any,
) -> pd.DataFrame: ...


async def amap(
    host: Any,
    data: Any,
    prompt: str | Callable[[dict[str, Any]], str] | Any,
    *,
    model: str | None = None,
    system: str | None = None,
    schema: Any = None,
    concurrency: int = 16,
    budget_usd: float | None = None,
    checkpoint: str | CheckpointStore | None = None,
    retries: int | RetryPolicy = 2,
    progress: bool = True,
    output: str = "answer",
    engine: Engine = "asyncio",
    strict: bool = False,
    dry_run: bool = False,
    **params: Any,
) -> pd.DataFrame | MapEstimate:
    """Run ``prompt`` over every row of ``data``; see ``kite_lab.batch`` for the contract."""
    return await _amap(
        host, data, prompt, model=model, system=system, schema=schema,
        concurrency=concurrency, budget_usd=budget_usd, checkpoint=checkpoint,
        policy=retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=retries),
        progress=progress, output=output, engine=engine, strict=strict, dry_run=dry_run,
        params=params,
    )


async def _amap(
    host: Any,
    data: Any,
    prompt: Any,
    *,
    model: str | None,
    system: str | None,
    schema: Any,
    concurrency: int,
    budget_usd: float | None,
    checkpoint: Any,
    policy: RetryPolicy,
    progress: bool,
    output: str,
    engine: Engine,
    strict: bool,
    dry_run: bool,
    params: dict[str, Any],
) -> pd.DataFrame | MapEstimate:
    _check_args(concurrency, policy.retries, output, engine)
    budget = check_budget(budget_usd)
    if engine == "ray":
        from .ray_engine import check_ray_args

        check_ray_args(checkpoint, budget, prompt)
    plan = plan_map(host, data, prompt, model=model, system=system, schema=schema,
                    params=params)
    columns = _output_columns(plan, output)
    if not dry_run:
        _check_budget_plan(plan, budget)
    store = open_checkpoint(checkpoint) if checkpoint is not None else None
    try:
        done = await store.load([t.key for t in plan.tasks]) if store is not None else {}
        if dry_run:
            return _estimate(plan, set(done))
        return await _execute(host, plan, columns, store, done, concurrency=concurrency,
                              policy=policy, budget=budget, progress=progress, engine=engine,
                              strict=strict, checkpoint=checkpoint)
    finally:
        if store is not None:
            await store.aclose()


async def _execute(
    host: Any,
    plan: MapPlan,
    columns: list[str],
    store: CheckpointStore | None,
    done: dict[str, dict[str, Any]],
    *,
    concurrency: int,
    policy: RetryPolicy,
    budget: float | None,
    progress: bool,
    engine: Engine,
    strict: bool,
    checkpoint: Any,
) -> pd.DataFrame:
    map_id = uuid.uuid4().hex[:16]
    shares = Counter(plan.row_keys)
    todo = [t for t in plan.tasks if t.key not in done]
    outcomes = {key: RowOutcome(key, "resumed", record=rec) for key, rec in done.items()}
    started = time.perf_counter()
    _emit(host, "map:start", map_id=map_id, rows=len(plan.row_keys), distinct=len(plan.tasks),
          to_run=len(todo), resumed=len(done), concurrency=concurrency, engine=engine,
          provider=plan.provider, model=plan.model, budget_usd=budget,
          checkpoint=getattr(store, "description", None))
    for outcome in outcomes.values():
        _emit_row(host, map_id, outcome, shares[outcome.key])
    ledger = BudgetLedger(budget)
    bar = MapProgress(len(plan.tasks), done=len(done), enabled=progress)

    def on_row(outcome: RowOutcome) -> None:
        _emit_row(host, map_id, outcome, shares[outcome.key])
        bar.advance(spent_usd=ledger.spent, error=outcome.status == "error")

    try:
        if engine == "ray":
            from .ray_engine import run_on_ray

            ran = await run_on_ray(host, plan, todo, checkpoint=checkpoint,
                                   concurrency=concurrency, policy=policy, on_row=on_row,
                                   ledger=ledger)
        else:
            runner = Runner(host, plan, concurrency=concurrency, policy=policy, ledger=ledger,
                            store=store, on_row=on_row)
            ran = await runner.run(todo)
    finally:
        bar.close(spent_usd=ledger.spent)
    outcomes.update(ran)
    frame = _frame(plan, columns, outcomes)
    counts = Counter(o.status for o in ran.values())
    elapsed = time.perf_counter() - started
    _emit(host, "map:done", map_id=map_id, rows=len(plan.row_keys), ok=counts["ok"],
          errors=counts["error"], budget_skipped=counts["budget"], resumed=len(done),
          spent_usd=ledger.spent, elapsed_s=elapsed,
          rows_per_s=len(ran) / elapsed if elapsed > 0 else 0.0,
          stopped_by_budget=ledger.exhausted)
    if counts["budget"]:
        skipped = int((frame["_error"] == BUDGET_EXCEEDED).sum())
        message = (
            f"budget_usd={budget:g} reached: spent ${ledger.spent:.4f}; {skipped} row(s) not "
            f"run have _error == {BUDGET_EXCEEDED!r}. Rerun with a larger budget"
            + (" and the same checkpoint to finish them" if store is not None else "")
        )
        if strict:
            raise BudgetExceeded(message, partial=frame, spent_usd=ledger.spent)
        warnings.warn(message, BudgetWarning, stacklevel=3)
    return frame


def _emit_row(host: Any, map_id: str, outcome: RowOutcome, rows: int) -> None:
    record = outcome.record or {}
    _emit(host, "map:row", map_id=map_id, row_key=outcome.key, outcome=outcome.status,
          rows=rows, cost_usd=record.get("cost_usd", outcome.paid_usd),
          total_tokens=record.get("total_tokens", 0), latency_s=record.get("latency_s", 0.0),
          cached=bool(record.get("cached")), error_type=outcome.error_type,
          attempts=outcome.attempts)


def map(host: Any, data: Any, prompt: Any, **kwargs: Any) -> Any:  # noqa: A001 - ai.map
    """``amap`` from sync code (works inside Jupyter's running loop too)."""
    return run_sync(amap(host, data, prompt, **kwargs))

