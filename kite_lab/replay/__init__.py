"""Record/replay cassettes at the pipeline boundary (issue 16).

- ``cassette``: ``Cassette`` (file, mode, speed; context manager and decorator),
  ``Interaction`` (one recorded call), the JSONL format;
- ``active``: which cassette answers a Kite (its own, the process's, KITE_CASSETTE's);
- ``methods``: ``ai.cassette``, ``ai.call_log``, ``ai.trace`` on the facade.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kite_lab.core.lazy import lazy_exports

if TYPE_CHECKING:
    from kite_lab.replay.active import use_cassette
    from kite_lab.replay.cassette import MODES, Cassette, Interaction

__all__ = ["MODES", "Cassette", "Interaction", "use_cassette"]

_HOME = {"MODES": "cassette", "Cassette": "cassette", "Interaction": "cassette",
         "use_cassette": "active"}

__getattr__, __dir__ = lazy_exports(__name__, _HOME, __all__)
