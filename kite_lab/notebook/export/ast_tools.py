"""What a cell's code binds, and where its IPython calls sit: the exporter's AST helpers.

Why a module of its own: the compiler decides what each cell becomes; these helpers answer
the static questions it asks of the code the kernel would run (``IPython``'s transformed
cell): which names a statement binds (for ``{name}`` interpolation), where a
``get_ipython().run_line_magic(...)`` call starts and ends in the text (AST columns are
UTF-8 bytes), and which statements are at module level (where ``await`` means ``run_sync``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Bindings", "Edit", "Offsets", "apply_edits", "bindings", "cell_source",
           "displayed", "expr_value", "has_statement", "ipython_call", "names_bound_anywhere",
           "quiet_last", "secret_slots", "str_args", "top_level", "transform", "walk_shallow"]


def ipython_call(node: ast.AST | None) -> str | None:
    """``run_line_magic`` etc. when ``node`` is ``get_ipython().<method>(...)``."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Call)
            and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "get_ipython"):
        return node.func.attr
    return None


def str_args(node: ast.Call) -> list[str]:
    return [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]


class Bindings(ast.NodeVisitor):
    """Names a module-level statement binds (``value`` or ``module``) and deletes."""

    def __init__(self) -> None:
        self.bound: dict[str, str] = {}
        self.deleted: set[str] = set()

    def _bind(self, target: ast.AST, kind: str = "value") -> None:
        for node in ast.walk(target):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                self.bound[node.id] = kind
                self.deleted.discard(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._bind(target)
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self._bind(node.target)
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target)
        self.generic_visit(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self._bind(node.target)
        self.generic_visit(node)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self._bind(node.target)
        self.generic_visit(node)

    visit_AsyncFor = visit_For

    def visit_withitem(self, node: ast.withitem) -> None:
        if node.optional_vars is not None:
            self._bind(node.optional_vars)
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.bound[alias.asname or alias.name.split(".")[0]] = "module"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name != "*":
                self.bound[alias.asname or alias.name] = "value"

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                          ) -> None:
        self.bound[node.name] = "value"  # the body is another scope

    visit_AsyncFunctionDef = visit_ClassDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        return

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.bound.pop(target.id, None)
                self.deleted.add(target.id)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self.generic_visit(node)  # "except E as e" unbinds e at the end of the handler


def bindings(stmts: Sequence[ast.stmt]) -> Bindings:
    visitor = Bindings()
    for stmt in stmts:
        visitor.visit(stmt)
    return visitor


@dataclass
class Edit:
    start: int
    end: int
    text: str


class Offsets:
    """(line, utf-8 column) positions of the ast -> offsets in the text."""

    def __init__(self, code: str) -> None:
        self.lines = code.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def at(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1] if lineno - 1 < len(self.lines) else ""
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "replace"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (self.at(node.lineno, node.col_offset),  # type: ignore[attr-defined]
                self.at(node.end_lineno, node.end_col_offset))  # type: ignore[attr-defined]

    def line_span(self, node: ast.stmt) -> tuple[int, int, str]:
        """Whole lines of a statement, and its indentation."""
        start = self.starts[node.lineno - 1]
        last = node.end_lineno or node.lineno
        end_line = self.lines[last - 1]
        end = self.starts[last - 1] + len(end_line.rstrip("\r\n"))
        first = self.lines[node.lineno - 1]
        return start, end, first[: len(first) - len(first.lstrip())]


def walk_shallow(stmt: ast.stmt) -> list[ast.AST]:
    """Expression nodes of ``stmt`` outside nested statements and function scopes."""
    found: list[ast.AST] = []
    todo: list[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt | ast.Lambda | ast.ExceptHandler | ast.match_case):
                continue
            if ipython_call(child) is not None:
                found.append(child)
                continue  # its arguments are string constants
            found.append(child)
            todo.append(child)
    return [n for n in found if ipython_call(n) is not None or isinstance(n, ast.Await)]


def apply_edits(code: str, edits: list[Edit]) -> str:
    for edit in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        code = code[:edit.start] + edit.text + code[edit.end:]
    return code


def quiet_last(code: str) -> str:
    """``expr;`` ends a cell quietly in IPython; a script needs no semicolon (nor a no-op)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:  # pragma: no cover
        return code
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr) or last.end_lineno is None:
        return code
    offsets = Offsets(code)
    start, end = offsets.span(last)
    tail = code[end:]
    rest = re.sub(r"\A\s*;", "", tail, count=1)
    if isinstance(last.value, ast.Call | ast.Await):
        return code[:end] + rest
    src = code[start:end]
    if "\n" in src:
        return code[:end] + rest
    return code[:start] + f"# {src}  (its value was not shown in the notebook)" + rest


def displayed(cell: Mapping[str, Any]) -> bool:
    """Did the cell show its last value? Executed cells tell; others are assumed to.

    A rich object (a plotly figure, a widget) shows as display_data rather than as an
    execute_result, so either counts.
    """
    outputs = cell.get("outputs") or []
    if cell.get("execution_count") is None and not outputs:
        return True
    return any(o.get("output_type") in ("execute_result", "display_data") for o in outputs)


def expr_value(stmt: ast.stmt) -> ast.expr | None:
    return stmt.value if isinstance(stmt, ast.Expr) else None


def has_statement(lines: Sequence[str]) -> bool:
    return any(ln.strip() and not ln.lstrip().startswith("#") for ln in lines)


def top_level(tree: ast.Module, target: ast.AST) -> bool:
    scopes = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if node is target:
            return True
        if not isinstance(node, scopes):
            todo.extend(ast.iter_child_nodes(node))
    return False


def names_bound_anywhere(tree: ast.AST) -> set[str]:
    """Every name a cell binds in any scope (parameters, locals, comprehension targets)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            found.add(node.id)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.alias):
            found.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.add(node.name)
    return found


_TRANSFORMER: Any = None


def transform(source: str) -> str:
    """The cell as the kernel runs it (magics -> ``get_ipython()`` calls)."""
    global _TRANSFORMER
    if _TRANSFORMER is None:
        from IPython.core.inputtransformer2 import TransformerManager

        _TRANSFORMER = TransformerManager()
    return str(_TRANSFORMER.transform_cell(source))


def cell_source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def secret_slots(tree: ast.AST, fields: set[str]) -> list[tuple[str, ast.Constant]]:
    """String literals where kite_lab reads a secret setting, with its env var name.

    ``{"openai_api_key": "sk-..."}``, ``openai_api_key="sk-..."`` and
    ``x["openai_api_key"] = "sk-..."`` for each (lower-case) field of ``fields``.
    """
    found = []
    for node in ast.walk(tree):
        pairs: list[tuple[Any, Any]] = []
        if isinstance(node, ast.Dict):
            pairs = [(k.value, v) for k, v in zip(node.keys, node.values, strict=True)
                     if isinstance(k, ast.Constant)]
        elif isinstance(node, ast.Call):
            pairs = [(k.arg, k.value) for k in node.keywords]
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Constant):
                pairs = [(target.slice.value, node.value)]
        for key, value in pairs:
            if (isinstance(key, str) and key.lower() in fields and isinstance(value, ast.Constant)
                    and isinstance(value.value, str) and value.value):
                found.append((key.upper(), value))
    return found
