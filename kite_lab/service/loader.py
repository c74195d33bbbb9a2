"""Find what to serve: ``kite-lab serve --app TARGET`` and ``create_app(agents_module=...)``.

TARGET (``kite_lab.service.server.import_target`` turns it into an app) may be
- ``pkg.module`` or ``path/to/script.py`` (an exported notebook): its ``Kite`` instance
  becomes the app's, and every agent created on it (or defined at module level) is served
  at ``/agents/{name}/run``;
- ``pkg.module:attr`` where ``attr`` is an ASGI app (served as is), a ``Kite`` (served
  with the module's agents) or a zero-argument factory returning either.

Why a separate module: the multi-worker server re-imports the target in every worker
process from an import string, so resolution must be a plain function of TARGET. It
builds no app itself, so ``app`` can use it without the two importing each other.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kite_lab.core.errors import ConfigError

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = ["discover", "load_module"]


def load_module(target: str | ModuleType) -> ModuleType:
    """Import ``pkg.module`` or a ``.py`` file path (the working directory is importable)."""
    if isinstance(target, ModuleType):
        return target
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if target.endswith(".py") or os.sep in target:
        path = Path(target).resolve()
        if not path.is_file():
            raise ConfigError(f"--app {target}: no such file")
        name = f"kite_app_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"--app {target}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise ConfigError(
                f"--app {target}: module not found; run from the directory that contains it "
                "or pass a .py path"
            ) from None
        raise


def discover(module: ModuleType) -> tuple[list[Kite], dict[str, Any]]:
    """The ``Kite`` instances in ``module`` and the agents to serve, by name."""
    from kite_lab.kite import Kite

    kites: list[Kite] = []
    agents: dict[str, Any] = {}
    for value in vars(module).values():
        if isinstance(value, Kite) and all(value is not k for k in kites):
            kites.append(value)
    for kite in kites:
        agents.update(kite.agents)
    for value in vars(module).values():
        if _is_agent(value):
            agents.setdefault(value.name, value)
    return kites, agents


def _is_agent(value: Any) -> bool:
    try:
        from kite_lab.agents.base import Agent
    except ImportError:  # pragma: no cover - agents always ship with kite_lab
        return False
    return isinstance(value, Agent)
