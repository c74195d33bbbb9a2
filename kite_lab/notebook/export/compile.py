"""The notebook-to-script compiler behind ``kite-lab export``, ``%kite export`` and nbconvert.

Why compile instead of copying cells: ``nbconvert --to python`` turns ``%%kite`` into
``get_ipython().run_cell_magic(...)``, which fails in plain Python. Here every cell goes
through IPython's own input transformer (so a line means exactly what the kernel ran),
then each IPython call is replaced by plain code:

- ``%%kite`` cells become ``ai.generate`` / ``agent.run_sync`` calls with the same target,
  parameters, session and format handling (``magic_args.plan_cell`` plans the cell as for
  the magic, and the script calls the ``kite_lab.script`` helpers the cell runner calls);
- ``{var}`` interpolation becomes an f-string over the same variables; which names exist
  is decided statically (names bound by earlier cells, not modules), so braces of code,
  JSON or LaTeX stay literal, as the magic leaves them;
- other IPython syntax is compiled, dropped with a comment, or refused with an error that
  names the cell (see ``docs/export.md`` for the table and the limits).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kite_lab.core.errors import ExportError
from kite_lab.notebook.eval_line import is_eval_line
from kite_lab.notebook.export.ast_tools import (
    Bindings,
    Edit,
    Offsets,
    apply_edits,
    bindings,
    cell_source,
    displayed,
    expr_value,
    has_statement,
    ipython_call,
    names_bound_anywhere,
    quiet_last,
    secret_slots,
    str_args,
    top_level,
    transform,
)
from kite_lab.notebook.export.eval_cells import eval_cell
from kite_lab.notebook.export.kite_cells import kite_cell
from kite_lab.notebook.export.source import (
    LIMIT,
    comment_lines,
    from_import,
    header_gap,
    indent_code,
    is_quiet,
    isort_key,
    quote,
)
from kite_lab.notebook.export.state import HELPERS, CellContext, CompiledNotebook, CompileState
from kite_lab.notebook.export.walker import CellWalker
from kite_lab.notebook.settings import MagicSettings

__all__ = ["Compiler", "compile_cells"]

#: IPython-only names (input/output history) a script does not have
_HISTORY = re.compile(r"(In|Out|_ih|_oh|_dh|_i|_ii|_iii|_i\d+|_\d+|_|__|___)\Z")
_IPYTHON_CALLS = ("run_line_magic", "run_cell_magic", "system", "getoutput")
_DISPLAY_CELLS = {"html", "markdown", "latex", "javascript", "js", "svg"}
_SHELL_CELLS = {"bash", "sh", "script", "system", "perl", "ruby", "python", "python2",
                "python3", "pypy", "cmd", "powershell"}
_BODY_CELLS = {"time", "timeit", "capture"}
_TIMEIT_OPTS = re.compile(r"\A\s*(?:-[nrp]\s*\d+\s*|-[tcqo](?:\s+|\Z))*")
_KEY_SHAPE = re.compile(r"(sk-ant-|sk-|gsk_|xai-|hf_)[A-Za-z0-9_\-]{12,}\Z")


class Compiler(CompileState):
    """Compiles a notebook's cells in order, keeping the state the kernel would have."""

    def compile(self) -> CompiledNotebook:
        from kite_lab._version import __version__

        chunks: list[tuple[int, list[str]]] = []
        for number, cell in enumerate(self.cells, 1):
            chunks.append((number, self._cell(number, cell)))
        if self.service:
            pre: list[str] = []
            kite = self.kite(pre)
            tail = [*pre, f"app = {self.helper('agents_app')}({kite}, __name__)"]
            chunks.append((0, ["# %% service: `kite-lab serve --app MODULE:app` runs this",
                               *tail]))
        parts = []
        for _, lines in chunks:
            text = "\n".join(lines) + "\n"
            if self.main:
                marker, _, rest = text.partition("\n")
                text = marker + "\n" + indent_code(rest, "    ")
            parts.append(text)
        body = "\n\n".join(parts)
        if self.main:
            start = "def main() -> None:\n"
            if self.globals:
                start += f"    global {', '.join(sorted(self.globals))}\n"
            if not self.globals and not any(has_statement(lines) for _, lines in chunks):
                start += "    pass\n"
            body = start + ("\n" if body else "") + body
            body += '\n\nif __name__ == "__main__":\n    main()\n'
        head = self._header(__version__)  # after the cells: they decide the imports
        text = head + (header_gap(head, body) + body if body else "")
        spans = _cell_spans(text)
        try:
            ast.parse(text)
        except SyntaxError as exc:  # a bug here, never the user's: say where it is
            raise ExportError(f"internal error: the generated script does not parse "
                              f"(line {exc.lineno}: {exc.msg}); please report it",
                              path=self.label) from None
        return CompiledNotebook(text, len(self.cells), self.kite_cells, self.answer_cells,
                                self.notes, sorted(set(self.env_vars)), spans)

    def _header(self, version: str) -> str:
        stem = self.label.rsplit("/", 1)[-1]
        doc = [f'"""{stem}, exported as a script by kite_lab {version} (kite-lab export).', ""]
        doc.append("Each `# %% [n]` block is notebook cell n; %%kite cells are plain Kite calls.")
        if self.env_vars:
            needed = ", ".join(sorted(set(self.env_vars)))
            doc.append(f"Keys are read from the environment: {needed}.")
        if self.service:
            doc.append("Serve its agents with: kite-lab serve --app MODULE:app")
        elif self.main:
            doc.append("Run it with: python SCRIPT.py")
        doc.append('"""')
        lines = [line if len(line) <= LIMIT else line[:LIMIT - 1] for line in doc]
        if self.future:
            lines.append(f"from __future__ import {', '.join(sorted(self.future))}")
        if self._cells_import():
            rules = "I001" if self.main else "E402, I001"
            lines.append(f"# ruff: noqa: {rules} - imports stay in the cells that had them")
        imports = self._import_lines()
        text = "\n".join(lines) + "\n"
        if imports:
            text += "\n" + "\n".join(imports) + "\n"
        return text

    def _cells_import(self) -> bool:
        pattern = re.compile(r"^\s*(import|from)\s", re.M)
        return any(c.get("cell_type") == "code" and pattern.search(cell_source(c))
                   for c in self.cells)

    def _import_lines(self) -> list[str]:
        by_module: dict[str, list[tuple[str, str]]] = {}
        for name, local in self.imports.items():
            by_module.setdefault(HELPERS[name], []).append((name, local))
        if self.uses_display:
            by_module.setdefault(HELPERS["show"], []).append(("show", "display"))
        std = [m for m in by_module if m == "os"]
        ours = sorted(m for m in by_module if m != "os")
        lines: list[str] = []
        for group in (std, ours):
            if group and lines:
                lines.append("")
            for module in group:  # isort: statements ordered by their first name
                entries = by_module[module]
                plain = sorted({n for n, local in entries if n == local}, key=isort_key)
                statements = [((isort_key(name), 1, local), [f"from {module} import {name} as "
                                                             f"{local}"])
                              for name, local in entries if name != local]
                if plain:
                    statements.append(((isort_key(plain[0]), 0, ""), from_import(module, plain)))
                for _, text in sorted(statements):
                    lines.extend(text)
        return lines

    # -- cells -----------------------------------------------------------------------
    def _cell(self, number: int, cell: Mapping[str, Any]) -> list[str]:
        kind = cell.get("cell_type")
        source = cell_source(cell)
        ctx = CellContext(number, self.label)
        if kind == "markdown" or kind == "raw":
            return [f"# %% [{kind}] [{number}]", *comment_lines(source, self.indent)]
        if kind != "code":
            raise ctx.error(f"unknown cell type {kind!r}")
        lines = [f"# %% [{number}]"]
        if source.strip():
            lines += self._code_cell(ctx, source, display=displayed(cell))
        return lines

    def _code_cell(self, ctx: CellContext, source: str, display: bool) -> list[str]:
        try:
            code = transform(source)
        except (SyntaxError, ValueError) as exc:
            raise ctx.error(f"cannot read the cell: {exc}") from None
        tree = self._parse(ctx, code)
        body = tree.body
        if len(body) == 1 and ipython_call(expr_value(body[0])) == "run_cell_magic":
            call = expr_value(body[0])
            assert isinstance(call, ast.Call)
            name, line, cell_body = (str_args(call) + ["", "", ""])[:3]
            return self._cell_magic(ctx, name, line, cell_body, display)
        return self._python(ctx, code, tree, display)

    def _parse(self, ctx: CellContext, code: str) -> ast.Module:
        try:
            tree = compile(code, f"{self.label} cell {ctx.number}", "exec",
                           flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                           dont_inherit=True)
        except SyntaxError as exc:
            shown = f": {exc.text.strip()[:80]!r}" if exc.text and exc.text.strip() else ""
            raise ctx.error(f"syntax error on line {exc.lineno} ({exc.msg}){shown}") from None
        assert isinstance(tree, ast.Module)
        return tree

    def _cell_magic(self, ctx: CellContext, name: str, line: str, body: str, display: bool
                    ) -> list[str]:
        if name == "kite":
            self.kite_cells.append(ctx.number)
            if is_eval_line(line):
                return eval_cell(self, ctx, line, body)
            return kite_cell(self, ctx, line, body)
        if name in _BODY_CELLS:
            if name == "capture" and line.split():
                raise ctx.error("%%capture VAR stores the cell's output, which a script does "
                                "not capture; remove VAR (or the magic)")
            what = ("its output is shown, not captured" if name == "capture"
                    else "the body runs once, untimed")
            note = comment_lines(f"%%{name} {line}".rstrip() + f": {what}", self.indent)
            if name == "timeit":  # what follows the options is setup code, run first
                setup = _TIMEIT_OPTS.sub("", line, count=1).strip()
                body = f"{setup}\n{body}" if setup else body
            return note + (self._code_cell(ctx, body, display and name != "capture")
                           if body.strip() else [])
        if name in _DISPLAY_CELLS:
            self.notes.append(f"cell {ctx.number}: %%{name} (display only) dropped")
            return [f"# %%{name} cell dropped: it only displays its body in a notebook"]
        if name in _SHELL_CELLS:
            self.notes.append(f"cell {ctx.number}: %%{name} shell cell NOT run by the script")
            return [f"# WARNING: a %%{name} cell is not run by this script; run it yourself:",
                    *comment_lines(f"%%{name} {line}".rstrip() + "\n" + body, self.indent)]
        raise ctx.error(f"unknown cell magic %%{name}: the exporter cannot turn it into plain "
                        "Python; replace it with code")

    # -- Python cells with line magics ------------------------------------------------
    def _python(self, ctx: CellContext, code: str, tree: ast.Module, display: bool) -> list[str]:
        cell_bound = bindings(tree.body)
        self._check_names(ctx, tree, cell_bound)
        self._secrets(ctx, tree)
        edits: list[Edit] = []
        offsets = Offsets(code)
        last = tree.body[-1] if tree.body else None
        show_last = display and not is_quiet(code)
        walker = CellWalker(self, ctx, code, offsets, tree, edits, show_last)
        walker.run()
        edits += self._secret_edits(tree, offsets) + self._module_level(ctx, tree, offsets)
        out = apply_edits(code, edits)
        if show_last and last is not None and not walker.last_was_magic:
            out = self._display_last(out)
        elif is_quiet(code) and not walker.last_was_magic:
            out = quiet_last(out)
        self._after_cell(tree, cell_bound)
        return out.rstrip("\n").split("\n") if out.strip() else []

    def _check_names(self, ctx: CellContext, tree: ast.Module, cell_bound: Bindings) -> None:
        local = set(names_bound_anywhere(tree))
        magic = {id(n.func.value.func) for n in ast.walk(tree)  # type: ignore[attr-defined]
                 if ipython_call(n) in _IPYTHON_CALLS}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
                continue
            name = node.id
            if name in self.defined or name in local or id(node) in magic:
                continue
            if name == "get_ipython":
                raise ctx.error("uses get_ipython(), which only exists in IPython; "
                                "write the plain-Python equivalent")
            if _HISTORY.match(name):
                raise ctx.error(f"uses {name}, IPython's input/output history, which a script "
                                "does not have; store the value in a variable instead")
            if name == "display":
                self.uses_display = True
                self.names.taken.add("display")
        for node in ast.walk(tree):
            if isinstance(node, ast.AsyncFor | ast.AsyncWith) and top_level(tree, node):
                raise ctx.error("top-level 'async for'/'async with' needs an event loop; "
                                "move it into an async function run with run_sync()")

    def _secrets(self, ctx: CellContext, tree: ast.Module) -> None:
        allowed = {id(value) for _, value in secret_slots(tree, self.secret_fields)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and _KEY_SHAPE.match(node.value) and id(node) not in allowed):
                raise ctx.error("contains a string shaped like an API key; read it from the "
                                "environment (os.environ['NAME']) so it never lands in a file")

    def _module_level(self, ctx: CellContext, tree: ast.Module, offsets: Offsets) -> list[Edit]:
        """``from __future__`` moves to the top of the script; ``import *`` stays at the top
        level (it cannot live inside ``main()``)."""
        edits = []
        for stmt in ast.walk(tree):
            if not isinstance(stmt, ast.ImportFrom):
                continue
            if self.main and any(a.name == "*" for a in stmt.names):
                raise ctx.error(f"'from {stmt.module} import *' cannot run inside main(); "
                                "import the names you use, or export without --main")
            if stmt.module == "__future__" and stmt in tree.body:
                self.future.update(a.name for a in stmt.names)
                start, end, _ = offsets.line_span(stmt)
                edits.append(Edit(start, end, f"# {ast.unparse(stmt)}: at the top of the script"))
        return edits

    def _secret_edits(self, tree: ast.Module, offsets: Offsets) -> list[Edit]:
        edits = []
        for env, node in secret_slots(tree, self.secret_fields):
            self.env_vars.append(env)
            start, end = offsets.span(node)
            edits.append(Edit(start, end, f"{self.helper('environ')}[{quote(env)}]"))
        return edits

    def _display_last(self, code: str) -> str:
        try:
            tree = ast.parse(code)
        except SyntaxError:  # pragma: no cover - checked by the caller's caller
            return code
        last = tree.body[-1] if tree.body else None
        if not isinstance(last, ast.Expr):
            return code
        value = last.value
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                and value.func.id in ("print", "display", self.imports.get("show", "show"))):
            return code
        offsets = Offsets(code)
        start, end = offsets.span(value)
        src = code[start:end]
        if isinstance(value, ast.Tuple) and not src.startswith("("):
            src = f"({src})"
        show = self.helper("show")
        col = len(code[:start].rsplit("\n", 1)[-1])
        if "\n" not in src and self.indent + col + len(show) + len(src) + 2 <= LIMIT:
            wrapped = f"{show}({src})"
        else:
            wrapped = f"{show}(\n{indent_code(src, '    ')}\n)"
        return code[:start] + wrapped + code[end:]

    def _after_cell(self, tree: ast.Module, cell_bound: Bindings) -> None:
        """Update the namespace model: bindings, and which Kite the magics use now."""
        for name in cell_bound.deleted:
            self.defined.pop(name, None)
        self.defined.update(cell_bound.bound)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "kite_lab.notebook":
                self.use_names |= {a.asname or a.name for a in node.names if a.name == "use"}
        followed: set[int] = set()
        for stmt in tree.body:
            call = stmt.value if isinstance(stmt, ast.Assign | ast.Expr) else None
            if not self._is_use(call):
                continue
            assert isinstance(call, ast.Call)
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)):
                self.kite_name, self.kite_dynamic = stmt.targets[0].id, False
                followed.add(id(call))
            elif isinstance(stmt, ast.Expr) and len(call.args) == 1 and isinstance(
                    call.args[0], ast.Name) and not call.keywords:
                self.kite_name, self.kite_dynamic = call.args[0].id, False
                followed.add(id(call))
        for node in ast.walk(tree):
            if self._is_use(node) and id(node) not in followed:
                self.kite_dynamic = True  # use() somewhere we cannot follow
        if self.kite_name in cell_bound.bound and not any(
                isinstance(s, ast.Assign | ast.Expr) and id(s.value) in followed
                for s in tree.body):
            self.kite_dynamic = True  # the variable now holds something else

    def _is_use(self, node: ast.AST | None) -> bool:
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        if isinstance(func, ast.Name):
            return func.id in self.use_names
        return (isinstance(func, ast.Attribute) and func.attr == "use"
                and ast.unparse(func.value).endswith("notebook"))


_MARKER = re.compile(r"^# %% (?:\[\w+\] )?\[(\d+)\]", re.M)


def _cell_spans(text: str) -> dict[int, tuple[int, int]]:
    """Where each cell's block starts and ends in the script (to name the cell in errors)."""
    marks = [(int(m.group(1)), m.start()) for m in _MARKER.finditer(text)]
    ends = [start for _, start in marks[1:]] + ([len(text)] if marks else [])
    return {number: (start, end) for (number, start), end in zip(marks, ends, strict=True)}


def compile_cells(cells: Sequence[Mapping[str, Any]], *, label: str, settings: MagicSettings,
                  main: bool = False, service: bool = False, record: bool = False,
                  secret_fields: Sequence[str] = ()) -> CompiledNotebook:
    """Compile notebook cells (nbformat v4 dicts) into a script; see the module docstring."""
    return Compiler(cells, label=label, settings=settings, main=main, service=service,
                    record=record, secret_fields=secret_fields).compile()

