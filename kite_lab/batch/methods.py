"""The ``Kite`` methods for batch runs (``map``/``amap``), mixed into the facade.

Why a mixin: the facade stays one small module while each capability keeps its public
methods next to its implementation; the methods name a host Protocol, not ``Kite``.
Both methods build one ``MapArgs`` and run ``batch.mapping.run_map``: ``amap`` awaits it,
``map`` hands it to ``run_sync`` (so it works inside Jupyter's running loop too, and
Ctrl-C cancels it, keeping the rows already committed to the checkpoint). The budget
warning / ``BudgetExceeded`` comes from ``finish_map``, in the caller's thread.
Nothing heavy is imported here: pandas and the engine load on the first map.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kite_lab.core.runner import run_sync

if TYPE_CHECKING:
    import pandas as pd

    from kite_lab.batch.calls import BatchHost

__all__ = ["BatchMethods"]


class BatchMethods:
    """``ai.map`` / ``ai.amap``: a prompt over every row of a table."""

    async def amap(
        self: BatchHost,
        data: Any,
        prompt: Any,
        *,
        model: str | None = None,
        system: str | None = None,
        schema: Any = None,
        concurrency: int = 16,
        budget_usd: float | None = None,
        checkpoint: Any = None,
        retries: int = 2,
        progress: bool = True,
        output: str = "answer",
        engine: str = "asyncio",
        strict: bool = False,
        dry_run: bool = False,
        **params: Any,
    ) -> pd.DataFrame:
        """``await ai.amap(...)``: the async form of ``ai.map`` (same arguments)."""
        from kite_lab.batch.mapping import MapArgs, finish_map, run_map

        args = MapArgs(data, prompt, model, system, schema, concurrency, budget_usd, checkpoint,
                       retries, progress, output, engine, strict, dry_run, params)
        return finish_map(await run_map(self, args))

    def map(
        self: BatchHost,
        data: Any,
        prompt: Any,
        *,
        model: str | None = None,
        system: str | None = None,
        schema: Any = None,
        concurrency: int = 16,
        budget_usd: float | None = None,
        checkpoint: Any = None,
        retries: int = 2,
        progress: bool = True,
        output: str = "answer",
        engine: str = "asyncio",
        strict: bool = False,
        dry_run: bool = False,
        **params: Any,
    ) -> pd.DataFrame:
        """Ask ``prompt`` for every row of ``data``; a copy of ``data`` with the answers.

        ``data``: a DataFrame, a list of dicts, or an iterable of strings (column ``text``).
        ``prompt``: a template over the columns (``"Classify: {review}"``; other braces stay
        literal, ``{{x}}`` is a literal ``{x}``), a callable ``row dict -> str``, or an Agent
        (input: the row's one value, else ``column: value`` lines).

        Adds the column ``output`` (with ``schema=``: one column per field) and ``_error``,
        ``_cost_usd``, ``_total_tokens``, ``_latency_s``, ``_cached``, ``_row_key``; same
        index and order. ``checkpoint=`` (a SQLite path or a postgresql:// URL) makes a
        rerun call only rows not yet done; ``budget_usd`` stops starting rows at the budget
        (a warning; ``strict=True`` raises ``BudgetExceeded``); ``dry_run=True`` returns a
        ``MapEstimate`` and calls nothing; ``engine="ray"`` runs on a Ray cluster.
        Other keyword arguments are model parameters (``temperature``, ``max_tokens``...).
        """
        from kite_lab.batch.mapping import MapArgs, finish_map, run_map

        args = MapArgs(data, prompt, model, system, schema, concurrency, budget_usd, checkpoint,
                       retries, progress, output, engine, strict, dry_run, params)
        return finish_map(run_sync(run_map(self, args)))
