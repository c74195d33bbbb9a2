"""Find what to serve: ``kite-lab serve --app TARGET`` and ``create_app(agents_module=...)``.

TARGET may be
- ``pkg.module`` or ``path/to/script.py`` (an exported notebook): its ``Kite`` instance
  becomes the app's, and every agent created on it (or defined at module level) is served
  at ``/agents/{name}/run``;
- ``pkg.module:attr`` where ``attr`` is an ASGI app (served as is), a ``Kite`` (served
  with the module's agents) or a zero-argument factory returning either.

Why a separate module: the multi-worker server re-imports the target in every worker
process from an import string, so resolution must be a plain function of TARGET.
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

__all__ = ["discover", "import_target", "load_module"]


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


def import_target(target: str | None) -> Any:
    """An ASGI app for TARGET (see the module docstring)."""
    from kite_lab.kite import Kite
    from kite_lab.service.app import create_app

    if not target:
        return create_app()
    module_name, _, attr = target.partition(":")
    module = load_module(module_name)
    if not attr:
        return create_app(agents_module=module)
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"--app {target}: {module_name} has no attribute {attr!r}") from None
    if isinstance(obj, Kite):
        return create_app(kite=obj, agents_module=module)
    if _is_asgi_app(obj):
        return obj
    if callable(obj):
        made = obj()
        if isinstance(made, Kite):
            return create_app(kite=made, agents_module=module)
        if _is_asgi_app(made):
            return made
    raise ConfigError(
        f"--app {target}: {attr} is neither an ASGI app, a Kite, nor a factory of one"
    )


def _is_asgi_app(obj: Any) -> bool:
    try:
        from starlette.applications import Starlette
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Starlette)
