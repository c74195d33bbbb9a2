"""The public surface, as a snapshot: a name added or removed is a decision, not an accident.

Like httpx's test of ``httpx.__all__``: every package's curated ``__all__`` is compared
with ``tests/public_api.json``. After a deliberate change, rewrite the snapshot with

    KITE_UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/test_public_api.py

and review the diff of the JSON file like any other change to the API.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import pytest

SNAPSHOT = Path(__file__).with_name("public_api.json")

PUBLIC_MODULES = [
    "kite_lab",
    "kite_lab.core",
    "kite_lab.core.errors",
    "kite_lab.core.types",
    "kite_lab.core.events",
    "kite_lab.providers",
    "kite_lab.safety",
    "kite_lab.memory",
    "kite_lab.agents",
    "kite_lab.observability",
    "kite_lab.service",
    "kite_lab.notebook",
    "kite_lab.testing",
    "kite_lab.frames",
    "kite_lab.plots",
    "kite_lab.script",
]


def _surface() -> dict[str, list[str]]:
    return {name: sorted(importlib.import_module(name).__all__) for name in PUBLIC_MODULES}


def test_public_surface_matches_the_snapshot() -> None:
    surface = _surface()
    if os.environ.get("KITE_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(surface, indent=2, sort_keys=True) + "\n", "utf-8")
    recorded = json.loads(SNAPSHOT.read_text("utf-8"))
    for module in PUBLIC_MODULES:
        added = sorted(set(surface[module]) - set(recorded.get(module, [])))
        removed = sorted(set(recorded.get(module, [])) - set(surface[module]))
        assert not added and not removed, (
            f"{module}.__all__ changed: added {added}, removed {removed}; if deliberate, "
            "rerun with KITE_UPDATE_SNAPSHOT=1 and commit tests/public_api.json"
        )


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_every_exported_name_exists_and_is_documented(module: str) -> None:
    mod = importlib.import_module(module)
    assert mod.__doc__ and mod.__doc__.strip(), f"{module} has no docstring"
    missing = [name for name in mod.__all__ if not hasattr(mod, name)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"
    assert len(set(mod.__all__)) == len(mod.__all__), f"{module}.__all__ has duplicates"
