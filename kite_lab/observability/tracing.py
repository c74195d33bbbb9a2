"""Traces: every event on a Kite's event bus, one JSON object per line, as it happens.

Why JSON Lines flushed per line: a trace is most useful when a run hangs or a kernel
dies, so each event is on disk the moment it is emitted, and a half-written file is
still readable line by line (``pandas.read_json(path, lines=True)``, ``jq``).

Why redaction walks the values instead of the finished line: a secret containing a
quote or a backslash is escaped in JSON text and would slip past a text replace. Every
string value (and key) is scrubbed of the Kite's current secret values and anything
shaped like an API key before it is serialized; fields named like credentials are
replaced outright.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import redact

if TYPE_CHECKING:
    from kite_lab.core.events import Event
    from kite_lab.kite import Kite

__all__ = ["Tracer", "enable_tracing"]

_CREDENTIAL_KEYS = ("api_key", "apikey", "password", "secret", "authorization")


class Tracer:
    """Writes the events matching ``pattern`` to ``path`` (appending) until ``close()``."""

    def __init__(self, kite: Kite, path: str | Path, pattern: str = "*") -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(
                f"{self.path} is a directory; pass a file path like trace.jsonl"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._kite = kite
        self._lock = threading.Lock()
        self._file: Any = self.path.open("a", encoding="utf-8")
        #: events written so far
        self.count = 0
        self._subscription = kite.event_bus.subscribe(pattern, self._write)

    @property
    def closed(self) -> bool:
        return self._file is None

    def _write(self, event: Event) -> None:
        secrets = self._kite.settings.secret_values()
        line = json.dumps(_clean(event.to_dict(), secrets), ensure_ascii=False)
        with self._lock:
            if self._file is None:
                return
            self._file.write(line + "\n")
            self._file.flush()
            self.count += 1

    def close(self) -> None:
        """Stop tracing and close the file (safe to call twice)."""
        self._subscription.unsubscribe()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Tracer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Tracer({str(self.path)!r}, {self.count} events, {state})"


def enable_tracing(kite: Kite, path: str | Path, pattern: str = "*") -> Tracer:
    """Trace ``kite``'s events to ``path`` as JSON Lines; returns the Tracer (``close()``)."""
    return Tracer(kite, path, pattern)


def _clean(value: Any, secrets: list[str]) -> Any:
    """A JSON-ready copy of ``value`` with every secret scrubbed."""
    if isinstance(value, str):
        return redact(value, secrets)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = redact(str(key), secrets)
            if any(word in name.lower() for word in _CREDENTIAL_KEYS) and item:
                out[name] = "***"
            else:
                out[name] = _clean(item, secrets)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(item, secrets) for item in value]
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return _clean(to_dict(), secrets)
        except Exception:  # a broken to_dict must not lose the event
            pass
    return redact(str(value), secrets)
