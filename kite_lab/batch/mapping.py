"""One ``ai.map`` call from start to finish: validate, plan, run on an engine, build the frame.

Why a module of its own: ``methods.py`` (the facade's ``map``/``amap``) stays a thin,
light surface, and ``map``/``amap`` share this one implementation -- the sync method is
``run_sync`` over the same coroutine, never a copy.

Order of work, so that bad input costs nothing: arguments -> data -> every row's prompt
-> the model request (provider, key, parameters validated by ``build_request``) -> row
keys -> checkpoint -> dry run or the engine. The result is a copy of the input with the
answer column(s) and the metadata columns (``plan.META_COLUMNS``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kite_lab.batch.calls import BatchHost, MapArgs, agent_call, model_call, schema_kwargs
from kite_lab.batch.estimate import MapEstimate, RowCost
from kite_lab.batch.plan import (
    META_COLUMNS,
    MapPlan,
    render_prompts,
    schema_fields,
    schema_identity,
    to_frame,
)
from kite_lab.batch.runner import MapRunner, RowResult, RunOutcome
from kite_lab.core.errors import BudgetExceeded, InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from kite_lab.agents.base import Agent
    from kite_lab.batch.checkpoint import CheckpointStore

__all__ = ["BatchHost", "MapArgs", "MapResult", "finish_map", "run_map"]

ENGINES = ("asyncio", "ray")


@dataclass
class MapResult:
    """The frame, and what ``finish_map`` needs to warn or raise about the budget."""

    frame: Any
    outcome: RunOutcome | None = None
    budget_usd: float | None = None
    strict: bool = False


async def run_map(host: BatchHost, args: MapArgs) -> MapResult | MapEstimate:
    """Everything of ``ai.amap`` except the final warning/raise (``finish_map``)."""
    _check_args(args)
    frame = to_frame(args.data)
    agent = _agent_of(args.prompt)
    params = dict(args.params or {})
    cache = params.pop("cache", None)
    prompts = render_prompts(frame, args.prompt, is_agent=agent is not None)
    if agent is not None:
        _check_agent_args(args, params)
        identity = _agent_identity(agent)
        costs = RowCost("agent", agent.model or "", None, {})
    else:
        provider, request = host.build_request(
            prompts.texts[0], model=args.model, system=args.system,
            **schema_kwargs(host, args.schema), **params,
        )
        identity = {"kind": "model", "provider": provider.name, "model": request.model,
                    "system": args.system, "schema": schema_identity(args.schema),
                    "params": request.params}
        costs = RowCost(provider.name, request.model, args.system, request.params)
    fields = schema_fields(args.schema) if args.schema is not None else None
    columns = fields or [args.output]
    _check_output_columns(frame, columns)
    plan = MapPlan.build(frame, prompts, identity)
    if args.budget_usd is not None:
        _check_budget(costs, plan, agent is not None)
    store = _open_store(args)
    try:
        if args.dry_run:
            done = set(await store.load(list(plan.jobs))) if store is not None else set()
            todo = [plan.prompt_of(k) for k in plan.jobs if k not in done]
            return MapEstimate.of(len(frame), todo, len(done), costs, agent=agent is not None)
        call = agent_call(agent) if agent is not None else model_call(
            host, args, params, cache)
        describe = {"engine": args.engine, "provider": costs.provider, "model": costs.model}
        if args.engine == "ray":
            from kite_lab.batch.ray_engine import run_on_ray

            outcome = await run_on_ray(host, plan, args, params, cache, costs, describe)
        else:
            runner = MapRunner(
                plan, call, bus=host.event_bus, concurrency=args.concurrency,
                retries=args.retries, budget_usd=args.budget_usd,
                worst_case=costs.worst_case if args.budget_usd is not None else None,
                store=store, progress=args.progress, secrets=host.settings.secret_values(),
                describe=describe,
            )
            outcome = await runner.run()
    finally:
        if store is not None:
            await store.aclose()
    result_frame = build_frame(plan, outcome, columns, schema=fields is not None)
    return MapResult(result_frame, outcome, args.budget_usd, args.strict)


def finish_map(result: MapResult | MapEstimate) -> Any:
    """The frame (or the estimate); a warning -- or ``BudgetExceeded`` with ``strict`` --
    when the budget stopped the map. Runs in the caller's thread."""
    if isinstance(result, MapEstimate):
        return result
    outcome = result.outcome
    if outcome is not None and outcome.skipped and result.budget_usd is not None:
        if result.strict:
            raise BudgetExceeded(result.budget_usd, outcome.spent_usd, outcome.skipped,
                                 partial=result.frame)
        warnings.warn(
            f"ai.map stopped at budget_usd={result.budget_usd:g}: spent "
            f"${outcome.spent_usd:.6f}; {outcome.skipped} row(s) not run (_error == "
            "'budget exceeded'); rerun with a larger budget and the same checkpoint= to "
            "finish them",
            UserWarning,
            stacklevel=3,
        )
    return result.frame


# -- validation ----------------------------------------------------------------------------


def _check_args(args: MapArgs) -> None:
    if isinstance(args.concurrency, bool) or not isinstance(args.concurrency, int):
        raise TypeError(f"concurrency must be an int, not {type(args.concurrency).__name__}")
    if args.concurrency < 1:
        raise InvalidInput(f"concurrency must be >= 1, got {args.concurrency}")
    if isinstance(args.retries, bool) or not isinstance(args.retries, int) or args.retries < 0:
        raise InvalidInput(f"retries must be an int >= 0, got {args.retries!r}")
    if args.budget_usd is not None:
        if isinstance(args.budget_usd, bool) or not isinstance(args.budget_usd, int | float):
            raise TypeError(f"budget_usd must be a number, not {type(args.budget_usd).__name__}")
        if not args.budget_usd > 0:
            raise InvalidInput(f"budget_usd must be > 0, got {args.budget_usd!r}")
    if not isinstance(args.output, str) or not args.output.strip():
        raise InvalidInput(f"output must be a column name, got {args.output!r}")
    if args.engine not in ENGINES:
        raise InvalidInput(f"engine must be one of {', '.join(ENGINES)}, got {args.engine!r}")


def _agent_of(prompt: Any) -> Agent | None:
    if isinstance(prompt, str) or not hasattr(prompt, "run"):
        return None
    from kite_lab.agents.base import Agent

    return prompt if isinstance(prompt, Agent) else None


def _check_agent_args(args: MapArgs, params: dict[str, Any]) -> None:
    given = [n for n in ("model", "system", "schema") if getattr(args, n) is not None]
    given += sorted(params)
    if given:
        raise InvalidInput(
            f"{', '.join(given)} do not apply when prompt is an Agent; set them on the agent "
            "(ai.create_agent(..., model=...))"
        )
    if args.engine == "ray":
        raise InvalidInput("engine='ray' runs templates and callables; run an Agent with "
                           "engine='asyncio'")


def _check_output_columns(frame: pd.DataFrame, columns: list[str]) -> None:
    clash = [c for c in columns if c in frame.columns and c not in META_COLUMNS]
    if clash:
        raise InvalidInput(
            f"the data already has column(s) {clash}; pass output='...' (or a schema with "
            "other field names) so the answers do not overwrite them"
        )
    bad = [c for c in columns if c in META_COLUMNS]
    if bad:
        raise InvalidInput(f"{bad} are ai.map's metadata columns; name the output otherwise")


def _check_budget(costs: RowCost, plan: MapPlan, agent: bool) -> None:
    if agent:
        raise InvalidInput("budget_usd needs a worst case per row, which an Agent run does not "
                           "have (it may loop); limit the agent with max_iterations instead")
    if costs.max_tokens is None:
        raise InvalidInput("budget_usd needs max_tokens=N so each row's worst case is known "
                           "(e.g. ai.map(..., budget_usd=5, max_tokens=200))")
    if costs.worst_case(plan.prompt_of(next(iter(plan.jobs)))) is None:
        raise InvalidInput(
            f"budget_usd needs a price for {costs.provider}/{costs.model}, which the price "
            "table does not have; add one with kite_lab.providers.pricing.register_price"
        )


def _open_store(args: MapArgs) -> CheckpointStore | None:
    from kite_lab.batch.checkpoint_open import open_checkpoint

    try:
        store = open_checkpoint(args.checkpoint)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    if args.engine == "ray":
        from kite_lab.batch.checkpoint_postgres import PostgresCheckpoint

        if store is not None and not isinstance(store, PostgresCheckpoint):
            raise InvalidInput("engine='ray' needs a shared checkpoint: pass a postgresql:// "
                               "URL (or no checkpoint)")
    return store


def _agent_identity(agent: Agent) -> dict[str, Any]:
    return {"kind": "agent", "agent": agent.name, "type": agent.agent_type,
            "system": agent.system_prompt, "model": agent.model,
            "tools": sorted(t.name for t in agent.tools),
            "max_iterations": agent.max_iterations}


# -- the result frame ------------------------------------------------------------------------


def build_frame(plan: MapPlan, outcome: RunOutcome, columns: list[str], *, schema: bool
                ) -> pd.DataFrame:
    """A copy of the input with the answer column(s) and the metadata, in row order."""
    import numpy as np
    import pandas as pd

    frame = plan.frame
    seen: set[str] = set()
    rows: list[RowResult] = []
    for key in plan.keys:
        result = outcome.results[key]
        if key in seen and result.error is None:  # a duplicate row: asked once, shared
            result = RowResult(result.output, None, 0.0, result.total_tokens, 0.0, True,
                               "cached")
        seen.add(key)
        rows.append(result)
    if schema:
        for name in columns:
            frame[name] = [r.output.get(name) if isinstance(r.output, dict) else None
                           for r in rows]
    else:
        frame[columns[0]] = _objects(frame, [r.output for r in rows])
    frame["_error"] = _objects(frame, [r.error for r in rows])
    frame["_cost_usd"] = np.array(
        [np.nan if r.cost_usd is None else r.cost_usd for r in rows], dtype="float64")
    frame["_total_tokens"] = pd.array([r.total_tokens for r in rows], dtype="Int64")
    frame["_latency_s"] = np.array(
        [np.nan if r.latency_s is None else r.latency_s for r in rows], dtype="float64")
    frame["_cached"] = np.array([r.cached for r in rows], dtype=bool)
    frame["_row_key"] = _objects(frame, plan.keys)
    return frame


def _objects(frame: pd.DataFrame, values: list[Any]) -> Any:
    """An object column: None stays None (pandas 3 would infer ``str`` and make it NaN),
    a list or dict answer stays one value."""
    import numpy as np
    import pandas as pd

    column = np.empty(len(values), dtype=object)
    column[:] = values
    return pd.Series(column, index=frame.index, dtype=object)
