"""Evaluate prompts, models and agents over datasets: ``ai.evaluate`` (issue 18).

    from kite_lab.evals import Prompt
    from kite_lab.evals.scorers import exact_match, similarity

    result = ai.evaluate(df, [Prompt("Answer: {question}", model="local/smollm2-135m-instruct"),
                              "openai/gpt-4o-mini"],
                         [exact_match("answer"), similarity("answer", 0.8)])
    result.summary(); result.compare(*result.targets); result.plot()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kite_lab.core.lazy import lazy_exports

if TYPE_CHECKING:
    from kite_lab.evals.result import EvalResult
    from kite_lab.evals.targets import Prompt

__all__ = ["EvalResult", "Prompt"]

__getattr__, __dir__ = lazy_exports(
    __name__, {"EvalResult": "result", "Prompt": "targets"}, __all__
)
