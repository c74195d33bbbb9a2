"""The ``Kite`` methods for batch runs (``map``/``amap``), mixed into the facade.

Why a mixin: the facade stays one small module while each capability keeps its public
methods next to its implementation; the methods name a host Protocol, not ``Kite``.
"""

from __future__ import annotations

__all__ = ["BatchMethods"]


class BatchMethods:
    """``ai.map`` / ``ai.amap``."""
