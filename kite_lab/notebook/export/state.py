"""What the compiler knows while it walks a notebook: names, imports, the Kite, the cell.

Why a module of its own: the compiler (``compile``) and the code it delegates to for each
magic (``kite_cells``, ``line_magics``, ``walker``) share this state; keeping it here lets
them import it without importing each other.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kite_lab.core.errors import ExportError
from kite_lab.notebook.export.ast_tools import cell_source, ipython_call, str_args, transform
from kite_lab.notebook.export.source import Names, names_in, quote
from kite_lab.notebook.settings import MagicSettings

__all__ = ["HELPERS", "CellContext", "CompileState", "CompiledNotebook", "usage"]

# Where the generated code's helpers come from: name -> module.
HELPERS: dict[str, str] = {name: module for module, names in {
    "kite_lab.notebook": "current",
    "kite_lab.script": "answer_text answer_code check_run session_messages remember_turn "
                       "resolve_tool tools_agent show record_answer agents_app evaluate_cell",
    "kite_lab.render": "parse_json to_dataframe",
    "kite_lab.structured.values": "parsed_value",
    "kite_lab.agents.base": "Agent",
    "kite_lab.core.runner": "run_sync",
    "kite_lab.frames": "calls_df metrics_df cost_df history_df sessions_df breakers_df",
    "os": "environ",
}.items() for name in names.split()}

T = TypeVar("T")


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


class CellContext:
    """The cell being compiled, for error messages."""

    def __init__(self, number: int, label: str) -> None:
        self.number, self.label = number, label

    def error(self, message: str) -> ExportError:
        return ExportError(message, path=self.label, cell=self.number)


def usage(ctx: CellContext, call: Callable[..., T], *args: Any) -> T:
    """Run a notebook-layer parser; its UsageError becomes an ExportError naming the cell."""
    from IPython.core.error import UsageError

    try:
        return call(*args)
    except UsageError as exc:
        raise ctx.error(str(exc)) from None


class CompileState:
    """The state the kernel would have at this point of the notebook, as far as the
    generated code needs it: defined names, the Kite variable, settings, imports."""

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

    def _all_names(self) -> set[str]:
        from kite_lab.notebook.eval_line import is_eval_line, parse_eval_line
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
                if (isinstance(node, ast.Call) and ipython_call(node) == "run_cell_magic"
                        and str_args(node)[:1] == ["kite"]):
                    line = str_args(node)[1]
                    try:
                        out = (parse_eval_line(line).out if is_eval_line(line)
                               else parse_kite_line(line).out)
                    except Exception:  # reported when the cell is compiled
                        out = None
                    if out:
                        found.add(out)
        return found

    def helper(self, name: str) -> str:
        """The local name of helper ``name`` (see ``HELPERS``), imported by the header."""
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
        """The script's ``aliases`` mapping (created by the first cell that needs it)."""
        if self.alias_var is None:
            self.alias_var = self.names.fresh("aliases")
            body = ", ".join(f"{quote(k)}: {quote(v)}" for k, v in self.settings.aliases.items())
            pre.append(f"{self.alias_var} = {{{body}}}  # %kite alias NAME TARGET")
        return self.alias_var
