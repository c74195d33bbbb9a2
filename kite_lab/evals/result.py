"""``EvalResult``: what ``ai.evaluate`` returns -- the rows, the summary, comparisons, charts.

``result.df`` has one row per sample x target x repeat (output, one column per scorer,
error, cost, tokens, latency); everything else is computed from it, so a saved CSV can be
loaded into ``EvalResult.from_frame`` and summarised again. In a notebook the object shows
itself as the summary table and the chart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput
from kite_lab.evals.stats import mean_se, paired_comparison

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["EvalResult", "ROW_COLUMNS"]

#: the columns of ``EvalResult.df`` besides one per scorer (after ``output``)
ROW_COLUMNS = ("sample", "target", "repeat", "output", "error", "cost_usd", "total_tokens",
               "latency_s", "cached")


@dataclass
class EvalResult:
    """The outcome of ``ai.evaluate``; ``.summary()``, ``.compare(a, b)``, ``.plot()``."""

    df: pd.DataFrame
    #: scorer names, in the order given (each is a column of ``df``)
    scorers: list[str]
    #: target labels, in the order given
    targets: list[str]
    #: scorer name -> the score a sample needs to pass
    thresholds: dict[str, float] = field(default_factory=dict)
    name: str = "eval"
    #: the call-log run id: ``frames.calls_df(ai, run_id=result.run_id)`` finds its calls
    run_id: str | None = None

    # -- tables ----------------------------------------------------------------------
    def summary(self) -> pd.DataFrame:
        """Per target: mean and standard error of each score, pass rates, cost, tokens,
        latency p50/p95, errors."""
        import pandas as pd

        records = []
        for target in self.targets:
            rows = self.df[self.df["target"] == target]
            record: dict[str, Any] = {"target": target, "n": len(rows)}
            passed_all = pd.Series(True, index=rows.index)
            for scorer in self.scorers:
                mean, se = mean_se([float(v) for v in rows[scorer]])
                passed = rows[scorer] >= self.thresholds.get(scorer, 1.0)
                passed_all &= passed
                record[f"{scorer}_mean"] = mean
                record[f"{scorer}_se"] = se
                record[f"{scorer}_pass_rate"] = float(passed.mean()) if len(rows) else math.nan
            record["pass_rate"] = float(passed_all.mean()) if len(rows) else math.nan
            record["errors"] = int(rows["error"].notna().sum())
            record["cost_usd"] = float(rows["cost_usd"].sum())
            record["total_tokens"] = int(rows["total_tokens"].sum())
            latency = rows["latency_s"].dropna()
            record["latency_p50_s"] = float(latency.quantile(0.5)) if len(latency) else math.nan
            record["latency_p95_s"] = float(latency.quantile(0.95)) if len(latency) else math.nan
            records.append(record)
        return pd.DataFrame.from_records(records).set_index("target")

    def compare(self, a: str, b: str) -> pd.DataFrame:
        """Paired differences ``b - a`` per scorer over the samples both answered (repeats
        averaged per sample): means, the mean difference with a 95% bootstrap interval,
        and a sign-flip permutation p-value."""
        import pandas as pd

        for target in (a, b):
            if target not in self.targets:
                raise InvalidInput(
                    f"no target {target!r} in this result; targets: {', '.join(self.targets)}"
                )
        per_sample = self.df.groupby(["target", "sample"])[self.scorers].mean()
        left, right = per_sample.loc[a], per_sample.loc[b]
        common = left.index.intersection(right.index)
        records = []
        for scorer in self.scorers:
            result = paired_comparison(left.loc[common, scorer].tolist(),
                                       right.loc[common, scorer].tolist())
            records.append({"scorer": scorer, "n": result.n, "mean_a": result.mean_a,
                            "mean_b": result.mean_b, "mean_diff": result.mean_diff,
                            "ci_low": result.ci_low, "ci_high": result.ci_high,
                            "p_value": result.p_value, "significant": result.significant})
        return pd.DataFrame.from_records(records).set_index("scorer")

    # -- charts and files ------------------------------------------------------------
    def plot(self) -> go.Figure:
        """Score per target with standard-error bars, and cost against score."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        summary = self.summary()
        figure = make_subplots(rows=1, cols=2, subplot_titles=(
            "score per target (mean +- s.e.)", "cost vs mean score"))
        for scorer in self.scorers:
            figure.add_trace(go.Bar(
                name=scorer, x=list(summary.index), y=summary[f"{scorer}_mean"],
                error_y={"type": "data", "array": summary[f"{scorer}_se"].tolist()},
            ), row=1, col=1)
        overall = summary[[f"{s}_mean" for s in self.scorers]].mean(axis=1)
        figure.add_trace(go.Scatter(
            x=summary["cost_usd"], y=overall, mode="markers+text", text=list(summary.index),
            textposition="top center", name="targets", showlegend=False,
        ), row=1, col=2)
        figure.update_yaxes(range=[0, 1.05], row=1, col=1)
        figure.update_xaxes(title_text="cost (USD)", row=1, col=2)
        figure.update_layout(title=self.name, barmode="group", height=420)
        return figure

    def to_html(self, *, include_plotlyjs: bool | str = True) -> str:
        """A self-contained HTML report: the summary table and the chart."""
        table = self.summary().to_html(float_format=lambda v: f"{v:.4g}")
        chart = self.plot().to_html(full_html=False, include_plotlyjs=include_plotlyjs)
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{self.name}</title>"
                f"</head><body><h2>{self.name}</h2>{table}{chart}</body></html>")

    def to_dict(self) -> dict[str, Any]:
        summary = self.summary().reset_index()
        return {
            "name": self.name, "run_id": self.run_id, "scorers": self.scorers,
            "targets": self.targets, "thresholds": self.thresholds,
            "summary": json.loads(summary.to_json(orient="records")),
            "rows": json.loads(self.df.to_json(orient="records")),
        }

    def save(self, path: str | Path) -> Path:
        """Write ``.html`` (report), ``.json`` (summary + rows) or ``.csv`` (rows)."""
        path = Path(path)
        suffix = path.suffix.lower()
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".html":
            path.write_text(self.to_html(), encoding="utf-8")
        elif suffix == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=2, default=str), encoding="utf-8")
        elif suffix == ".csv":
            self.df.to_csv(path, index=False)
        else:
            raise InvalidInput(f"save() writes .html, .json or .csv, not {path.name!r}")
        return path

    @classmethod
    def from_frame(cls, df: pd.DataFrame, scorers: Sequence[str], *,
                   thresholds: dict[str, float] | None = None, name: str = "eval") -> EvalResult:
        """Rebuild a result from its rows (e.g. a saved CSV)."""
        targets = list(dict.fromkeys(df["target"].tolist()))
        return cls(df, list(scorers), targets, dict(thresholds or {}), name)

    # -- notebook display --------------------------------------------------------------
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.summary())
        display(self.plot())

    def __repr__(self) -> str:
        return (f"EvalResult({self.name!r}: {len(self.df)} rows, targets={self.targets}, "
                f"scorers={self.scorers})")
