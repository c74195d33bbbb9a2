"""What vector memory accepts: document ids, metadata, ``top_k`` and document items.

Why apart: ``VectorMemory`` checks every argument before it embeds anything (embedding
is the slow part), with the house rule for errors: a wrong type is a ``TypeError``
naming the argument, a wrong value an ``InvalidInput`` saying what to pass instead.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kite_lab.core.errors import InvalidInput

__all__ = ["check_doc_id", "check_metadata", "check_top_k", "unpack_document"]


def check_doc_id(doc_id: Any) -> str:
    if not isinstance(doc_id, str):
        raise TypeError(f"doc_id must be a str, not {type(doc_id).__name__}")
    if not doc_id.strip():
        raise InvalidInput("doc_id is empty; pass a non-blank document id")
    return doc_id


def check_top_k(top_k: Any) -> None:
    if not isinstance(top_k, int) or isinstance(top_k, bool):
        raise TypeError(f"top_k must be an int, not {type(top_k).__name__}")
    if top_k < 1:
        raise InvalidInput(f"top_k must be at least 1, got {top_k}")


def check_metadata(metadata: Any) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, not {type(metadata).__name__}")
    out = dict(metadata)
    for key in out:
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be str, not {type(key).__name__} ({key!r})")
    try:
        json.dumps(out)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serializable: {exc}") from None
    return out


def unpack_document(item: Any) -> tuple[Any, Any, Any]:
    if isinstance(item, Mapping):
        if "text" not in item or not ("doc_id" in item or "id" in item):
            raise InvalidInput("each document dict needs 'doc_id' and 'text' keys")
        return item.get("doc_id", item.get("id")), item["text"], item.get("metadata")
    if isinstance(item, tuple | list) and len(item) in (2, 3):
        return item[0], item[1], item[2] if len(item) == 3 else None
    raise TypeError(
        "documents must be dicts {'doc_id', 'text', 'metadata'} "
        "or tuples (doc_id, text[, metadata]), "
        f"not {type(item).__name__}"
    )
