"""Traces: every event on an event bus, one JSON object per line, as it happens.

Why JSON Lines flushed per line: a trace is most useful when a run hangs or a kernel
dies, so each event is on disk the moment it is emitted, and a half-written file is
still readable line by line (``pandas.read_json(path, lines=True)``, ``jq``).

Why redaction walks the values instead of the finished line: a secret containing a
quote or a backslash is escaped in JSON text and would slip past a text replace. Every
string value (and key) is scrubbed of the current secret values and anything shaped
like an API key before it is serialized; fields named like credentials are replaced
outright.

Why a bus and a ``secrets`` callable instead of a Kite: observability sits below the
facade; ``Kite.enable_tracing`` passes its bus and ``lambda: settings.secret_values()``
(called per event, so a key changed through ``ai.config`` is scrubbed at once).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from kite_lab.core.scrub import scrub

if TYPE_CHECKING:
    from kite_lab.core.events import Event, EventBus

__all__ = ["Tracer", "enable_tracing"]


class Tracer:
    """Writes the events matching ``pattern`` to ``path`` (appending) until ``close()``."""

    def __init__(
        self,
        bus: EventBus,
        path: str | Path,
        pattern: str = "*",
        *,
        secrets: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(
                f"{self.path} is a directory; pass a file path like trace.jsonl"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._secrets = secrets
        self._lock = threading.Lock()
        self._file: IO[str] | None = self.path.open("a", encoding="utf-8")
        #: events written so far
        self.count = 0
        self._subscription = bus.subscribe(pattern, self._write)

    @property
    def closed(self) -> bool:
        return self._file is None

    def _write(self, event: Event) -> None:
        secrets = list(self._secrets())
        line = json.dumps(scrub(event.to_dict(), secrets), ensure_ascii=False)
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


def enable_tracing(
    bus: EventBus,
    path: str | Path,
    pattern: str = "*",
    *,
    secrets: Callable[[], Iterable[str]] = tuple,
) -> Tracer:
    """Trace ``bus``'s events to ``path`` as JSON Lines; returns the Tracer (``close()``).

    ``secrets()`` returns the values to scrub (called for every event).
    """
    return Tracer(bus, path, pattern, secrets=secrets)


