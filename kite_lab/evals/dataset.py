"""Eval datasets: a DataFrame, a list of dicts, or a CSV / JSONL / JSON file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["load_dataset"]


def load_dataset(dataset: Any) -> pd.DataFrame:
    """A fresh DataFrame of the samples, with a clean 0..n-1 index (the sample number)."""
    import pandas as pd

    if isinstance(dataset, pd.DataFrame):
        frame = dataset.copy()
    elif isinstance(dataset, str | Path):
        frame = _read(Path(dataset))
    elif isinstance(dataset, list | tuple) and all(isinstance(r, Mapping) for r in dataset):
        frame = pd.DataFrame.from_records(list(dataset))
    else:
        raise TypeError(
            "dataset must be a DataFrame, a list of dicts, or a path to a .csv, .jsonl or "
            f".json file; got {type(dataset).__name__}"
        )
    if frame.empty:
        raise InvalidInput("the dataset has no rows; an eval needs at least one sample")
    frame.columns = [str(c) for c in frame.columns]
    return frame.reset_index(drop=True)


def _read(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise InvalidInput(f"dataset file {str(path)!r} not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True)
        if suffix == ".json":
            return pd.read_json(path)
    except ValueError as exc:
        raise InvalidInput(f"dataset file {str(path)!r} cannot be read: {exc}") from None
    raise InvalidInput(f"dataset file {str(path)!r}: use .csv, .jsonl or .json")
