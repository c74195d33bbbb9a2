"""``kite_lab.memory``'s curated names: each resolves, lazily, to its defining module."""

from __future__ import annotations

import json
import subprocess
import sys

import kite_lab.memory as memory


def test_every_exported_name_resolves_to_its_home() -> None:
    for name in memory.__all__:
        value = getattr(memory, name)
        assert getattr(value, "__module__", None) == f"kite_lab.memory.{memory._HOME[name]}", name
    assert sorted(memory._HOME) == sorted(memory.__all__)


def test_importing_the_package_loads_no_store() -> None:
    code = (
        "import sys, json, kite_lab.memory;"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('faiss', 'numpy', 'sqlmodel', 'sqlalchemy', 'redis'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
