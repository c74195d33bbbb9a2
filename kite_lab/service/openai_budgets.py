"""Per-key spending limits for the gateway: KITE_KEY_BUDGETS.

    KITE_KEY_BUDGETS="*=5/day, 3f2a9c1b7d4e=100/month"

Each entry is ``KEY_ID=USD/PERIOD``; ``KEY_ID`` is a service key's id (the 12 hex
characters logged as ``key_id``: ``python -c "from kite_lab.service.auth import key_id;
print(key_id('<key>'))"``, so no secret is written twice) or ``*`` for every key without
an entry of its own (each key gets its own ``*`` budget). Periods: hour, day, week,
month (UTC calendar periods) and total. Without auth, every caller is ``anonymous``.

A request whose key has spent its budget gets 429 ``insufficient_quota`` with
``Retry-After`` (the start of the next period) and ``x-should-retry: false`` (the openai
SDK then does not retry it). The check is made before the call and the cost (kite's
``cost_usd``) added after it, so concurrent requests can overshoot by what is in flight,
never more. A model without a price costs 0 here: give it one with ``register_price``.

Where the spend is kept: ``SpendLedger``, in Redis when REDIS_URL is set (shared by every
replica; one ``INCRBYFLOAT`` per answered request, keys expire after their period) and
in process memory otherwise. An unreachable Redis fails open (logged), like the rate
limiter: a budget store outage must not become a full outage.

(Issue 17 asks for the spend to be read from the call log of issue 16; that log does not
record service key ids yet, so the ledger stands in behind the same two methods.)
"""

from __future__ import annotations

import calendar
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from kite_lab.core.errors import ConfigError
from kite_lab.service.openai_errors import GatewayError

if TYPE_CHECKING:
    from kite_lab.core.config import KiteSettings

__all__ = ["Budget", "KeyBudgets", "MemoryLedger", "RedisLedger", "SpendLedger", "parse_budgets"]

log = logging.getLogger("kite_lab.service")

PERIODS = ("hour", "day", "week", "month", "total")


@dataclass(frozen=True, slots=True)
class Budget:
    usd: float
    period: str

    def window(self, now: float) -> tuple[float, float | None]:
        """``(start, end)`` epoch seconds of the period holding ``now`` (end None: total)."""
        if self.period == "total":
            return 0.0, None
        moment = datetime.fromtimestamp(now, UTC)
        if self.period == "hour":
            start = moment.replace(minute=0, second=0, microsecond=0)
            end = start + timedelta(hours=1)
        elif self.period == "day":
            start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
            end = start + timedelta(days=1)
        elif self.period == "week":
            start = moment.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
                days=moment.weekday()
            )
            end = start + timedelta(days=7)
        else:  # month
            start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            days = calendar.monthrange(start.year, start.month)[1]
            end = start + timedelta(days=days)
        return start.timestamp(), end.timestamp()


def parse_budgets(value: str | None) -> dict[str, Budget]:
    """``"*=5/day, abc123def456=100/month"`` -> ``{"*": Budget(5, "day"), ...}``."""
    budgets: dict[str, Budget] = {}
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, spec = (p.strip() for p in item.partition("="))
        amount, slash, period = (p.strip().lower() for p in spec.partition("/"))
        try:
            usd = float(amount.lstrip("$"))
        except ValueError:
            usd = -1.0
        if not sep or not key or not slash or period not in PERIODS or usd < 0:
            raise ConfigError(
                f"KITE_KEY_BUDGETS: {item!r} is not KEY_ID=USD/PERIOD (period: "
                f"{', '.join(PERIODS)}); e.g. *=5/day,3f2a9c1b7d4e=100/month"
            )
        budgets[key] = Budget(usd, period)
    return budgets


class SpendLedger(Protocol):
    """Where spend per (key, period window) is kept."""

    async def spent(self, key: str, budget: Budget, start: float) -> float: ...

    async def add(
        self, key: str, budget: Budget, start: float, end: float | None, usd: float
    ) -> None: ...

    async def aclose(self) -> None: ...


class MemoryLedger:
    """This process only (no REDIS_URL)."""

    def __init__(self) -> None:
        self._spent: dict[tuple[str, str, float], float] = {}

    async def spent(self, key: str, budget: Budget, start: float) -> float:
        return self._spent.get((key, budget.period, start), 0.0)

    async def add(
        self, key: str, budget: Budget, start: float, end: float | None, usd: float
    ) -> None:
        slot = (key, budget.period, start)
        self._spent[slot] = self._spent.get(slot, 0.0) + usd
        if len(self._spent) > 10_000:  # old windows of a long-running process
            now = time.time()
            for old in [s for s in self._spent if s[2] < now - 40 * 86_400 and s[1] != "total"]:
                del self._spent[old]

    async def aclose(self) -> None:
        return None


class RedisLedger:
    """Shared by every replica: ``{prefix}budget:{key}:{period}:{start}`` floats."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = f"{prefix}budget:"

    def _redis(self) -> Any:
        from kite_lab.backends.redis_client import redis_client

        return redis_client(self._url)  # this loop's client (one per URL and loop)

    def _key(self, key: str, budget: Budget, start: float) -> str:
        return f"{self._prefix}{key}:{budget.period}:{int(start)}"

    async def spent(self, key: str, budget: Budget, start: float) -> float:
        value = await self._redis().get(self._key(key, budget, start))
        return float(value) if value is not None else 0.0

    async def add(
        self, key: str, budget: Budget, start: float, end: float | None, usd: float
    ) -> None:
        name = self._key(key, budget, start)
        pipe = self._redis().pipeline(transaction=False)
        pipe.incrbyfloat(name, usd)
        if end is not None:
            pipe.expireat(name, int(end) + 3600)
        await pipe.execute()

    async def aclose(self) -> None:
        return None  # the shared clients are closed by the service's shutdown


class KeyBudgets:
    """Checks and charges the budget of the calling key."""

    def __init__(self, settings: KiteSettings, ledger: SpendLedger | None = None) -> None:
        self.budgets = parse_budgets(settings.kite_key_budgets)
        if ledger is None:
            ledger = (
                RedisLedger(settings.redis_url, settings.kite_redis_prefix)
                if settings.redis_url
                else MemoryLedger()
            )
        self.ledger = ledger

    @property
    def enabled(self) -> bool:
        return bool(self.budgets)

    def budget_of(self, key_id: str | None) -> Budget | None:
        return self.budgets.get(key_id or "anonymous") or self.budgets.get("*")

    async def check(self, key_id: str | None, now: float | None = None) -> None:
        """Raise GatewayError 429 when ``key_id`` has spent its budget for this period."""
        budget = self.budget_of(key_id)
        if budget is None:
            return
        now = time.time() if now is None else now
        start, end = budget.window(now)
        try:
            spent = await self.ledger.spent(key_id or "anonymous", budget, start)
        except Exception:  # Redis down: fail open, like the rate limiter (logged)
            log.warning("budget_unavailable", exc_info=True, extra={"event": "budget_unavailable"})
            return
        if spent >= budget.usd:
            headers = {"x-should-retry": "false"}
            if end is not None:
                headers["Retry-After"] = str(max(1, int(end - now + 0.999)))
            raise GatewayError(
                429,
                f"this API key's budget of ${budget.usd:g} per {budget.period} is spent "
                f"(${spent:.4f}); it renews at the start of the next {budget.period}"
                if end is not None
                else f"this API key's total budget of ${budget.usd:g} is spent (${spent:.4f})",
                "insufficient_quota",
                headers=headers,
                type="insufficient_quota",
            )

    async def charge(self, key_id: str | None, usd: float | None, now: float | None = None) -> None:
        """Add ``usd`` to the key's spend (nothing without a budget or a price)."""
        budget = self.budget_of(key_id)
        if budget is None or not usd:
            return
        now = time.time() if now is None else now
        start, end = budget.window(now)
        try:
            await self.ledger.add(key_id or "anonymous", budget, start, end, usd)
        except Exception:
            log.warning("budget_unavailable", exc_info=True, extra={"event": "budget_unavailable"})

    async def aclose(self) -> None:
        await self.ledger.aclose()
