"""Batch runs over data: one prompt over every row of a table (``ai.map`` / ``ai.amap``).

    from kite_lab.batch import map as kite_map
    labels = kite_map(ai, reviews, "Classify as positive or negative: {review}",
                      checkpoint="labels.sqlite", budget_usd=2.0, max_tokens=5)
    labels[["review", "answer", "_error", "_cost_usd"]]

The contract:

- ``data``: a DataFrame, a list of dicts, or an iterable of strings (column ``text``).
- ``prompt``: a template over the columns (``%%kite`` interpolation rules; a name that is
  not a column is an error, ``{{x}}`` is a literal ``{x}``), a function ``row -> str`` (the
  row as a dict), or an ``Agent`` (the row is its input: the value of a one-column row, else
  ``column: value`` lines).
- Returns a copy of the input, same index and order, plus the answer column ``output``
  (default ``"answer"``; with ``schema=`` one column per field instead) and ``_error``,
  ``_cost_usd``, ``_total_tokens``, ``_latency_s``, ``_cached``, ``_row_key``. Rows with the
  same key (same values, prompt, model...) are called once; the repeats show
  ``_cached=True`` and cost 0.
- Every call goes through the pipeline (cache, breaker, kill switch, metrics, events).
- ``checkpoint=`` (SQLite path or ``postgresql://`` URL): each finished row is committed
  before it counts as done; rerunning the same map after a crash calls only the rows not
  done. Rows that ended in an error are not committed, so a rerun retries them.
- ``budget_usd=``: no row starts unless spent + the worst case of every row in flight
  stays within it; the rest get ``_error == "budget exceeded"`` and a ``BudgetWarning``
  (``strict=True``: ``BudgetExceeded`` with ``.partial``). A budget needs ``max_tokens``
  and a known price. ``dry_run=True`` returns a ``MapEstimate`` and calls nothing.
- Errors stay in their row; rate limits (Retry-After honoured), 5xx, timeouts and
  connection errors retry up to ``retries`` times (an int, or a ``RetryPolicy``); an open
  breaker pauses the map until half-open. Bad arguments fail before the first call.
- ``engine="ray"`` runs the calls on a Ray cluster (``pip install 'kite-lab[ray]'``,
  Postgres checkpoint required).

Events ``map:start``, ``map:row``, ``map:done`` are documented in ``kite_lab.batch.api``.
"""

from __future__ import annotations

from .api import MapEstimate, amap, map
from .budget import BudgetWarning
from .checkpoint import CheckpointStore, open_checkpoint
from .runner import RetryPolicy

__all__ = [
    "BudgetWarning",
    "CheckpointStore",
    "MapEstimate",
    "RetryPolicy",
    "amap",
    "map",
    "open_checkpoint",
]
