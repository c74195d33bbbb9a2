"""The notebook-to-script compiler behind ``kite-lab export``, ``%kite export`` and nbconvert.

Why compile instead of copying cells: ``nbconvert --to python`` turns ``%%kite`` into
``get_ipython().run_cell_magic(...)``, which fails in plain Python. Here every cell goes
through IPython's own input transformer (so a line means exactly what the kernel ran),
then each IPython call is replaced by plain code:

- ``%%kite`` cells become ``ai.generate`` / ``agent.run_sync`` calls with the same target,
  parameters, session and format handling (``magic_args.parse_kite_line`` reads the line;
  ``render``'s parsers and ``export_runtime`` compute the stored value);
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
from dataclasses import dataclass, field
from typing import Any

from kite_lab.core.errors import ExportError
from kite_lab.notebook.export_ast import (
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
    walk_shallow,
)
from kite_lab.notebook.export_source import (
    LIMIT,
    Names,
    comment_lines,
    from_import,
    header_gap,
    indent_code,
    is_quiet,
    isort_key,
    names_in,
    quote,
)

__all__ = ["CompiledNotebook", "MagicSettings", "compile_cells"]

# Where the generated code's helpers come from: name -> module.
_HELPERS: dict[str, str] = {name: module for module, names in {
    "kite_lab.notebook": "current",
    "kite_lab.notebook.export_runtime": "answer_text answer_code check_run session_messages "
                                        "remember_turn resolve_tool show record_answer agents_app",
    "kite_lab.notebook.render": "parse_json to_dataframe",
    "kite_lab.agents.base": "Agent",
    "kite_lab.core.runner": "run_sync",
    "kite_lab.frames": "calls_df metrics_df cost_df history_df sessions_df breakers_df",
    "os": "environ",
}.items() for name in names.split()}

#: IPython-only names (input/output history) a script does not have
_HISTORY = re.compile(r"(In|Out|_ih|_oh|_dh|_i|_ii|_iii|_i\d+|_\d+|_|__|___)\Z")
_IPYTHON_CALLS = ("run_line_magic", "run_cell_magic", "system", "getoutput")
_DISPLAY_CELLS = {"html", "markdown", "latex", "javascript", "js", "svg"}
_SHELL_CELLS = {"bash", "sh", "script", "system", "perl", "ruby", "python", "python2",
                "python3", "pypy", "cmd", "powershell"}
_BODY_CELLS = {"time", "timeit", "capture"}
_TIMEIT_OPTS = re.compile(r"\A\s*(?:-[nrp]\s*\d+\s*|-[tcqo](?:\s+|\Z))*")
_KEY_SHAPE = re.compile(r"(sk-ant-|sk-|gsk_|xai-|hf_)[A-Za-z0-9_\-]{12,}\Z")


@dataclass
class MagicSettings:
    """The ``KiteMagics`` traits that change what a ``%%kite`` cell does."""

    default_model: str = ""
    default_format: str = "markdown"
    max_history: int = 20
    aliases: dict[str, str] = field(default_factory=dict)

    def apply(self, key: str, value: Any) -> bool:
        """Set one trait (from pyproject or ``%config``); False for traits with no effect."""
        from kite_lab.notebook.magic_args import FORMATS

        if key == "aliases" and isinstance(value, dict):
            self.aliases = {str(k): str(v) for k, v in value.items()}
        elif key == "default_model" and isinstance(value, str):
            self.default_model = value
        elif key == "default_format" and value in FORMATS:
            self.default_format = value
        elif key == "max_history" and isinstance(value, int):
            self.max_history = value
        else:
            return False
        return True


@dataclass
class CompiledNotebook:
    """The script and what the compiler noticed on the way."""

    text: str
    cells: int = 0
    kite_cells: list[int] = field(default_factory=list)
    answer_cells: list[int] = field(default_factory=list)  # %%kite cells that call something
    notes: list[str] = field(default_factory=list)  # dropped lines, shell escapes, ...
    env_vars: list[str] = field(default_factory=list)  # secrets read from the environment
    cell_spans: dict[int, tuple[int, int]] = field(default_factory=dict)  # cell -> char span


class _Cell:
    """Per-cell context for error messages."""

    def __init__(self, number: int, label: str) -> None:
        self.number, self.label = number, label

    def error(self, message: str) -> ExportError:
        return ExportError(message, path=self.label, cell=self.number)


class Compiler:
    """Compiles a notebook's cells in order, keeping the state the kernel would have."""

    def __init__(self, cells: Sequence[Mapping[str, Any]], *, label: str,
                 settings: MagicSettings, main: bool = False, service: bool = False,
                 record: bool = False, secret_fields: Sequence[str] = ()) -> None:
        self.cells, self.label, self.settings = cells, label, settings
        self.main, self.service, self.record = main, service, record
        self.secret_fields = {f.lower() for f in secret_fields}
        self.indent = 4 if main else 0
        self.defined: dict[str, str] = {}  # what the notebook namespace holds so far
        self.kite_name: str | None = None  # the variable holding the magics' Kite
        self.kite_dynamic = False  # use() was called in a way we cannot follow: current()
        self.use_names: set[str] = set()  # names bound to kite_lab.notebook.use
        self.sessions_used: set[str] = set()
        self.alias_var: str | None = None
        self.imports: dict[str, str] = {}  # helper -> local name
        self.notes: list[str] = []
        self.env_vars: list[str] = []
        self.globals: set[str] = set()
        self.kite_cells: list[int] = []
        self.answer_cells: list[int] = []
        self.uses_display = False
        self.future: set[str] = set()  # from __future__ import ..., hoisted to the top
        self.names = Names(self._all_names())

    # -- names and imports ---------------------------------------------------------------
    def _all_names(self) -> set[str]:
        from kite_lab.notebook.magic_args import parse_kite_line

        found: set[str] = set()
        for cell in self.cells:
            if cell.get("cell_type") != "code":
                continue
            try:
                tree = ast.parse(transform(cell_source(cell)))
            except (SyntaxError, ValueError):
                continue
            found |= names_in(tree)
            for node in ast.walk(tree):
                if isinstance(node, ast.Global):
                    self.globals.update(node.names)
                if ipython_call(node) == "run_cell_magic" and str_args(node)[:1] == ["kite"]:
                    try:
                        out = parse_kite_line(str_args(node)[1]).out
                    except Exception:  # reported when the cell is compiled
                        out = None
                    if out:
                        found.add(out)
        return found

    def helper(self, name: str) -> str:
        if name not in self.imports:
            self.imports[name] = self.names.fresh(name)
        return self.imports[name]

    def kite(self, pre: list[str], nested: bool = False) -> str:
        """The expression for the magics' Kite; may add ``ai = current()`` to ``pre``."""
        if self.kite_name is not None and not self.kite_dynamic:
            return self.kite_name
        name = self.names.temp("ai")
        pre.append(f"{name} = {self.helper('current')}()  # the Kite the %%kite cells use")
        if not self.kite_dynamic and not nested:
            self.kite_name = name
        return name

    def alias_mapping(self, pre: list[str]) -> str:
        if self.alias_var is None:
            self.alias_var = self.names.fresh("aliases")
            body = ", ".join(f"{quote(k)}: {quote(v)}" for k, v in self.settings.aliases.items())
            pre.append(f"{self.alias_var} = {{{body}}}  # %kite alias NAME TARGET")
        return self.alias_var

    # -- the notebook ----------------------------------------------------------------
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
            by_module.setdefault(_HELPERS[name], []).append((name, local))
        if self.uses_display:
            by_module.setdefault(_HELPERS["show"], []).append(("show", "display"))
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
        ctx = _Cell(number, self.label)
        if kind == "markdown" or kind == "raw":
            return [f"# %% [{kind}] [{number}]", *comment_lines(source, self.indent)]
        if kind != "code":
            raise ctx.error(f"unknown cell type {kind!r}")
        lines = [f"# %% [{number}]"]
        if source.strip():
            lines += self._code_cell(ctx, source, display=displayed(cell))
        return lines

    def _code_cell(self, ctx: _Cell, source: str, display: bool) -> list[str]:
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

    def _parse(self, ctx: _Cell, code: str) -> ast.Module:
        try:
            tree = compile(code, f"{self.label} cell {ctx.number}", "exec",
                           flags=ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                           dont_inherit=True)
        except SyntaxError as exc:
            shown = f": {exc.text.strip()[:80]!r}" if exc.text and exc.text.strip() else ""
            raise ctx.error(f"syntax error on line {exc.lineno} ({exc.msg}){shown}") from None
        assert isinstance(tree, ast.Module)
        return tree

    def _cell_magic(self, ctx: _Cell, name: str, line: str, body: str, display: bool
                    ) -> list[str]:
        if name == "kite":
            self.kite_cells.append(ctx.number)
            from kite_lab.notebook.export_kite import kite_cell

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
    def _python(self, ctx: _Cell, code: str, tree: ast.Module, display: bool) -> list[str]:
        cell_bound = bindings(tree.body)
        self._check_names(ctx, tree, cell_bound)
        self._secrets(ctx, tree)
        edits: list[Edit] = []
        offsets = Offsets(code)
        last = tree.body[-1] if tree.body else None
        show_last = display and not is_quiet(code)
        walker = _Walker(self, ctx, code, offsets, tree, edits, show_last)
        walker.run()
        edits += self._secret_edits(tree, offsets) + self._module_level(ctx, tree, offsets)
        out = apply_edits(code, edits)
        if show_last and last is not None and not walker.last_was_magic:
            out = self._display_last(out)
        elif is_quiet(code) and not walker.last_was_magic:
            out = quiet_last(out)
        self._after_cell(tree, cell_bound)
        return out.rstrip("\n").split("\n") if out.strip() else []

    def _check_names(self, ctx: _Cell, tree: ast.Module, cell_bound: Bindings) -> None:
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

    def _secrets(self, ctx: _Cell, tree: ast.Module) -> None:
        allowed = {id(value) for _, value in secret_slots(tree, self.secret_fields)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and _KEY_SHAPE.match(node.value) and id(node) not in allowed):
                raise ctx.error("contains a string shaped like an API key; read it from the "
                                "environment (os.environ['NAME']) so it never lands in a file")

    def _module_level(self, ctx: _Cell, tree: ast.Module, offsets: Offsets) -> list[Edit]:
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


# -- line magics inside Python cells ------------------------------------------------------


class _Walker:
    """Finds IPython calls and top-level awaits in a cell and records their replacements."""

    def __init__(self, comp: Compiler, ctx: _Cell, code: str, offsets: Offsets,
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
            from kite_lab.notebook.export_kite import line_magic

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
                from kite_lab.notebook.export_kite import line_magic

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

