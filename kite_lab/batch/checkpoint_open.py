"""``checkpoint=`` -> the store: a path is SQLite, a ``postgresql://`` URL is Postgres.

A module of its own so the contract (``checkpoint``) and the stores that implement it
import in one direction only: the stores import the contract, this imports them all.
"""

from __future__ import annotations

import os
from typing import Any

from kite_lab.batch.checkpoint import CheckpointStore

__all__ = ["open_checkpoint"]


def open_checkpoint(spec: Any) -> CheckpointStore | None:
    """The store for ``checkpoint=``: None, a path (SQLite), a postgresql:// URL, or a
    ``CheckpointStore`` object."""
    if spec is None:
        return None
    if isinstance(spec, CheckpointStore):
        return spec
    if isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://")):
        from kite_lab.batch.checkpoint_postgres import PostgresCheckpoint

        return PostgresCheckpoint(spec)
    if isinstance(spec, str | os.PathLike):
        text = os.fspath(spec)
        if "://" in text and not text.startswith("sqlite://"):
            raise ValueError(
                f"checkpoint {text.split('://')[0]}:// is not supported; pass a file path "
                "(SQLite) or a postgresql:// URL"
            )
        from kite_lab.batch.checkpoint_sqlite import SQLiteCheckpoint

        return SQLiteCheckpoint(text.removeprefix("sqlite:///").removeprefix("sqlite://"))
    raise TypeError(
        "checkpoint must be a file path (SQLite), a postgresql:// URL or a CheckpointStore, "
        f"not {type(spec).__name__}"
    )
