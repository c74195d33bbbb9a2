"""How an error raised by a magic looks in a cell: one short line, and the cell fails.

Why not ``set_custom_exc``: it is global (it changes every cell's error display) and hides
exceptions from other code. Instead each exception leaving a magic gets its own
``_render_traceback_`` (IPython's per-exception hook), so the cell shows
``CircuitBreakerError: circuit breaker 'openai' is open; ...`` with no wall of frames, while
the exception keeps its type: nbclient/papermill see the failure, ``try/except`` around
``x = %kite complete ...`` still catches ``KiteError``, and ``%tb`` shows the full trace.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core.error import UsageError

__all__ = ["shorten", "with_short_errors"]

F = TypeVar("F", bound=Callable[..., Any])

_RED, _RESET = "\x1b[0;31m", "\x1b[0m"


def shorten(exc: BaseException, hint: str | None = None) -> BaseException:
    """Give ``exc`` a one-line rendering in IPython; return it for ``raise``."""
    name = type(exc).__name__
    message = str(exc) or repr(exc)
    lines = [f"{_RED}{name}{_RESET}: {message}"]
    if hint:
        lines.append(hint)
    try:
        exc._render_traceback_ = lambda: list(lines)  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # an exception type with __slots__: leave it
        pass
    return exc


def with_short_errors(method: F) -> F:
    """Decorate a magic method: its exceptions show short when ``self.short_errors``."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except UsageError:
            raise  # IPython already shows these as one line
        except Exception as exc:
            if not getattr(self, "short_errors", True):
                raise
            from kite_lab.core.errors import KiteError

            hint = None
            if not isinstance(exc, KiteError | ValueError | TypeError | LookupError):
                hint = "(%tb shows the full traceback)"
            raise shorten(exc, hint) from None

    return wrapper  # type: ignore[return-value]
