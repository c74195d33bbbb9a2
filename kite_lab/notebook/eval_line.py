"""``%%kite eval DATASET ...``: the line of an eval cell, parsed in one place.

    %%kite eval DATASET [-o VAR] --targets a,b[,agent:NAME] --scorers exact_match:answer,...
           [--repeats N] [--concurrency N] [--budget USD] [--checkpoint PATH] [--name NAME]
    Answer with one word: what is the capital of {country}?

The body is the prompt template of the model-id targets (``{column}`` of the dataset; the
notebook's variables are not interpolated into it). ``DATASET`` is a notebook variable
(a DataFrame or list of dicts) or a .csv/.jsonl path. The cell runner and the exporter
both read the line here and both call ``kite_lab.script.evaluate_cell``, so the cell and
the exported script run the same eval.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from IPython.core.error import UsageError

__all__ = ["EVAL_HELP", "EvalCellPlan", "is_eval_line", "parse_eval_line"]

#: the eval cell's usage, shown by ``%%kite?``
EVAL_HELP = (
    "%%kite eval DATASET [-o VAR] --targets MODEL,agent:NAME,... --scorers SPEC,...\n"
    "       [--repeats N] [--concurrency N] [--budget USD] [--checkpoint PATH] [--name NAME]\n"
    "  ai.evaluate over DATASET (a variable or a .csv/.jsonl path); the body is the prompt\n"
    "  template of the model targets ({column}); scorers: exact_match:COL, contains:COL,\n"
    "  similarity:COL[:THRESHOLD], regex:PATTERN, json_valid, llm_judge:MODEL:RUBRIC"
)


@dataclass(frozen=True)
class EvalCellPlan:
    dataset: str
    targets: tuple[str, ...]
    scorers: tuple[str, ...]
    out: str | None = None
    repeats: int | None = None
    concurrency: int | None = None
    budget: float | None = None
    checkpoint: str | None = None
    name: str | None = None

    def options(self) -> dict[str, Any]:
        """The ``ai.evaluate`` keyword arguments the line set."""
        given = {"repeats": self.repeats, "concurrency": self.concurrency,
                 "budget_usd": self.budget, "checkpoint": self.checkpoint, "name": self.name}
        return {k: v for k, v in given.items() if v is not None}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # never SystemExit in a kernel
        raise UsageError(f"%%kite eval: {message}")


def _parser() -> _Parser:
    parser = _Parser(prog="%%kite eval", add_help=False, allow_abbrev=False)
    parser.add_argument("dataset")
    parser.add_argument("-o", "--out", default=None)
    parser.add_argument("--targets", required=True)
    parser.add_argument("--scorers", required=True)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--budget", type=float, default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--name", default=None)
    return parser


def is_eval_line(line: str) -> bool:
    words = line.split(None, 1)
    return bool(words) and words[0] == "eval"


def parse_eval_line(line: str, aliases: Mapping[str, str] | None = None) -> EvalCellPlan:
    """The plan of an eval line (``is_eval_line`` is true); aliases resolve to models."""
    try:
        argv = shlex.split(line)[1:]
    except ValueError as exc:
        raise UsageError(f"%%kite eval: {exc}") from None
    args = _parser().parse_args(argv)
    targets = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    scorers = tuple(s.strip() for s in args.scorers.split(",") if s.strip())
    if not targets:
        raise UsageError("%%kite eval: --targets needs at least one model id or agent:NAME")
    if not scorers:
        raise UsageError("%%kite eval: --scorers needs at least one, e.g. exact_match:answer")
    for flag, value in (("--repeats", args.repeats), ("--concurrency", args.concurrency)):
        if value is not None and value < 1:
            raise UsageError(f"%%kite eval: {flag} must be >= 1")
    if args.budget is not None and not args.budget > 0:
        raise UsageError("%%kite eval: --budget must be > 0 (USD)")
    if args.out is not None and not args.out.isidentifier():
        raise UsageError(f"%%kite eval: -o takes a variable name, not {args.out!r}")
    if aliases:
        from kite_lab.agents.lookup import resolve_alias
        from kite_lab.core.errors import InvalidInput

        try:
            targets = tuple(t if t.startswith("agent:") else resolve_alias(t, aliases) or t
                            for t in targets)
        except InvalidInput as exc:  # an alias cycle
            raise UsageError(f"%%kite eval: {exc}") from None
    return EvalCellPlan(args.dataset, targets, scorers, args.out, args.repeats,
                        args.concurrency, args.budget, args.checkpoint, args.name)
