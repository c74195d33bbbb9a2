"""An injectable clock, so tests move time forward instead of sleeping.

Every safety component asks its clock two things:

- ``now()``: epoch seconds, used by the in-process (memory) stores;
- ``offset()``: seconds added to the Redis server's ``TIME`` inside Lua scripts.

Redis stores never read the local clock (replicas' clocks drift; the server's does not
differ between them). A :class:`FakeClock` advances both at once, so the same test drives
a memory store and a Redis store through a breaker timeout or a lease expiry.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock", "SYSTEM_CLOCK"]


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Epoch seconds."""
        ...

    def offset(self) -> float:
        """Seconds to add to the Redis server's TIME."""
        ...


class SystemClock:
    """The real clock: ``time.time()`` locally, Redis ``TIME`` unchanged."""

    __slots__ = ()

    def now(self) -> float:
        return time.time()

    def offset(self) -> float:
        return 0.0

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


class FakeClock:
    """A clock that moves only when told to; thread-safe.

    ``now()`` starts at ``start`` (default: the real time at construction) and
    ``offset()`` is the total amount advanced, so a Redis store sees server time plus
    the same jump.
    """

    def __init__(self, start: float | None = None) -> None:
        self._base = time.time() if start is None else float(start)
        self._advanced = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._base + self._advanced

    def offset(self) -> float:
        return self._advanced

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (>= 0)."""
        if seconds < 0:
            raise ValueError("a clock only moves forward; seconds must be >= 0")
        with self._lock:
            self._advanced += seconds

    def __repr__(self) -> str:
        return f"FakeClock(now={self.now():.3f}, offset={self._advanced:.3f})"
