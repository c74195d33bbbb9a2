"""``KiteMagics``: the ``%kite`` / ``%%kite`` magics of one kernel.

Configuration is traitlets, as for every IPython component: ``%config KiteMagics.stream =
False`` in a cell, ``c.KiteMagics.default_model = "openai/gpt-4o-mini"`` in
``ipython_config.py``, or a ``[tool.kite_lab]`` section in the project's pyproject.toml.
The settings and their defaults are declared once, in ``settings.MagicSettings``, which
this class inherits. State lives on the instance (one per kernel), never in class
attributes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from IPython.core.magic import (
    Magics,
    line_cell_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)

from kite_lab.notebook.magic_args import cell_help
from kite_lab.notebook.settings import MagicSettings
from kite_lab.notebook.short_errors import with_short_errors

if TYPE_CHECKING:
    from kite_lab.kite import Kite
    from kite_lab.notebook.cell import CellRunner

__all__ = ["KiteMagics"]


@magics_class
class KiteMagics(Magics, MagicSettings):
    """Ask models and agents from cells; inspect calls, breakers, sessions and costs."""

    def __init__(self, shell: Any = None, ai: Kite | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._ai = ai
        #: sessions this kernel's cells used (what a bare ``%kite reset`` forgets)
        self.sessions_used: set[str] = set()
        self._cells: CellRunner | None = None  # built on the first %%kite cell

    @property
    def ai(self) -> Kite:
        """The Kite answering this kernel's magics (built on first use)."""
        if self._ai is None:
            from kite_lab.kite import Kite

            self._ai = Kite()
        return self._ai

    @ai.setter
    def ai(self, value: Kite) -> None:
        self._ai = value

    @property
    def magic_settings(self) -> MagicSettings:
        """The settings the cells read (the traits of this object)."""
        return self

    @line_cell_magic
    @no_var_expand
    @needs_local_scope
    @with_short_errors
    def kite(self, line: str, cell: str | None = None, local_ns: Mapping[str, Any] | None = None
             ) -> Any:
        user_ns: dict[str, Any] = self.shell.user_ns  # type: ignore[union-attr]
        namespace: Mapping[str, Any] = user_ns
        if local_ns is not None and local_ns is not user_ns:
            from collections import ChainMap

            namespace = ChainMap(dict(local_ns), user_ns)
        if cell is None:
            from kite_lab.notebook.commands import run_line_command

            return run_line_command(self, line, namespace)
        if self._cells is None:
            from kite_lab.notebook.cell import CellRunner

            self._cells = CellRunner(self)
        return self._cells.run(line, cell, namespace)

    kite.__doc__ = cell_help()
