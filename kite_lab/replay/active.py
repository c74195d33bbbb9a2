"""Which cassette answers a Kite's calls: its own (``ai.cassette``), the process's (the
pytest fixture, ``use_cassette``), or the one KITE_CASSETTE names (scripts).

Why a plain list and not a ContextVar: sync calls run on kite_lab's background event
loop, in another thread and context than the caller's ``with`` block, so the active
cassette is state of the Kite (or of the process), pushed and popped by ``start/stop``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cassette import Cassette

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings

__all__ = ["active_cassette", "global_cassette", "use_cassette"]

#: cassettes started for the whole process (innermost last)
_process: list[Cassette] = []


def use_cassette(path: str | Path, mode: str = "once", *, speed: float = math.inf) -> Cassette:
    """A cassette for every Kite of the process (start it, or use ``with``)."""
    return Cassette(path, mode, speed=speed, stack=_process)


def global_cassette() -> Cassette | None:
    return _process[-1] if _process else None


def active_cassette(owner: dict[str, Any], settings: KiteSettings) -> Cassette | None:
    """The cassette for a Kite whose instance dict is ``owner``."""
    own = owner.get("_kite_cassettes")
    if own:
        return own[-1]
    if _process:
        return _process[-1]
    path, mode = settings.kite_cassette, settings.kite_cassette_mode
    if not path or mode == "off":
        return None
    cached = owner.get("_kite_env_cassette")
    if cached is None or cached[0] != (path, mode):
        cached = ((path, mode), Cassette(path, mode).open())
        owner["_kite_env_cassette"] = cached
    return cached[1]
