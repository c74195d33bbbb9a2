"""``kite-lab eval spec.yaml``: the same eval as in the notebook, as a CI gate.

A spec (YAML; paths relative to the spec's folder)::

    name: capitals
    dataset: data/capitals.csv
    prompt: "Answer with one word. {question}"     # for bare model ids
    targets:
      - local/smollm2-135m-instruct
      - {template: "Q: {question}\\nA:", model: openai/gpt-4o-mini, temperature: 0}
    scorers: [exact_match:answer, similarity:answer:0.8]
    thresholds: ["exact_match >= 0.8", "pass_rate >= 0.5"]
    repeats: 1
    concurrency: 8
    budget_usd: 0.50
    config: {llm_provider: local}                  # Kite settings (keys stay in the env)

It prints the summary table, writes ``NAME.json``, ``NAME.csv`` and ``NAME.html`` under
``--out``, and exits 1 when a threshold fails (2 for a bad spec). ``--cassette PATH``
replays recorded calls (mode ``replay``: a call not recorded fails) so CI runs offline.
"""

from __future__ import annotations

import argparse
import operator
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput

if TYPE_CHECKING:
    from kite_lab.evals.result import EvalResult

__all__ = ["EvalSpec", "Threshold", "add_arguments", "load_spec", "run_eval_cli"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[\w:.-]+)\s*(?P<op>>=|<=|==|>|<)\s*(?P<value>[-\d.eE]+)\s*$"
)


@dataclass(frozen=True)
class Threshold:
    """``exact_match >= 0.8``: a scorer's mean (or ``pass_rate``) per target."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        match = _THRESHOLD.match(str(text))
        if not match:
            raise InvalidInput(
                f"threshold {text!r}: write 'SCORER >= NUMBER' (ops: {', '.join(_OPS)})"
            )
        return cls(match["metric"], match["op"], float(match["value"]))

    def column(self) -> str:
        return "pass_rate" if self.metric == "pass_rate" else f"{self.metric}_mean"

    def holds(self, value: float) -> bool:
        return _OPS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass
class EvalSpec:
    name: str
    dataset: Any
    targets: list[Any]
    scorers: list[Any]
    thresholds: list[Threshold]
    options: dict[str, Any]
    config: dict[str, Any]


def load_spec(path: str | Path) -> EvalSpec:
    """Read and check a spec; every mistake is an InvalidInput naming the key."""
    import yaml

    from kite_lab.evals.scorers import as_scorer, unique_names
    from kite_lab.evals.targets import Prompt

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"eval spec {str(path)!r} not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InvalidInput(f"eval spec {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"eval spec {str(path)!r} must be a mapping of keys")
    known = {"name", "dataset", "prompt", "targets", "scorers", "thresholds", "repeats",
             "concurrency", "budget_usd", "checkpoint", "config"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidInput(f"eval spec: unknown keys {unknown}; keys: {', '.join(sorted(known))}")
    for key in ("dataset", "targets", "scorers"):
        if not raw.get(key):
            raise InvalidInput(f"eval spec: '{key}' is required")
    dataset = raw["dataset"]
    if isinstance(dataset, str):
        dataset = str((path.parent / dataset).resolve())
    targets: list[Any] = []
    for item in raw["targets"]:
        if isinstance(item, dict):
            fields = dict(item)
            template = fields.pop("template", None)
            if template is None:
                raise InvalidInput(f"eval spec: target {item!r} needs a 'template'")
            targets.append(Prompt(template, **fields))
        else:
            targets.append(str(item))
    scorers = [as_scorer(s) for s in raw["scorers"]]
    names = unique_names(scorers)
    thresholds = [Threshold.parse(t) for t in raw.get("thresholds") or []]
    for threshold in thresholds:
        if threshold.metric != "pass_rate" and threshold.metric not in names:
            raise InvalidInput(
                f"threshold {str(threshold)!r} names no scorer of this spec; scorers: "
                f"{', '.join(names)} (or pass_rate)"
            )
    options = {k: raw[k] for k in ("prompt", "repeats", "concurrency", "budget_usd")
               if raw.get(k) is not None}
    if raw.get("checkpoint"):
        options["checkpoint"] = str(path.parent / raw["checkpoint"])
    return EvalSpec(str(raw.get("name") or path.stem), dataset, targets, scorers, thresholds,
                    options, dict(raw.get("config") or {}))


def failed_thresholds(result: EvalResult, thresholds: list[Threshold]) -> list[str]:
    """One line per target x threshold that does not hold."""
    summary = result.summary()
    failures = []
    for threshold in thresholds:
        for target, value in summary[threshold.column()].items():
            if not threshold.holds(float(value)):
                failures.append(f"{target}: {threshold.metric} = {float(value):.4g}, "
                                f"needs {threshold.op} {threshold.value:g}")
    return failures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="the eval spec (YAML)")
    parser.add_argument("--cassette", help="replay recorded calls from this cassette (offline)")
    parser.add_argument("--record", action="store_true",
                        help="with --cassette: record calls not in it yet (mode once)")
    parser.add_argument("--out", default="eval-results", help="folder for JSON/CSV/HTML")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_eval_cli(args: argparse.Namespace, make_kite: Callable[..., Any]) -> int:
    """``kite-lab eval``; ``make_kite(config=...)`` builds the Kite (the CLI passes ``Kite``:
    evals sit below the facade and do not import it)."""
    import contextlib

    spec = load_spec(args.spec)
    config = dict(spec.config)
    if args.cassette and not args.record:
        # Replay never calls a provider (a call the cassette lacks is a CassetteMiss), so CI
        # needs no key: providers without one get a placeholder that is never sent.
        from kite_lab.providers.registry import KEY_SETTINGS

        for _, field in KEY_SETTINGS:
            if field not in config and not os.environ.get(field.upper()):
                config[field] = "replay-only-never-sent"
    ai = make_kite(config=config or None)
    with contextlib.ExitStack() as stack:
        if args.cassette:
            stack.enter_context(ai.cassette(args.cassette,
                                            mode="once" if args.record else "replay"))
        result = ai.evaluate(spec.dataset, spec.targets, spec.scorers, name=spec.name,
                             progress=not args.no_progress, **spec.options)
    ai.close()
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(result.summary().to_string(float_format=lambda v: f"{v:.4g}"))
    out = Path(args.out)
    for suffix in (".json", ".csv", ".html"):
        written = result.save(out / f"{spec.name}{suffix}")
        print(f"wrote {written}")
    failures = failed_thresholds(result, spec.thresholds)
    for line in failures:
        print(f"FAILED {line}", file=sys.stderr)
    if spec.thresholds and not failures:
        print(f"all {len(spec.thresholds)} thresholds hold")
    return 1 if failures else 0
