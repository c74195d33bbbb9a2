"""The ``%%kite`` magic's settings, declared once: traits, their defaults, pyproject loading.

Why one declaration: the magics (``%config KiteMagics.x = ...``, ``ipython_config.py``),
the ``[tool.kite_lab]`` section of pyproject.toml, the cell plan and the exporter (which
must compile a cell with the settings the notebook ran with) all read these traits.
``KiteMagics`` inherits them; the exporter instantiates ``MagicSettings`` on its own, so
neither copies a default or a key list.

    [tool.kite_lab]
    default_model = "local"
    show_usage = true
    [tool.kite_lab.aliases]
    fast = "groq/llama-3.1-8b-instant"

Unknown keys there get a did-you-mean warning; a value of the wrong type is an error.
Plain traitlets (no IPython import), so reading settings stays cheap.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from traitlets import Bool, Dict, Enum, Float, HasTraits, Int, TraitError, TraitType, Unicode

from kite_lab.core.errors import ConfigError

if TYPE_CHECKING:
    from kite_lab.kite import Kite

__all__ = [
    "CONFIG_KEYS",
    "FORMATS",
    "SCRIPT_KEYS",
    "MagicSettings",
    "MagicsHost",
    "find_pyproject",
    "load_pyproject_config",
]

#: what ``-f`` accepts (and ``default_format``)
FORMATS: tuple[str, ...] = ("markdown", "text", "code", "json", "html", "df")


class MagicSettings(HasTraits):
    """The configurable settings of the ``%%kite`` magic (``KiteMagics`` inherits them)."""

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

    @classmethod
    def default(cls, key: str) -> Any:
        """The declared default of setting ``key``."""
        return cls.class_traits()[key].default()

    def apply_config(self, values: Mapping[str, Any], source: str = "[tool.kite_lab]") -> None:
        """Set settings from a mapping; unknown keys warn with a did-you-mean hint."""
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

    def apply(self, key: str, value: Any) -> bool:
        """Set one setting that changes what a ``%%kite`` cell computes (``SCRIPT_KEYS``).

        The exporter's rule for ``%config`` lines and pyproject values: False (nothing set)
        for settings that only change the display, and for values of the wrong type.
        """
        if key not in SCRIPT_KEYS:
            return False
        if key == "aliases" and isinstance(value, dict):
            value = {str(k): str(v) for k, v in value.items()}
        try:
            setattr(self, key, value)
        except TraitError:
            return False
        return True


#: keys of ``[tool.kite_lab]``: every setting, in declaration order
CONFIG_KEYS: tuple[str, ...] = tuple(
    name for name, value in vars(MagicSettings).items() if isinstance(value, TraitType)
)
#: the settings that change what a cell computes (the others only change the display)
SCRIPT_KEYS: tuple[str, ...] = ("default_model", "default_format", "max_history", "aliases")


class MagicsHost(Protocol):
    """What the cell runner and the line commands use of ``KiteMagics``.

    A Protocol, so ``cell`` and ``commands`` need not import the magics module (which
    imports them): the magics pass themselves.
    """

    sessions_used: set[str]

    @property
    def ai(self) -> Kite: ...

    @property
    def shell(self) -> Any: ...

    @property
    def magic_settings(self) -> MagicSettings: ...


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
