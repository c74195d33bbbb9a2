"""The contract between the server and each provider's wire format.

The server decides *what* happens (which ``Reply``/``Fault``, how long to wait);
a :class:`WireFormat` decides *how it looks on the wire* for one API family.
Keeping that split means there is one request pipeline for every provider
instead of one per endpoint.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

from ._models import Fault, MalformedKind, RecordedRequest, Reply

__all__ = ["WireFormat", "dumps", "new_id", "sse", "translate_finish_reason"]

JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}


class WireFormat(Protocol):
    """How one provider family renders replies, streams and errors."""

    request_id_header: str

    def validate(self, request: RecordedRequest) -> Fault | None:
        """A 400 ``Fault`` if the real API would reject this body, else ``None``."""
        ...

    def completion(self, reply: Reply, request: RecordedRequest) -> dict[str, Any]:
        """The non-streamed response body."""
        ...

    def stream(self, reply: Reply, request: RecordedRequest) -> Iterator[bytes]:
        """The streamed response body as SSE frames."""
        ...

    def error_body(self, fault: Fault, status: int, request_id: str) -> dict[str, Any]:
        """The provider's error JSON for ``fault`` sent with ``status``."""
        ...

    def malformed(self, kind: MalformedKind, stream: bool) -> bytes:
        """A body that is invalid JSON (``"json"``) or lacks required fields (``"shape"``)."""
        ...


def new_id(prefix: str) -> str:
    """A provider-looking random id such as ``chatcmpl-3f2a...``."""
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes, as the real APIs send."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent-event frame; ``data`` is JSON-encoded unless already text."""
    payload = data if isinstance(data, str) else dumps(data).decode()
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def translate_finish_reason(value: str | None, default: str, mapping: dict[str, str]) -> str:
    """Use ``value`` (mapped from the other provider's vocabulary) or ``default``."""
    if value is None:
        return default
    return mapping.get(value, value)
