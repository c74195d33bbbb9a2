"""The dependency arrows of ARCHITECTURE.md, no import cycles, and a light `import kite_lab`.

Every import counts: ``if TYPE_CHECKING:`` blocks, imports inside functions, relative
imports and ``from kite_lab import X``. A type-only import still couples two modules (one
cannot be read, moved or typed without the other), so a cycle through annotations is a
cycle all the same.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from dataclasses import dataclass
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

_BELOW_KITE = {
    "core",
    "backends",
    "providers",
    "safety",
    "memory",
    "pipeline",
    "agents",
    "observability",
    "structured",
    "log",
    "replay",
    "batch",
    "evals",
}
# Which kite_lab areas each area may import (besides itself). Arrows point one way.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "backends": {"core"},
    "structured": {"core"},
    "providers": {"core", "structured"},
    "log": {"core", "backends", "providers"},
    "replay": {"core", "providers", "log", "observability"},
    "safety": {"core", "backends", "providers"},
    "memory": {"core", "backends", "providers"},
    "pipeline": {"core", "providers", "structured", "log", "replay"},
    "observability": {"core", "providers", "log"},
    "agents": {"core", "providers", "structured", "memory", "safety", "observability"},
    "batch": {
        "core", "backends", "providers", "structured", "pipeline", "agents", "memory",
        "safety", "observability", "log", "replay",
    },
    "evals": {
        "core", "backends", "providers", "structured", "pipeline", "agents", "memory",
        "safety", "observability", "log", "replay", "batch",
    },
    "testing": {"replay"},
    "kite": _BELOW_KITE,
    "views": _BELOW_KITE | {"kite"},
    "service": _BELOW_KITE | {"kite"},
    "script": _BELOW_KITE | {"kite", "views", "service"},
    "notebook": _BELOW_KITE | {"kite", "script", "views", "testing", "service"},
    # Entry points: they may reach every door.
    "entry": _BELOW_KITE | {"kite", "script", "views", "service", "notebook", "testing"},
}
# Top-level modules and the area they belong to.
AREA_OF_MODULE = {
    "kite": "kite",
    "agent_methods": "kite",
    "pipeline": "pipeline",
    "_version": "core",
    "script": "script",
    "monitoring": "observability",
    "frames": "views",
    "plots": "views",
    "render": "views",
    "demo": "entry",
    "doctor": "entry",
    "cli": "entry",
    "__init__": "entry",
}


@dataclass(frozen=True)
class ModuleGraph:
    """kite_lab's modules and, for each, the kite_lab modules it imports (every kind)."""

    paths: dict[str, Path]
    edges: dict[str, set[str]]

    @classmethod
    def read(cls, package: Path = PACKAGE) -> ModuleGraph:
        paths = {_module_name(p, package): p for p in sorted(package.rglob("*.py"))}
        edges = {name: _imports_of(name, path, paths) for name, path in paths.items()}
        return cls(paths, edges)

    def cycles(self) -> list[list[str]]:
        """Strongly connected components with more than one module (Tarjan, iterative)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        found: list[list[str]] = []
        for root in self.edges:
            if root in index:
                continue
            work = [(root, iter(sorted(self.edges[root])))]
            index[root] = low[root] = len(index)
            stack.append(root)
            on_stack.add(root)
            while work:
                node, children = work[-1]
                child = next(children, None)
                if child is not None:
                    if child not in index:
                        index[child] = low[child] = len(index)
                        stack.append(child)
                        on_stack.add(child)
                        work.append((child, iter(sorted(self.edges[child]))))
                    elif child in on_stack:
                        low[node] = min(low[node], index[child])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
        return found


def _module_name(path: Path, package: Path) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def _imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    targets: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:  # `from pkg import submodule` depends on the submodule
                sub = f"{module}.{alias.name}"
                targets.append(sub if sub in known else module)
    found = {_resolve(t, known) for t in targets if t.split(".")[0] == "kite_lab"}
    return {m for m in found if m and m != name}


def _area(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "entry"
    if len(parts) == 2 and (PACKAGE / f"{parts[1]}.py").exists():
        return AREA_OF_MODULE[parts[1]]
    return parts[1]


GRAPH = ModuleGraph.read()


def test_the_module_graph_has_no_cycle() -> None:
    cycles = GRAPH.cycles()
    described = [
        " <-> ".join(c) + "\n" + "\n".join(
            f"    {m} -> {sorted(GRAPH.edges[m] & set(c))}" for m in c
        )
        for c in cycles
    ]
    assert not cycles, "import cycles:\n" + "\n".join(described)


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = ModuleGraph(
        paths={}, edges={"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    )
    assert graph.cycles() == [["a", "b", "c"]]


def test_imports_of_every_kind_are_counted(tmp_path: Path) -> None:
    pkg = tmp_path / "kite_lab"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "other.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "sub" / "a.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from kite_lab.other import X\n"
        "from .b import y\n"
        "def f():\n    from kite_lab import other\n"
    )
    (pkg / "sub" / "b.py").write_text("from kite_lab import __version__\n")
    graph = ModuleGraph.read(pkg)
    assert graph.edges["kite_lab.sub.a"] == {"kite_lab.other", "kite_lab.sub.b"}
    assert graph.edges["kite_lab.sub"] == {"kite_lab.sub.b"}
    assert graph.edges["kite_lab.sub.b"] == {"kite_lab"}


def test_every_area_imports_only_what_it_may() -> None:
    violations = []
    for module, imported in sorted(GRAPH.edges.items()):
        area = _area(module)
        assert area in ALLOWED, f"{module} is in an area the layering test does not know: {area}"
        for target in sorted(imported):
            target_area = _area(target)
            if target_area != area and target_area not in ALLOWED[area]:
                violations.append(f"{module} ({area}) imports {target} ({target_area})")
    assert not violations, "\n".join(violations)


def test_nothing_imports_the_package_root() -> None:
    offenders = sorted(m for m, imported in GRAPH.edges.items() if "kite_lab" in imported)
    assert not offenders, f"import from the defining module, not kite_lab: {offenders}"


def _modules_after(code: str) -> list[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "code",
    [
        "import kite_lab",
        "from kite_lab import Kite\nKite()",
        "import kite_lab.core.events",
        "import kite_lab.providers, kite_lab.memory, kite_lab.observability, kite_lab.safety",
    ],
)
def test_import_and_construct_load_no_heavy_package(code: str) -> None:
    loaded = set(_modules_after(code))
    heavy = [name for name in HEAVY if name in loaded]
    assert heavy == [], f"{code!r} imported {heavy}"


def test_no_module_is_past_500_lines() -> None:
    long = [
        f"{p.relative_to(PACKAGE.parent)}: {n}"
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    ]
    assert not long, long


def test_public_surface_exports_every_error() -> None:
    import kite_lab
    from kite_lab.core import errors

    missing = [n for n in errors.__all__ if n != "redact" and n not in kite_lab.__all__]
    assert not missing, f"add to kite_lab/__init__.py: {missing}"
    for name in kite_lab.__all__:
        assert hasattr(kite_lab, name), name


def test_every_error_class_is_in_the_drawn_tree() -> None:
    from kite_lab.core import errors

    classes = [
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), Exception)
    ]
    import re

    drawn = set(re.findall(r"^[\s│├└─]*([A-Z]\w+)", errors.__doc__ or "", re.MULTILINE))
    missing = [name for name in classes if name not in drawn]
    assert not missing, f"draw these in kite_lab/core/errors.py's docstring: {missing}"


def test_every_kite_error_subclass_lives_in_the_tree() -> None:
    """No module defines a KiteError subclass of its own: the tree is the one place."""
    defined_elsewhere = []
    for module, path in GRAPH.paths.items():
        if module == "kite_lab.core.errors":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).split(".")[-1] for b in node.bases}
                if bases & _error_names():
                    defined_elsewhere.append(f"{module}.{node.name}")
    assert not defined_elsewhere, defined_elsewhere


def _error_names() -> set[str]:
    from kite_lab.core import errors

    return {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type)
        and issubclass(getattr(errors, name), errors.KiteError)
    }


def test_import_kite_lab_loads_no_costly_stdlib_module() -> None:
    """Issue 13: ``import kite_lab`` cost 70-90 ms with dataclasses/inspect/logging pulled in
    by core.types, core.events and kite.py; asyncio alone costs ~35 ms. They load on use."""
    script = "import sys\nimport kite_lab\nprint(','.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    loaded = set(out.stdout.strip().split(","))
    costly = [m for m in ("asyncio", "dataclasses", "inspect", "logging", "json") if m in loaded]
    assert costly == [], f"import kite_lab imported {costly}"
