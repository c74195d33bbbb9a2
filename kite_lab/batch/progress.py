"""The progress bar of a map: rows done/total, rows/s, ETA, spent USD and errors.

``tqdm.auto`` picks the notebook widget inside a Jupyter kernel (when ipywidgets is
installed) and the text bar elsewhere; it only looks at IPython if it is already loaded,
so a script never imports it. ``progress=False`` gives a bar that does nothing, and the
bar is refreshed at most ~10 times a second whatever the row rate.
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["MapProgress"]


class MapProgress:
    def __init__(self, total: int, *, done: int = 0, enabled: bool = True) -> None:
        self._bar: Any = None
        self._last = 0.0
        self._pending = 0
        self.errors = 0
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=total, initial=done, unit="row", desc="ai.map", dynamic_ncols=True,
                mininterval=0.1,
            )

    def advance(self, *, spent_usd: float, error: bool) -> None:
        if error:
            self.errors += 1
        if self._bar is None:
            return
        self._pending += 1
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._flush(spent_usd, now)

    def _flush(self, spent_usd: float, now: float) -> None:
        self._bar.set_postfix(spent=f"${spent_usd:.4f}", errors=self.errors, refresh=False)
        self._bar.update(self._pending)
        self._pending, self._last = 0, now

    def close(self, *, spent_usd: float) -> None:
        if self._bar is None:
            return
        self._flush(spent_usd, time.monotonic())
        self._bar.close()
        self._bar = None
