"""``engine="ray"``: the same map, its rows partitioned into Ray tasks.

Why tasks that each build a Kite: a Kite holds sockets, event loops and locks that cannot
travel between processes. A task receives the Kite's class (pickled by reference) and
its settings, builds its own Kite, and runs its rows with the asyncio engine
(``runner.MapRunner``): the same pipeline, retries, breaker waits and checkpoint commits
as on one machine. The checkpoint must be shared, so it is Postgres (or none).

Ray is an optional extra (``pip install 'kite-lab[ray]'``). The cluster is the one
``ray.init()`` finds (``RAY_ADDRESS``), else a local one; a cluster the caller already
initialised is used as it is.

Concurrency and budget are split across the tasks that run at once (each gets its share),
so the whole map never has more rows in flight, nor more worst-case spend, than asked.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import TYPE_CHECKING, Any

from kite_lab.batch.plan import MapPlan, RowPrompts
from kite_lab.batch.runner import MapRunner, RowResult, RunOutcome
from kite_lab.core.errors import ConfigError

if TYPE_CHECKING:
    from kite_lab.batch.calls import BatchHost, MapArgs
    from kite_lab.batch.estimate import RowCost

__all__ = ["import_ray", "run_on_ray"]

_ROWS_PER_TASK = 256  # small enough for even progress, large enough to amortise a Kite


def import_ray() -> Any:
    """The ``ray`` module, or a ConfigError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "engine='ray' needs Ray, which is not installed: pip install 'kite-lab[ray]' "
            "(or use engine='asyncio')"
        ) from None
    return ray


async def run_on_ray(host: BatchHost, plan: MapPlan, args: MapArgs, params: dict[str, Any],
                     cache: Any, costs: RowCost, describe: dict[str, Any]) -> RunOutcome:
    """Run the plan's pending rows on Ray; the outcome as the asyncio engine gives it."""
    ray = import_ray()
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, include_dashboard=False,
                 log_to_driver=False)
    from kite_lab.batch.checkpoint_open import open_checkpoint

    store = open_checkpoint(args.checkpoint)
    results: dict[str, RowResult] = {}
    try:
        if store is not None:
            for key, record in (await store.load(list(plan.jobs))).items():
                results[key] = RowResult.from_record(record)
    finally:
        if store is not None:
            await store.aclose()
    pending = [k for k in plan.jobs if k not in results]
    chunks = [pending[i:i + _ROWS_PER_TASK] for i in range(0, len(pending), _ROWS_PER_TASK)]
    slots = max(1, min(len(chunks), int(ray.cluster_resources().get("CPU", 1))))
    per_task = max(1, math.ceil(args.concurrency / slots))
    settings = host.settings
    overrides = {name: getattr(settings, name) for name in type(settings).model_fields}
    spec = {"model": args.model, "system": args.system, "schema": args.schema,
            "params": params, "cache": cache, "retries": args.retries,
            "concurrency": per_task, "checkpoint": args.checkpoint}
    remote = ray.remote(num_cpus=1)(_run_chunk)
    refs = []
    for chunk in chunks:
        budget = None
        if args.budget_usd is not None:  # each running task gets its share of the budget
            budget = args.budget_usd * len(chunk) / max(1, len(pending))
        rows = [(key, plan.prompt_of(key)) for key in chunk]
        refs.append(remote.remote(type(host), overrides, rows, spec, budget,
                                  costs.provider, costs.model))
    bus = host.event_bus
    bus.emit("map:start", rows=len(plan.keys), unique=len(plan.jobs), resumed=len(results),
             pending=len(pending), concurrency=args.concurrency, budget_usd=args.budget_usd,
             tasks=len(chunks), **describe)
    from kite_lab.batch.progress import MapProgress

    progress = MapProgress(len(plan.jobs), len(results), enabled=args.progress)
    spent, skipped = 0.0, 0
    try:
        for finished in asyncio.as_completed([asyncio.wrap_future(r.future()) for r in refs]):
            outcome: RunOutcome = await finished
            spent += outcome.spent_usd
            skipped += outcome.skipped
            for key, result in outcome.results.items():
                results[key] = result
                bus.emit("map:row", row_key=key, outcome=result.outcome,
                         cost_usd=result.cost_usd, latency_s=result.latency_s,
                         error=result.error.partition(":")[0] if result.error else None)
                progress.advance(error=result.error is not None, spent_usd=spent)
    except asyncio.CancelledError:
        for ref in refs:
            ray.cancel(ref)
        raise
    finally:
        progress.close()
    counts: dict[str, int] = {}
    for result in results.values():
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    bus.emit("map:done", status="completed", rows=len(plan.keys), spent_usd=spent,
             skipped=skipped, **counts)
    return RunOutcome(results, spent, skipped, counts=counts)


def _run_chunk(kite_class: type, overrides: dict[str, Any], rows: list[tuple[str, str]],
               spec: dict[str, Any], budget: float | None, provider: str, model: str
               ) -> RunOutcome:
    """One Ray task: a Kite of its own, the asyncio engine over ``rows``."""
    from kite_lab.core.runner import run_sync

    ai = kite_class(config=overrides, env_file=None)
    try:
        return run_sync(_chunk(ai, rows, spec, budget, provider, model))
    finally:
        ai.close()


async def _chunk(ai: Any, rows: list[tuple[str, str]], spec: dict[str, Any],
                 budget: float | None, provider: str, model: str) -> RunOutcome:
    from kite_lab.batch.calls import MapArgs, model_call
    from kite_lab.batch.checkpoint_open import open_checkpoint
    from kite_lab.batch.estimate import RowCost

    keys = [key for key, _ in rows]
    prompts = RowPrompts([text for _, text in rows], [None] * len(rows), "rendered")
    plan = MapPlan(None, prompts, keys, {k: i for i, k in enumerate(keys)}, {})
    args = MapArgs(None, None, spec["model"], spec["system"], spec["schema"])
    call = model_call(ai, args, dict(spec["params"]), spec["cache"])
    costs = RowCost(provider, model, spec["system"], spec["params"])
    store = open_checkpoint(spec["checkpoint"])
    try:
        runner = MapRunner(plan, call, bus=ai.event_bus, concurrency=spec["concurrency"],
                           retries=spec["retries"], budget_usd=budget,
                           worst_case=costs.worst_case if budget is not None else None,
                           store=store, progress=False,
                           secrets=ai.settings.secret_values())
        return await runner.run()
    finally:
        if store is not None:
            await store.aclose()
