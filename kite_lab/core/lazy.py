"""Lazy package exports (PEP 562): a name loads its module on first access, then stays.

Why: ``kite_lab.memory``, ``.providers`` and ``.observability`` curate an ``__all__`` whose
names live in modules that import faiss, SDKs or prometheus_client; importing the package
must stay light, so each name is resolved from its home module only when first used.

    __getattr__, __dir__ = lazy_exports(__name__, {"VectorMemory": "vector"}, __all__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``homes`` maps a name to its submodule."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home}"), name)
        vars(sys.modules[package])[name] = value  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
