"""Checks for numeric options, shared by every component that takes one.

Why one helper: ``bool`` is an ``int`` in Python, so ``concurrency=True`` or
``ttl=False`` slips past a bare ``isinstance(x, int)``; each component used to repeat the
same four-part test with its own wording. These raise the error class the caller names
(``ConfigError`` for settings, ``InvalidInput`` for call arguments) with one message shape:
``"<what> must be <rule>, got <value>"``.
"""

from __future__ import annotations

from typing import Any

from kite_lab.core.errors import InvalidInput

__all__ = ["check_int", "check_number"]


def check_int(
    value: Any,
    what: str,
    *,
    minimum: int = 1,
    error: type[Exception] = InvalidInput,
) -> int:
    """``value`` if it is an int (not a bool) >= ``minimum``; else ``error``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        rule = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise error(f"{what} must be {rule}, got {value!r}")
    return value


def check_number(
    value: Any,
    what: str,
    *,
    minimum: float = 0.0,
    strict: bool = True,
    unit: str = "",
    error: type[Exception] = InvalidInput,
) -> float:
    """``float(value)`` if it is a real number (not a bool) above ``minimum``.

    ``strict=True`` means ``> minimum``; ``strict=False`` means ``>= minimum``.
    """
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if not numeric or not (value > minimum if strict else value >= minimum) or value != value:
        if minimum == 0 and strict:
            rule = "a positive number"
        else:
            rule = f"{'>' if strict else '>='} {minimum:g}"
        suffix = f" {unit}" if unit else ""
        raise error(f"{what} must be {rule}{suffix}, got {value!r}")
    return float(value)
