"""``KiteMagics``: the ``%kite`` / ``%%kite`` magics and their configuration.

Configuration is traitlets, as for every IPython component: ``%config KiteMagics.stream =
False`` in a cell, ``c.KiteMagics.default_model = "openai/gpt-4o-mini"`` in
``ipython_config.py``, or a ``[tool.kite_lab]`` section in the project's pyproject.toml:

    [tool.kite_lab]
    default_model = "local"
    show_usage = true
    [tool.kite_lab.aliases]
    fast = "groq/llama-3.1-8b-instant"

Unknown keys there get a did-you-mean warning; a value of the wrong type is an error.
State lives on the instance (one per kernel), never in class attributes.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.magic import (
    Magics,
    line_cell_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)
from traitlets import Bool, Dict, Enum, Float, Int, TraitError, Unicode

from kite_lab.core.errors import ConfigError
from kite_lab.notebook.short_errors import with_short_errors
from kite_lab.notebook.magic_args import FORMATS, cell_help

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = ["KiteMagics", "find_pyproject", "load_pyproject_config"]

#: keys of [tool.kite_lab] (the configurable traits below)
CONFIG_KEYS = ("default_model", "default_format", "stream", "show_usage", "max_history",
               "short_errors", "stream_interval", "code_next_cell", "aliases")


@magics_class
class KiteMagics(Magics):
    """Ask models and agents from cells; inspect calls, breakers, sessions and costs."""

    default_model = Unicode(
        "", help="model for %%kite cells without a target ('' : the Kite's configured model)"
    ).tag(config=True)
    default_format = Enum(
        FORMATS, default_value="markdown", help="output format when -f is not given"
    ).tag(config=True)
    stream = Bool(True, help="stream answers into the cell as the model writes").tag(config=True)
    show_usage = Bool(
        True, help="footer with provider/model, tokens, cost, latency, cached"
    ).tag(config=True)
    max_history = Int(
        20, help="session messages sent with --session ID (0: none)"
    ).tag(config=True)
    short_errors = Bool(
        True, help="errors as one line (False: full tracebacks)"
    ).tag(config=True)
    stream_interval = Float(
        0.05, help="seconds between display updates while streaming"
    ).tag(config=True)
    code_next_cell = Bool(
        True, help="-f code offers the code as the next cell where the frontend can"
    ).tag(config=True)
    aliases = Dict(
        value_trait=Unicode(), help="short names for targets (%kite alias NAME TARGET)"
    ).tag(config=True)

    def __init__(self, shell: Any = None, ai: Kite | None = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._ai = ai
        #: sessions this kernel's cells used (what a bare ``%kite reset`` forgets)
        self.sessions_used: set[str] = set()
        self._cells: Any = None  # the CellRunner, built on the first %%kite cell

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

    @line_cell_magic
    @no_var_expand
    @needs_local_scope
    @with_short_errors
    def kite(self, line: str, cell: str | None = None, local_ns: Mapping[str, Any] | None = None
             ) -> Any:
        namespace: Mapping[str, Any] = self.shell.user_ns
        if local_ns is not None and local_ns is not namespace:
            from collections import ChainMap

            namespace = ChainMap(dict(local_ns), namespace)
        if cell is None:
            from kite_lab.notebook.commands import run_line_command

            return run_line_command(self, line, namespace)
        if self._cells is None:
            from kite_lab.notebook.cell import CellRunner

            self._cells = CellRunner(self)
        return self._cells.run(line, cell, namespace)

    kite.__doc__ = cell_help()

    # -- pyproject.toml --------------------------------------------------------------
    def apply_config(self, values: Mapping[str, Any], source: str = "[tool.kite_lab]") -> None:
        """Set traits from a mapping; unknown keys warn with a did-you-mean hint."""
        for key, value in values.items():
            if key not in CONFIG_KEYS:
                import difflib

                close = difflib.get_close_matches(key, CONFIG_KEYS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                warnings.warn(
                    f"kite_lab: unknown key {key!r} in {source}{hint} "
                    f"(known: {', '.join(CONFIG_KEYS)})",
                    stacklevel=2,
                )
                continue
            try:
                setattr(self, key, value)
            except TraitError as exc:
                raise ConfigError(f"{source}: {key} = {value!r} is invalid: {exc}") from None


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml in ``start`` (default: cwd) or a parent directory."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_pyproject_config(path: Path | None = None) -> tuple[dict[str, Any], str]:
    """``([tool.kite_lab] table, description)``; empty when there is none."""
    path = path or find_pyproject()
    if path is None:
        return {}, ""
    import tomllib

    try:
        with path.open("rb") as stream:
            data = tomllib.load(stream)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"kite_lab: cannot read {path}: {exc}", file=sys.stderr)
        return {}, ""
    section = data.get("tool", {}).get("kite_lab", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.kite_lab] must be a table")
    return section, f"[tool.kite_lab] of {path}"
