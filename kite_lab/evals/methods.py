"""The ``Kite`` methods for evals (``evaluate``/``aevaluate``), mixed into the facade.

Why a mixin: the facade stays one small module while each capability keeps its public
methods next to its implementation; the methods name a host Protocol, not ``Kite``.
Nothing heavy is imported here: pandas, numpy and plotly load on the first eval.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kite_lab.core.runner import run_sync

if TYPE_CHECKING:
    from kite_lab.evals.result import EvalResult
    from kite_lab.evals.run import EvalHost

__all__ = ["EvalMethods"]


class EvalMethods:
    """``ai.evaluate`` / ``ai.aevaluate``: targets x dataset x scorers."""

    async def aevaluate(
        self: EvalHost,
        dataset: Any,
        targets: Any,
        scorers: Sequence[Any],
        *,
        repeats: int = 1,
        concurrency: int = 16,
        budget_usd: float | None = None,
        checkpoint: Any = None,
        name: str | None = None,
        prompt: str | None = None,
        progress: bool = True,
    ) -> EvalResult:
        """``await ai.aevaluate(...)``: the async form of ``ai.evaluate``."""
        from kite_lab.evals.run import run_eval

        return await run_eval(self, dataset, targets, scorers, repeats=repeats,
                              concurrency=concurrency, budget_usd=budget_usd,
                              checkpoint=checkpoint, name=name, prompt=prompt,
                              progress=progress)

    def evaluate(
        self: EvalHost,
        dataset: Any,
        targets: Any,
        scorers: Sequence[Any],
        *,
        repeats: int = 1,
        concurrency: int = 16,
        budget_usd: float | None = None,
        checkpoint: Any = None,
        name: str | None = None,
        prompt: str | None = None,
        progress: bool = True,
    ) -> EvalResult:
        """Run every target over every row of ``dataset`` and score each output.

        ``dataset``: a DataFrame, a list of dicts, or a .csv/.jsonl/.json path.
        ``targets``: model ids (asked ``prompt=``, default ``{input}``),
        ``Prompt(template, model=..., system=..., **params)`` variants, or agents.
        ``scorers``: from ``kite_lab.evals.scorers`` (``exact_match("answer")``,
        ``similarity("answer", 0.8)``, ``llm_judge(model, rubric)`` ...), spec strings
        (``"exact_match:answer"``) or callables ``(output, row) -> float | bool``.
        Each target runs through ``ai.map`` (``concurrency``, ``budget_usd`` for the whole
        eval, ``checkpoint`` to resume); ``repeats`` asks each sample again, uncached.
        Returns an ``EvalResult`` (``.df``, ``.summary()``, ``.compare(a, b)``, ``.plot()``).
        """
        return run_sync(EvalMethods.aevaluate(
            self, dataset, targets, scorers, repeats=repeats, concurrency=concurrency,
            budget_usd=budget_usd, checkpoint=checkpoint, name=name, prompt=prompt,
            progress=progress))
