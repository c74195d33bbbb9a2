"""The dependency arrows of ARCHITECTURE.md, and the promise that `import kite_lab` is light."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kite_lab"

HEAVY = [
    "openai",
    "anthropic",
    "faiss",
    "fastembed",
    "pandas",
    "plotly",
    "IPython",
    "ipywidgets",
    "fastapi",
    "redis",
    "sqlmodel",
    "llama_cpp",
    "numpy",
    "pydantic_settings",
    "limits",
]

# Which kite_lab areas each area may import (besides itself). Arrows point one way.
ALLOWED = {
    "core": set(),
    "providers": {"core"},
    "safety": {"core", "providers"},
    "memory": {"core", "providers", "safety"},
    "pipeline": {"core", "providers"},
    "agents": {"core", "providers", "memory", "safety", "observability"},
    "observability": {"core", "providers"},
    "testing": set(),
    "kite": {"core", "providers", "safety", "memory", "pipeline", "agents", "observability"},
    "service": {
        "core",
        "providers",
        "safety",
        "memory",
        "pipeline",
        "agents",
        "observability",
        "kite",
    },
    "notebook": {
        "core",
        "providers",
        "safety",
        "memory",
        "pipeline",
        "agents",
        "observability",
        "kite",
        "testing",
        "service",
    },
}
# Top-level modules that belong to an area.
AREA_OF_MODULE = {
    "kite": "kite",
    "pipeline": "pipeline",
    "monitoring": "observability",
    "frames": "notebook",
    "plots": "notebook",
    "demo": "kite",
    "doctor": "kite",
    "cli": None,
    "__init__": None,
}


def _area(path: Path) -> str | None:
    rel = path.relative_to(PACKAGE)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return AREA_OF_MODULE.get(rel.stem)


def _imported_areas(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {  # `if TYPE_CHECKING:` imports are annotations, not dependencies
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for stmt in node.body
        for child in ast.walk(stmt)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "kite_lab" and len(parts) > 1:
                found.add(AREA_OF_MODULE.get(parts[1], parts[1]) or parts[1])
    return found


def test_every_area_imports_only_what_it_may() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        area = _area(path)
        if area is None:
            continue
        assert area in ALLOWED, f"{path} is in an area the layering test does not know: {area}"
        bad = _imported_areas(path) - ALLOWED[area] - {area}
        if bad:
            violations.append(f"{path.relative_to(PACKAGE.parent)} ({area}) imports {sorted(bad)}")
    assert not violations, "\n".join(violations)


def test_core_imports_nothing_else_from_kite_lab() -> None:
    for path in (PACKAGE / "core").rglob("*.py"):
        assert _imported_areas(path) <= {"core"}, path


def _modules_after(code: str) -> list[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code", ["import kite_lab", "from kite_lab import Kite\nKite()", "import kite_lab.core.events"]
)
def test_import_and_construct_load_no_heavy_package(code: str) -> None:
    loaded = set(_modules_after(code))
    heavy = [name for name in HEAVY if name in loaded]
    assert heavy == [], f"{code!r} imported {heavy}"


def test_no_module_is_past_600_lines() -> None:
    long = [
        f"{p.relative_to(PACKAGE.parent)}: {n}"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600
    ]
    assert not long, long


def test_public_surface_exports_every_error() -> None:
    import kite_lab
    from kite_lab.core import errors

    missing = [n for n in errors.__all__ if n != "redact" and n not in kite_lab.__all__]
    assert not missing, f"add to kite_lab/__init__.py: {missing}"
    for name in kite_lab.__all__:
        assert hasattr(kite_lab, name), name
