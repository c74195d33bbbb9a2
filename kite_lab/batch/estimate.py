"""What a map would cost, before it runs: ``ai.map(..., dry_run=True)`` and the budget.

Why two token counts: no tokenizer ships with kite_lab, so ``prompt_tokens`` is the usual
~4 characters per token estimate, shown to the user; the budget needs a bound that is
never below the truth, and a token is at least one UTF-8 byte, so ``prompt_tokens_max``
counts bytes (plus a few tokens of message framing). With the completion's
``max_tokens`` this gives each row's worst case. A model without a price has no worst
case: ``None``, never a guess.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kite_lab.core.types import Usage
from kite_lab.providers.pricing import cost_usd

__all__ = ["MapEstimate", "RowCost", "max_completion_tokens"]

#: tokens of message framing (roles, separators) per call, on top of the text
_FRAMING_TOKENS = 16


def max_completion_tokens(params: dict[str, Any]) -> int | None:
    """The completion limit a call is made with (``max_tokens``), if any."""
    for name in ("max_tokens", "max_completion_tokens"):
        value = params.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class RowCost:
    """Per-row token estimates and worst-case cost for one provider/model."""

    def __init__(self, provider: str, model: str, system: str | None, params: dict[str, Any]):
        self.provider, self.model = provider, model
        self.system_chars = len(system or "")
        self.system_bytes = len((system or "").encode("utf-8"))
        self.max_tokens = max_completion_tokens(params)

    def prompt_tokens(self, prompt: str) -> int:
        return (len(prompt) + self.system_chars + 3) // 4 + _FRAMING_TOKENS

    def prompt_tokens_max(self, prompt: str) -> int:
        return len(prompt.encode("utf-8")) + self.system_bytes + _FRAMING_TOKENS

    def worst_case(self, prompt: str) -> float | None:
        """USD if the row used every token it may; None without a price or max_tokens."""
        if self.max_tokens is None:
            return None
        usage = Usage(self.prompt_tokens_max(prompt), self.max_tokens)
        return cost_usd(self.provider, self.model, usage)


@dataclass(frozen=True)
class MapEstimate:
    """What ``ai.map(..., dry_run=True)`` returns; nothing was called."""

    rows: int  # rows in the data
    calls: int  # provider calls the map would make (unique rows not in the checkpoint)
    done: int  # unique rows the checkpoint already holds
    provider: str
    model: str
    prompt_tokens: int  # estimated (~4 characters per token) over the calls
    prompt_tokens_max: int  # upper bound (1 token per UTF-8 byte) over the calls
    max_completion_tokens: int | None  # max_tokens x calls; None without max_tokens
    worst_case_usd: float | None  # None: no price for the model, or no max_tokens

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        worst = "unknown" if self.worst_case_usd is None else f"${self.worst_case_usd:.4f}"
        return (
            f"ai.map dry run: {self.rows} rows, {self.calls} calls ({self.done} already done) "
            f"to {self.provider}/{self.model}; ~{self.prompt_tokens} prompt tokens, "
            f"max {self.max_completion_tokens or 'unlimited'} completion tokens; "
            f"worst case {worst}"
        )

    @classmethod
    def of(
        cls, rows: int, prompts: list[str], done: int, costs: RowCost, *, agent: bool = False
    ) -> MapEstimate:
        total = 0.0
        worst: float | None = None if agent else total
        for prompt in [] if agent else prompts:
            each = costs.worst_case(prompt)
            if each is None:
                worst = None
                break
            total += each
            worst = total
        limit = costs.max_tokens
        return cls(
            rows=rows,
            calls=len(prompts),
            done=done,
            provider=costs.provider,
            model=costs.model,
            prompt_tokens=sum(costs.prompt_tokens(p) for p in prompts),
            prompt_tokens_max=sum(costs.prompt_tokens_max(p) for p in prompts),
            max_completion_tokens=None if limit is None or agent else limit * len(prompts),
            worst_case_usd=worst,
        )
