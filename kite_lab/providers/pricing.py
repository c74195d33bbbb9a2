"""USD prices per million tokens, per model. An unknown model costs None, never a guess.

Prices are list prices at the time of writing; override or extend with
``register_price("provider/model", input_per_mtok, output_per_mtok)``.
"""

from __future__ import annotations

from kite_lab.core.types import Usage

__all__ = ["cost_usd", "known_models", "register_price"]

# (input, output) USD per 1M tokens
_PRICES: dict[str, tuple[float, float]] = {
    "openai/gpt-4o": (2.50, 10.00),
    "openai/gpt-4o-mini": (0.15, 0.60),
    "openai/gpt-4.1": (2.00, 8.00),
    "openai/gpt-4.1-mini": (0.40, 1.60),
    "openai/gpt-4.1-nano": (0.10, 0.40),
    "openai/gpt-4": (30.00, 60.00),
    "openai/gpt-4-turbo": (10.00, 30.00),
    "openai/gpt-3.5-turbo": (0.50, 1.50),
    "openai/text-embedding-3-small": (0.02, 0.0),
    "openai/text-embedding-3-large": (0.13, 0.0),
    "anthropic/claude-3-5-sonnet-20241022": (3.00, 15.00),
    "anthropic/claude-3-5-haiku-20241022": (0.80, 4.00),
    "anthropic/claude-3-7-sonnet-20250219": (3.00, 15.00),
    "anthropic/claude-sonnet-4-20250514": (3.00, 15.00),
    "anthropic/claude-3-opus-20240229": (15.00, 75.00),
    "anthropic/claude-3-haiku-20240307": (0.25, 1.25),
    "groq/llama-3.3-70b-versatile": (0.59, 0.79),
    "groq/llama-3.1-8b-instant": (0.05, 0.08),
    "groq/mixtral-8x7b-32768": (0.24, 0.24),
}

#: providers that run on the user's own hardware: every model is free
_FREE_PROVIDERS = {"local", "ollama"}


def register_price(model_id: str, input_per_mtok: float, output_per_mtok: float) -> None:
    """Add or change the price of ``provider/model``."""
    if "/" not in model_id:
        raise ValueError("model_id must be 'provider/model'")
    if input_per_mtok < 0 or output_per_mtok < 0:
        raise ValueError("prices must be >= 0")
    _PRICES[model_id] = (input_per_mtok, output_per_mtok)


def cost_usd(provider: str, model: str, usage: Usage) -> float | None:
    if provider in _FREE_PROVIDERS:
        return 0.0
    price = _PRICES.get(f"{provider}/{model}")
    if price is None:
        return None
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1_000_000


def known_models() -> list[str]:
    """Every ``provider/model`` with a price (a closed set, e.g. for metric labels)."""
    return sorted(_PRICES)
