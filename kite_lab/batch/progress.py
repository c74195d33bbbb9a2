"""The progress bar of ``ai.map``: rows done/total, rows/s, ETA, spent USD, errors.

Why tqdm.auto: in a Jupyter kernel it draws the widget bar (``tqdm.notebook``), in a
terminal or a script the text bar, with no choice for the user to make. The bar counts
unique rows (rows with the same key are asked once); rows restored from a checkpoint
start it part-way. Updates are cheap (tqdm redraws at most every ``mininterval``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MapProgress"]


class MapProgress:
    """A tqdm bar, or nothing with ``enabled=False``."""

    def __init__(self, total: int, initial: int, *, enabled: bool, desc: str = "ai.map") -> None:
        self.errors = 0
        self.spent = 0.0
        self._bar: Any = None
        if enabled:
            self._bar = _make_bar(total=total, initial=initial, desc=desc)

    def advance(self, *, error: bool, spent_usd: float, count: int = 1) -> None:
        """``count`` more rows finished; ``spent_usd`` is the run's total so far."""
        self.errors += int(error) * count
        self.spent = spent_usd
        if self._bar is not None:
            self._bar.set_postfix_str(f"${spent_usd:.6f}, {self.errors} errors", refresh=False)
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"${self.spent:.6f}, {self.errors} errors", refresh=False)
            self._bar.close()
            self._bar = None


def _make_bar(**kwargs: Any) -> Any:
    from tqdm.auto import tqdm

    return tqdm(unit="row", dynamic_ncols=True, mininterval=0.2, **kwargs)
