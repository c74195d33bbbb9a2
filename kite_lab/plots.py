"""plotly figures of a Kite's activity, drawn from the frames in ``kite_lab.frames``.

    from kite_lab.plots import latency_histogram
    latency_histogram(ai).show()

Why figures and not widgets: a ``plotly.graph_objects.Figure`` renders in JupyterLab, in
nbconvert's HTML, and in a script (``fig.write_html``), with no kernel attached. Each
function takes what the matching frame function takes (a Kite, an EventBus, events) or
the frame itself, so a figure can be drawn from a saved or filtered DataFrame too.
pandas and plotly load on the first call, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kite_lab.frames import breaker_events_df, calls_df, runs_df

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["agent_success_rate", "breaker_timeline", "calls_over_time", "cost_over_time",
           "latency_histogram"]

_STATE_Y = {"closed": 0, "half_open": 1, "open": 2}
_STATE_COLOR = {"closed": "#2e7d32", "half_open": "#f9a825", "open": "#c62828"}


def _frame(source: Any, builder: Any) -> pd.DataFrame:
    import pandas as pd

    return source if isinstance(source, pd.DataFrame) else builder(source)


def _figure(title: str, **layout: Any) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(title=title, template="plotly_white", margin={"l": 50, "r": 20, "t": 50,
                                                                     "b": 40}, **layout)
    return fig


def _model_label(frame: pd.DataFrame) -> pd.Series:
    return frame["provider"].astype("string").fillna("?") + "/" + frame["model"].astype(
        "string").fillna("?")


def latency_histogram(source: Any, *, bins: int = 30) -> go.Figure:
    """Latency of successful, uncached calls, one colour per provider/model."""
    import plotly.graph_objects as go

    calls = _frame(source, calls_df)
    fig = _figure("LLM call latency", xaxis_title="seconds", yaxis_title="calls",
                  barmode="overlay")
    live = calls[calls["error"].isna() & ~calls["cached"].fillna(False)]
    for label, group in live.groupby(_model_label(live), observed=True):
        fig.add_trace(go.Histogram(x=group["latency_s"], name=str(label), nbinsx=bins,
                                   opacity=0.75))
    return fig


def _per_period(source: Any, value: str, freq: str) -> pd.DataFrame:
    import pandas as pd

    calls = _frame(source, calls_df)
    if calls.empty:
        return pd.DataFrame()
    calls = calls.assign(label=_model_label(calls).to_numpy(), one=1)
    column = "one" if value == "calls" else value
    table = calls.pivot_table(index=calls.index.floor(freq), columns="label", values=column,
                              aggfunc="sum", fill_value=0, observed=True)
    return table.sort_index()


def calls_over_time(source: Any, *, freq: str = "1min") -> go.Figure:
    """Calls per ``freq`` period, stacked per provider/model."""
    import plotly.graph_objects as go

    table = _per_period(source, "calls", freq)
    fig = _figure(f"LLM calls per {freq}", xaxis_title="time (UTC)", yaxis_title="calls",
                  barmode="stack")
    for label in table.columns:
        fig.add_trace(go.Bar(x=table.index, y=table[label], name=str(label)))
    return fig


def cost_over_time(source: Any, *, freq: str = "1min", cumulative: bool = True) -> go.Figure:
    """Cost in USD per provider/model over time (cumulative by default)."""
    import plotly.graph_objects as go

    table = _per_period(source, "cost_usd", freq)
    if cumulative and not table.empty:
        table = table.cumsum()
    title = "cumulative cost (USD)" if cumulative else f"cost per {freq} (USD)"
    fig = _figure(title, xaxis_title="time (UTC)", yaxis_title="USD", yaxis_tickformat="$.6f")
    for label in table.columns:
        fig.add_trace(go.Scatter(x=table.index, y=table[label], name=str(label),
                                 mode="lines+markers", line_shape="hv"))
    return fig


def breaker_timeline(source: Any) -> go.Figure:
    """Each breaker's state over time (a step line) with its failures and rejections."""
    import plotly.graph_objects as go

    events = _frame(source, breaker_events_df)
    fig = _figure("circuit breaker timeline", xaxis_title="time (UTC)",
                  yaxis={"tickvals": list(_STATE_Y.values()), "ticktext": list(_STATE_Y),
                         "range": [-0.5, 2.5], "title": "state"})
    for name, group in events.groupby("breaker", observed=True):
        moves = group[group["kind"] == "state"]
        if not moves.empty:
            states = [moves["old"].iloc[0], *moves["new"]]
            times = [moves.index[0], *moves.index]
            fig.add_trace(go.Scatter(
                x=times, y=[_STATE_Y.get(s, 0) for s in states], name=f"{name} state",
                mode="lines+markers", line_shape="hv",
                marker={"color": [_STATE_COLOR.get(s, "#777") for s in states], "size": 9},
                text=["", *moves["reason"].fillna("")], hovertemplate="%{x}<br>%{text}",
            ))
        for kind, symbol, y in (("failure", "x", 0.15), ("rejected", "line-ns-open", 2.15)):
            marks = group[group["kind"] == kind]
            if not marks.empty:
                fig.add_trace(go.Scatter(
                    x=marks.index, y=[y] * len(marks), mode="markers", name=f"{name} {kind}",
                    marker={"symbol": symbol, "size": 10},
                    text=marks["error"].fillna(""), hovertemplate="%{x}<br>%{text}",
                ))
    return fig


def agent_success_rate(source: Any, *, window: int = 10) -> go.Figure:
    """Rolling success rate (last ``window`` runs) per agent."""
    import plotly.graph_objects as go

    runs = _frame(source, runs_df)
    fig = _figure(f"agent success rate (rolling {window} runs)", xaxis_title="time (UTC)",
                  yaxis={"range": [0, 1.05], "tickformat": ".0%", "title": "success rate"})
    for name, group in runs.groupby("agent", observed=True):
        rate = group["success"].astype("float64").rolling(window, min_periods=1).mean()
        fig.add_trace(go.Scatter(x=group.index, y=rate, name=str(name), mode="lines+markers"))
    return fig
