"""The notebook door: ``%load_ext kite_lab``, ``%%kite`` cells, ``%kite`` commands, widgets.

    %load_ext kite_lab
    %%kite -o answer
    What is the capital of France?

One ``Kite`` per kernel answers every magic: ``current()`` returns it, ``use(ai)`` swaps in
one you configured yourself (a fake server, another provider). Both work in plain Python
too, where ``current()`` is a process-wide default, so cells exported to a script run.

Importing this package is cheap: IPython, pandas, plotly and ipywidgets load on first use.
DataFrames and figures of a Kite's activity are ``kite_lab.frames`` and ``kite_lab.plots``
(plain Python, no IPython); the demo is ``kite_lab.demo``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = ["current", "use"]

_default: Kite | None = None  # the Kite of a process with no IPython shell


def _active_magics() -> Any | None:
    """The KiteMagics registered on the running IPython shell, if any."""
    import sys

    if "IPython" not in sys.modules:  # plain Python: never import IPython just to look
        return None
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return None
    return shell.magics_manager.registry.get("KiteMagics")


def current() -> Kite:
    """The ``Kite`` the magics of this kernel use (created on first use, settings from env)."""
    global _default
    magics = _active_magics()
    if magics is not None:
        return magics.ai
    if _default is None:
        from kite_lab.kite import Kite

        _default = Kite()
    return _default


def use(ai: Kite) -> Kite:
    """Make ``ai`` the kernel's Kite (what ``%%kite`` and ``current()`` use); returns it."""
    global _default
    from kite_lab.kite import Kite

    if not isinstance(ai, Kite):
        raise TypeError(f"use() takes a kite_lab.Kite, not {type(ai).__name__}")
    magics = _active_magics()
    if magics is not None:
        magics.ai = ai
    else:
        _default = ai
    return ai
