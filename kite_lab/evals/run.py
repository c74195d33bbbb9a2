"""One ``ai.evaluate`` from start to finish: validate, run every target through ``ai.map``,
score, collect.

Why through ``ai.map``: each target's calls are then resumable from a checkpoint,
budgeted, cached, logged, replayable from a cassette and visible in metrics, exactly as
any other batch -- an eval adds scoring, not another way to call a model.

Order of work, so that bad input costs nothing: dataset -> scorers (their columns must
exist) -> targets (each model id resolves, each request validates) -> the calls. All of
an eval's calls carry one ``run_id`` (``eval-...``) in their events and call-log rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from kite_lab.core.errors import InvalidInput
from kite_lab.core.events import event_context
from kite_lab.core.validate import check_int
from kite_lab.evals.dataset import load_dataset
from kite_lab.evals.result import EvalResult
from kite_lab.evals.scorers import Scorer, ScorerHost, as_scorer, unique_names
from kite_lab.evals.targets import Target, default_template, resolve_targets

if TYPE_CHECKING:
    import pandas as pd

    from kite_lab.core.events import EventBus
    from kite_lab.providers.base import LLMProvider, LLMRequest

__all__ = ["EvalHost", "run_eval"]

#: the answer column ``ai.map`` writes for an eval (a name no dataset uses)
ANSWER = "_eval_output"


class EvalHost(ScorerHost, Protocol):
    """What ``ai.evaluate`` uses of the Kite it runs on."""

    @property
    def event_bus(self) -> EventBus: ...

    def build_request(
        self, prompt: str | None = None, **kwargs: Any
    ) -> tuple[LLMProvider, LLMRequest]: ...

    async def amap(self, data: Any, prompt: Any, **kwargs: Any) -> pd.DataFrame: ...


async def run_eval(
    host: EvalHost,
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
    frame = load_dataset(dataset)
    scorer_list = _scorers(scorers, list(frame.columns))
    repeats = check_int(repeats, "repeats", error=InvalidInput)
    expected = {c for s in scorer_list for c in s.columns}
    inputs = [c for c in frame.columns if c not in expected] or list(frame.columns)
    target_list = resolve_targets(targets, default_template(inputs, prompt), inputs)
    # each model target's prompts, rendered once: validated here, reused by repeats
    rendered = [_validate(host, t, frame, inputs, repeats, checkpoint, budget_usd)
                for t in target_list]

    run_id = f"eval-{uuid.uuid4().hex[:12]}"
    label = name or "eval"
    rows = frame.to_dict("records")
    records: list[dict[str, Any]] = []
    spent = 0.0
    host.event_bus.emit("eval:start", run_id=run_id, name=label, rows=len(frame),
                        targets=[t.label for t in target_list], repeats=repeats)
    with event_context(run_id=run_id):
        for target, texts in zip(target_list, rendered, strict=True):
            for repeat in range(repeats):
                remaining = None if budget_usd is None else budget_usd - spent
                out = await _run_target(host, target, texts, frame, inputs, repeat, repeats,
                                        concurrency, remaining, checkpoint, progress)
                spent += float(out["_cost_usd"].fillna(0.0).sum())
                errors = [e if isinstance(e, str) else None for e in out["_error"]]
                outputs = [None if e else a for a, e in zip(out[ANSWER], errors, strict=True)]
                scores = {s.name: await s.ascore_many(host, outputs, rows) for s in scorer_list}
                costs, tokens = out["_cost_usd"].tolist(), out["_total_tokens"].tolist()
                latencies, cached = out["_latency_s"].tolist(), out["_cached"].tolist()
                for i in range(len(frame)):
                    record = {"sample": i, "target": target.label, "repeat": repeat,
                              "output": outputs[i]}
                    record.update({s.name: scores[s.name][i] for s in scorer_list})
                    record.update({
                        "error": errors[i],
                        "cost_usd": _float(costs[i]) or 0.0,
                        "total_tokens": int(_float(tokens[i]) or 0),
                        "latency_s": _float(latencies[i]),
                        "cached": bool(cached[i]),
                    })
                    records.append(record)
    import pandas as pd

    result = EvalResult(pd.DataFrame.from_records(records), [s.name for s in scorer_list],
                        [t.label for t in target_list],
                        {s.name: s.threshold for s in scorer_list}, label, run_id)
    host.event_bus.emit("eval:done", run_id=run_id, name=label, rows=len(records),
                        cost_usd=spent)
    return result


def _scorers(scorers: Sequence[Any], columns: list[str]) -> list[Scorer]:
    if isinstance(scorers, str) or callable(scorers) or isinstance(scorers, Scorer):
        scorers = [scorers]
    found = [as_scorer(s) for s in scorers]
    if not found:
        raise InvalidInput("evaluate needs at least one scorer (kite_lab.evals.scorers)")
    for scorer in found:
        missing = [c for c in scorer.columns if c not in columns]
        if missing:
            raise InvalidInput(
                f"scorer {scorer.name!r} reads column {missing[0]!r}, which the dataset "
                f"does not have; columns: {', '.join(map(repr, columns))}"
            )
    found = [replace(s, name=n) for s, n in zip(found, unique_names(found), strict=True)]
    if len({s.name for s in found}) < len(found):
        raise InvalidInput(f"two scorers have the same name: {[s.name for s in found]}")
    return found


def _validate(host: EvalHost, target: Target, frame: pd.DataFrame, inputs: list[str],
              repeats: int, checkpoint: Any, budget_usd: float | None) -> list[str] | None:
    """Everything that can fail about a target fails here, before the first call; a model
    target's rendered prompts (None for an agent)."""
    if target.is_agent:
        if budget_usd is not None:
            raise InvalidInput(
                f"target {target.label!r} is an agent, whose runs have no worst-case cost "
                "(they may loop): drop budget_usd= or bound the agent with max_iterations"
            )
        if repeats > 1 and checkpoint is not None:
            raise InvalidInput(
                f"target {target.label!r} is an agent: repeats > 1 with a checkpoint would "
                "reuse the first repeat's rows; drop checkpoint= or use repeats=1"
            )
        return None
    from kite_lab.batch.plan import render_prompts

    assert isinstance(target.prompt, str)
    texts = render_prompts(frame[inputs], target.prompt, is_agent=False).texts
    params = {k: v for k, v in target.params.items() if k != "cache"}  # a pipeline option
    host.build_request(texts[0], model=target.model, system=target.system, **params)
    return texts


async def _run_target(host: EvalHost, target: Target, texts: list[str] | None,
                      frame: pd.DataFrame, inputs: list[str], repeat: int, repeats: int,
                      concurrency: int, budget: float | None, checkpoint: Any,
                      progress: bool) -> pd.DataFrame:
    data = frame[inputs]
    prompt: Any = target.prompt
    params = dict(target.params)
    if repeats > 1 and texts is not None:
        # every repeat a fresh answer: its own row keys (the repeat number is part of the
        # row) and no response cache
        data = data.assign(_repeat=repeat, _sample=range(len(data)))
        prompt = _Rendered(texts)
        params["cache"] = False
    if budget is not None and budget <= 0:
        return _not_run(frame, "budget exceeded")
    if target.is_agent:  # model and system are the agent's own
        return await host.amap(data, prompt, concurrency=concurrency, checkpoint=checkpoint,
                               progress=progress, output=ANSWER)
    return await host.amap(data, prompt, model=target.model, system=target.system,
                           concurrency=concurrency, budget_usd=budget, checkpoint=checkpoint,
                           progress=progress, output=ANSWER, **params)


class _Rendered:
    """A prompt callable returning each sample's already rendered text."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    def __call__(self, row: dict[str, Any]) -> str:
        return self.texts[int(row["_sample"])]


def _not_run(frame: pd.DataFrame, why: str) -> pd.DataFrame:
    import pandas as pd

    n = len(frame)
    return pd.DataFrame({ANSWER: [None] * n, "_error": [why] * n, "_cost_usd": [0.0] * n,
                         "_total_tokens": [0] * n, "_latency_s": [None] * n,
                         "_cached": [False] * n})


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if result != result else result  # NaN -> None
