"""The budget of a map: no row starts unless spent + in-flight worst cases stay within it.

Why reserve the worst case rather than an average: the point of ``budget_usd`` is a bill
that never passes it. Each row reserves its worst case (prompt bound + ``max_tokens`` at
the price table's rates) before its call and settles at the real cost after, so the sum of
what could still be billed is always known. When a row does not fit, it waits while other
rows are in flight (their settlements free room); when none is in flight and it still does
not fit, the map stops starting rows: the rest come back as ``"budget exceeded"``.
"""

from __future__ import annotations

import asyncio

from kite_lab.core.errors import InvalidInput
from kite_lab.core.validate import check_number

__all__ = ["BudgetLedger", "BudgetWarning", "check_budget"]


class BudgetWarning(UserWarning):
    """A map stopped at its budget; the message says how much was spent."""


def check_budget(budget_usd: float | None) -> float | None:
    if budget_usd is None:
        return None
    return check_number(budget_usd, "budget_usd", unit="USD", error=InvalidInput)


class BudgetLedger:
    """Spent and reserved USD of one map; ``limit=None`` only counts."""

    def __init__(self, limit: float | None) -> None:
        self.limit = limit
        self.spent = 0.0
        self.reserved = 0.0
        self.in_flight = 0
        self.exhausted = False
        self.unknown_cost_rows = 0  # rows whose cost the price table does not know
        self._changed = asyncio.Condition()

    async def reserve(self, worst_case: float | None) -> bool:
        """Reserve a row's worst case; False once the budget stops the map."""
        if self.limit is None:
            self.in_flight += 1
            return True
        if worst_case is None:  # planning refuses a budget without a known worst case
            raise InvalidInput("a budgeted row needs a known worst-case cost")
        async with self._changed:
            while True:
                if self.exhausted:
                    return False
                if self.spent + self.reserved + worst_case <= self.limit + 1e-12:
                    self.reserved += worst_case
                    self.in_flight += 1
                    return True
                if self.in_flight == 0:
                    self.exhausted = True
                    self._changed.notify_all()
                    return False
                await self._changed.wait()

    async def settle(self, worst_case: float | None, actual: float | None) -> None:
        """The row finished (or failed): free its reservation, count what it cost."""
        if actual is None:
            self.unknown_cost_rows += 1
        if self.limit is None:
            self.in_flight -= 1
            self.spent += actual or 0.0
            return
        async with self._changed:
            self.in_flight -= 1
            self.reserved -= worst_case or 0.0
            self.spent += actual or 0.0
            self._changed.notify_all()
