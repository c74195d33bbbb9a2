"""``schema=`` and ``images=`` of one call, checked and loaded before anything is sent.

Why here and not in the facade: ``Kite.build_request`` stays one readable function; what
these two arguments accept, and how they combine with the call's other arguments, is
this package's business.

- ``schema``: a pydantic model class, a TypedDict, ``list[...]`` of either, or a
  JSON-schema dict (``normalize_schema``); not with ``tools=`` or ``response_format=``.
- ``images``: paths, bytes, PIL images, data URLs or http(s) URLs (``load_image``),
  attached to the last user message; an unreadable one fails here, nothing sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kite_lab.core.types import Message

from .images import attach_images
from .schema import OutputSchema, schema_for_call

__all__ = ["prepare_call"]


def prepare_call(
    messages: list[Message],
    schema: Any,
    images: Iterable[Any] | None,
    tools: object,
    params: Mapping[str, Any],
) -> tuple[list[Message], OutputSchema | None]:
    """``(messages with the images attached, the normalised schema or None)``."""
    output = None
    if schema is not None:
        output = schema_for_call(schema, tools=bool(tools), params=params)
    if images is not None:
        messages = attach_images(messages, images)
    return messages, output
