"""``engine="ray"``: the same map, its rows spread over a Ray cluster (``kite-lab[ray]``).

Why the driver still plans: rendering, validation and row keys happen once, on the driver,
exactly as for the asyncio engine, so both engines compute the same keys and the same
frame. Only the calls move: the rows still to run are split into chunks, each a Ray task
(one CPU) that builds its own ``Kite`` from the driver's settings and runs the asyncio
engine (pipeline, retries, breaker waits) over its chunk with its share of
``concurrency``.

The checkpoint must be Postgres: every worker commits there, and a rerun (on Ray or not)
finds what any worker finished. ``ray.init()`` connects to ``RAY_ADDRESS`` when set, else
starts a local cluster; a cluster already initialised by the caller is used as is.

Workers need the provider key: the settings travel in the task arguments (as any Ray
credential does); they are never logged. Events of the workers' calls (``llm:*``) stay in
the workers; the driver emits ``map:*`` for every row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kite_lab.core.errors import ConfigError, InvalidInput
from kite_lab.core.runner import run_sync

from .budget import BudgetLedger
from .checkpoint import is_postgres_url, open_checkpoint
from .planner import MapPlan, RowTask, is_agent
from .runner import RetryPolicy, RowOutcome, Runner

__all__ = ["check_ray_args", "run_on_ray", "worker_config"]

_CHUNKS_PER_CPU = 4  # small enough chunks for steady progress, few enough to be cheap
_remote_cache: dict[str, Any] = {}


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "engine='ray' needs Ray, an optional extra: pip install 'kite-lab[ray]'"
        ) from None
    return ray


def check_ray_args(checkpoint: Any, budget_usd: float | None, prompt: Any) -> None:
    """Refuse what the Ray engine cannot do, before any call."""
    _import_ray()
    if not is_postgres_url(checkpoint):
        raise InvalidInput(
            "engine='ray' needs a checkpoint every worker can reach: "
            "checkpoint='postgresql://user@host/db' (a SQLite file is local to one machine)"
        )
    if budget_usd is not None:
        raise InvalidInput(
            "budget_usd is not supported with engine='ray' yet; use engine='asyncio' "
            "for a budgeted map"
        )
    if is_agent(prompt):
        raise InvalidInput(
            "engine='ray' maps prompts (templates or functions), not Agents; "
            "use engine='asyncio' for an Agent"
        )


def worker_config(host: Any) -> dict[str, Any]:
    """The driver's settings as ``Kite(config=...)`` overrides (non-default values only)."""
    from pydantic import SecretStr

    settings = host.settings
    config: dict[str, Any] = {}
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        if value == field.default:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, Path):
            value = str(value.resolve())
        config[name] = value
    return config


def _run_chunk(
    kite_class: type,
    config: dict[str, Any],
    plan: MapPlan,
    tasks: list[RowTask],
    checkpoint: str,
    concurrency: int,
    policy: RetryPolicy,
) -> dict[str, RowOutcome]:
    """One Ray task: a Kite of its own, the asyncio engine over ``tasks``."""
    host = kite_class(config=config, env_file=None)

    async def run() -> dict[str, RowOutcome]:
        store = open_checkpoint(checkpoint)
        try:
            runner = Runner(host, plan, concurrency=concurrency, policy=policy,
                            ledger=BudgetLedger(None), store=store)
            return await runner.run(tasks)
        finally:
            await store.aclose()
            await host.aclose()

    return run_sync(run())


def _remote(ray: Any) -> Any:
    remote = _remote_cache.get("chunk")
    if remote is None:
        remote = _remote_cache["chunk"] = ray.remote(num_cpus=1, max_retries=0)(_run_chunk)
    return remote


def _chunks(tasks: Sequence[RowTask], count: int) -> list[list[RowTask]]:
    size = math.ceil(len(tasks) / count)
    return [list(tasks[i : i + size]) for i in range(0, len(tasks), size)]


async def run_on_ray(
    host: Any,
    plan: MapPlan,
    tasks: Sequence[RowTask],
    *,
    checkpoint: str,
    concurrency: int,
    policy: RetryPolicy,
    on_row: Callable[[RowOutcome], None],
    ledger: BudgetLedger,
) -> dict[str, RowOutcome]:
    ray = _import_ray()
    if not tasks:
        return {}
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, ignore_reinit_error=True,
                 log_to_driver=False)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_task = max(1, math.ceil(concurrency / cpus))
    slim = dataclasses.replace(plan, frame=plan.frame.iloc[:0], row_keys=[], tasks=[])
    remote, config = _remote(ray), worker_config(host)
    pending = [
        remote.remote(type(host), config, slim, chunk, checkpoint, per_task, policy)
        for chunk in _chunks(tasks, cpus * _CHUNKS_PER_CPU)
    ]
    outcomes: dict[str, RowOutcome] = {}
    try:
        while pending:
            ready, pending = await asyncio.to_thread(ray.wait, pending, num_returns=1)
            for ref in ready:
                chunk_outcomes: dict[str, RowOutcome] = await asyncio.to_thread(ray.get, ref)
                for key, outcome in chunk_outcomes.items():
                    outcomes[key] = outcome
                    ledger.spent += outcome.paid_usd or 0.0
                    on_row(outcome)
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return outcomes
