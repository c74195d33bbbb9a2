"""Finds the IPython calls and top-level ``await`` s inside a Python cell and replaces them.

Why a module of its own: the compiler (``compile``) handles a cell as a whole; this walker
visits its statements (nested blocks too) and asks ``line_magics`` what each
``get_ipython().run_line_magic(...)`` becomes, as a statement or inside an expression.
"""

from __future__ import annotations

import ast

from kite_lab.notebook.export.ast_tools import (
    Edit,
    Offsets,
    bindings,
    expr_value,
    has_statement,
    ipython_call,
    str_args,
    walk_shallow,
)
from kite_lab.notebook.export.line_magics import line_magic
from kite_lab.notebook.export.state import CellContext, CompileState

__all__ = ["CellWalker"]


class CellWalker:
    """Finds IPython calls and top-level awaits in a cell and records their replacements."""

    def __init__(self, comp: CompileState, ctx: CellContext, code: str, offsets: Offsets,
                 tree: ast.Module, edits: list[Edit], show_last: bool) -> None:
        self.comp, self.ctx, self.code, self.offsets = comp, ctx, code, offsets
        self.tree, self.edits, self.show_last = tree, edits, show_last
        self.last_was_magic = False

    def run(self) -> None:
        body = self.tree.body
        for index, stmt in enumerate(body):
            defined = dict(self.comp.defined)
            defined.update(bindings(body[:index]).bound)
            self._statement(stmt, defined, top=True, last=index == len(body) - 1,
                            siblings=len(body), in_function=False)

    def _statement(self, stmt: ast.stmt, defined: dict[str, str], top: bool, last: bool,
                   siblings: int, in_function: bool) -> None:
        value = expr_value(stmt)
        kind = ipython_call(value) if value is not None else None
        if kind is not None:
            assert isinstance(value, ast.Call)
            start, end, indent = self.offsets.line_span(stmt)
            lines = line_magic(self.comp, self.ctx, kind, str_args(value), defined,
                               expr=False, show=last and top and self.show_last,
                               indent=len(indent) + self.comp.indent, nested=not top)
            if not has_statement(lines) and (siblings == 1 and not top):
                lines.append("pass")
            self.edits.append(Edit(start, end, "\n".join(indent + ln for ln in lines)))
            if last and top:
                self.last_was_magic = True
            return
        scope = in_function or isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef)
        for field_name in ("body", "orelse", "finalbody", "handlers", "cases"):
            block = getattr(stmt, field_name, None)
            if not isinstance(block, list):
                continue
            for child in block:
                if isinstance(child, ast.stmt):
                    self._statement(child, defined, False, False, len(block), scope)
                elif isinstance(child, ast.ExceptHandler | ast.match_case):
                    for inner in child.body:
                        self._statement(inner, defined, False, False, len(child.body), scope)
        if not isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            self._expressions(stmt, defined, in_function)

    def _expressions(self, stmt: ast.stmt, defined: dict[str, str], in_function: bool) -> None:
        for node in walk_shallow(stmt):
            kind = ipython_call(node)
            if kind is not None:
                assert isinstance(node, ast.Call)
                start, end = self.offsets.span(node)
                expr = line_magic(self.comp, self.ctx, kind, str_args(node), defined,
                                  expr=True, show=False, indent=0, nested=True)
                self.edits.append(Edit(start, end, expr[0]))
            elif isinstance(node, ast.Await) and not in_function:
                start, end = self.offsets.span(node)
                inner_start, inner_end = self.offsets.span(node.value)
                run = self.comp.helper("run_sync")
                self.edits.append(Edit(start, inner_start, f"{run}("))
                self.edits.append(Edit(inner_end, end, ")"))
