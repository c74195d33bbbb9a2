"""``kite_lab.observability``'s curated names: each resolves, lazily, to its defining module."""

from __future__ import annotations

import json
import subprocess
import sys

import kite_lab.observability as observability


def test_every_exported_name_resolves_to_its_home() -> None:
    for name in observability.__all__:
        value = getattr(observability, name)
        home = observability._HOME[name]
        assert getattr(value, "__module__", None) == f"kite_lab.observability.{home}", name
    assert sorted(observability._HOME) == sorted(observability.__all__)


def test_importing_the_package_loads_no_metric_machinery() -> None:
    code = (
        "import sys, json, kite_lab.observability as o; o.__all__;"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('prometheus'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
