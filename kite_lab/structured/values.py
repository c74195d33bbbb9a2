"""What ``%%kite --schema Model -o VAR`` stores, for the cell and its exported script alike.

Why a function of its own: the notebook cell and the script ``kite-lab export`` writes
must store the same value. With ``--schema`` that is the validated instance
(``Completion.parsed``); with ``-f df`` it is a DataFrame with one column per field and one
row per item of a ``list[Model]`` answer (one row for a single object).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kite_lab.core.errors import OutputParseError
from kite_lab.core.types import Completion

__all__ = ["parsed_value", "records"]


def parsed_value(fmt: str, completion: Completion) -> Any:
    """``completion.parsed``, or with ``fmt == "df"`` a DataFrame of its records."""
    if fmt != "df":
        return completion.parsed
    import pandas as pd

    return pd.DataFrame.from_records(records(completion.parsed))


def records(value: Any) -> list[dict[str, Any]]:
    """Rows of plain dicts: a model/TypedDict/dict is one row, a list one row per item."""
    items = value if isinstance(value, list) else [value]
    rows = []
    for item in items:
        dump = getattr(item, "model_dump", None)
        row = dump() if callable(dump) else item
        if not isinstance(row, Mapping):
            raise OutputParseError(
                f"-f df needs objects (one column per field), got {type(item).__name__}; "
                "use a schema whose items are models or objects"
            )
        rows.append(dict(row))
    return rows
