"""pandas DataFrames of a Kite's calls, metrics, sessions, searches, breakers and runs.

    from kite_lab.frames import calls_df
    calls_df(ai).groupby("model")["cost_usd"].sum()

The implementation lives in ``kite_lab.notebook.frames``; this is the public name, usable
from scripts as well as notebooks.
"""

from kite_lab.notebook.frames import (
    breaker_events_df,
    breakers_df,
    calls_df,
    cost_df,
    history_df,
    metrics_df,
    runs_df,
    search_df,
    sessions_df,
)

__all__ = [
    "breaker_events_df",
    "breakers_df",
    "calls_df",
    "cost_df",
    "history_df",
    "metrics_df",
    "runs_df",
    "search_df",
    "sessions_df",
]
