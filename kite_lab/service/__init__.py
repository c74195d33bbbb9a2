"""The HTTP service: FastAPI over the ``Kite`` facade (``kite-lab serve``).

    from kite_lab.service import create_app
    app = create_app()                      # Kite() from the environment / .env

Importing this package loads nothing heavy; FastAPI loads with ``create_app``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from kite_lab.service.app import create_app

        return create_app
    if name == "serve":
        from kite_lab.service.server import serve

        return serve
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
