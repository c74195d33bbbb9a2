"""``{name}`` interpolation for prompts that does not break on code, JSON or LaTeX.

Why not ``str.format``: a prompt about code is full of braces (``{"a": 1}``, ``\\frac{a}{b}``,
``def f(): return {}``) and ``str.format`` raises KeyError/IndexError on every one. Here a
brace group is replaced only when it is a *reference* whose first name exists:

    {name}  {name.attr}  {name[key]}  {name[0]}  {a.b[c].d}

Everything else stays literal, byte for byte. ``{{name}}`` gives a literal ``{name}``.
``[key]`` follows ``str.format``: digits index by int, other text by string (quotes allowed).
Names bound to modules are not interpolated (``{json}`` in a prompt about JSON stays).

The exporter uses ``segments`` and ``Reference.python_expr`` to turn the same template into
explicit Python formatting, so a notebook cell and its exported script send the same text.
It lives in ``core`` because ``%%kite`` cells, the exporter and ``ai.map`` templates
(``kite_lab.batch``, which may not import the notebook) all follow these rules.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Interpolation", "Reference", "interpolate", "segments", "visible"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PATH = rf"{_NAME}(?:\.{_NAME}|\[[^\[\]{{}}\n]+\])*"
_TOKEN = re.compile(rf"\{{\{{(?P<escaped>{_PATH})\}}\}}|\{{(?P<ref>{_PATH})\}}")
_STEP = re.compile(rf"\.(?P<attr>{_NAME})|\[(?P<key>[^\[\]]+)\]")
_INT = re.compile(r"-?\d+\Z")


@dataclass(frozen=True)
class Reference:
    """One ``{...}`` reference: the root name and the attribute/item steps after it."""

    source: str  # the text between the braces, e.g. "row['title']"
    name: str
    steps: tuple[tuple[str, str | int], ...] = ()  # ("attr", "x") or ("item", key)

    @classmethod
    def parse(cls, source: str) -> Reference:
        head = re.match(_NAME, source)
        assert head is not None  # guaranteed by _TOKEN
        steps: list[tuple[str, str | int]] = []
        for match in _STEP.finditer(source, head.end()):
            if match.group("attr") is not None:
                steps.append(("attr", match.group("attr")))
            else:
                steps.append(("item", _item_key(match.group("key"))))
        return cls(source, head.group(0), tuple(steps))

    def resolve(self, namespace: Mapping[str, Any]) -> Any:
        """The value; raises LookupError/AttributeError/TypeError when a step fails."""
        value = namespace[self.name]
        for kind, key in self.steps:
            value = getattr(value, key) if kind == "attr" else value[key]  # type: ignore[arg-type]
        return value

    def python_expr(self) -> str:
        """The same lookup as Python source: ``row['title']``, ``obj.attr``, ``items[0]``."""
        parts = [self.name]
        for kind, key in self.steps:
            parts.append(f".{key}" if kind == "attr" else f"[{key!r}]")
        return "".join(parts)


def _item_key(raw: str) -> str | int:
    raw = raw.strip()
    if _INT.match(raw):
        return int(raw)
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def segments(text: str) -> list[str | Reference]:
    """``text`` split into literal strings and References (escapes already undone).

    A Reference is replaced at run time only if its name exists; the exporter decides
    the same from the names the notebook defines.
    """
    out: list[str | Reference] = []
    pos = 0
    for match in _TOKEN.finditer(text):
        literal = text[pos:match.start()]
        if match.group("escaped") is not None:
            literal += "{" + match.group("escaped") + "}"
            _append(out, literal)
        else:
            _append(out, literal)
            out.append(Reference.parse(match.group("ref")))
        pos = match.end()
    _append(out, text[pos:])
    return out


def _append(out: list[str | Reference], literal: str) -> None:
    if not literal:
        return
    if out and isinstance(out[-1], str):
        out[-1] += literal
    else:
        out.append(literal)


@dataclass
class Interpolation:
    """The rendered text and what happened to each reference."""

    text: str
    used: dict[str, Any] = field(default_factory=dict)  # source -> value inserted
    #: references whose name exists but whose lookup failed: (source, reason); left literal
    skipped: list[tuple[str, str]] = field(default_factory=list)


def interpolate(text: str, namespace: Mapping[str, Any]) -> Interpolation:
    """Replace references whose name is in ``namespace``; never raises on the text."""
    parts: list[str] = []
    result = Interpolation(text="")
    for piece in segments(text):
        if isinstance(piece, str):
            parts.append(piece)
            continue
        if piece.name not in namespace or isinstance(namespace[piece.name], types.ModuleType):
            parts.append("{" + piece.source + "}")
            continue
        try:
            value = piece.resolve(namespace)
            rendered = str(value)
        except Exception as exc:  # a failed lookup leaves the braces as written
            parts.append("{" + piece.source + "}")
            result.skipped.append((piece.source, _reason(exc)))
            continue
        result.used[piece.source] = value
        parts.append(rendered)
    result.text = "".join(parts)
    return result


def _reason(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no key {exc.args[0]!r}" if exc.args else "key not found"
    if isinstance(exc, IndexError):
        return "index out of range"
    return f"{type(exc).__name__}: {exc}"[:120]


def visible(ns: Mapping[str, Any], hidden: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """``ns`` without IPython's own names (``In``, ``Out``, ``exit`` ...: ``user_ns_hidden``),
    so ``{In}`` in a prompt stays literal; a live view, nothing is copied."""
    if not hidden:
        return ns
    return _Without(ns, hidden)


class _Without(Mapping[str, Any]):
    def __init__(self, ns: Mapping[str, Any], hidden: Mapping[str, Any]) -> None:
        self._ns, self._hidden = ns, hidden

    def _shown(self, key: str) -> bool:
        return key in self._ns and not (key in self._hidden and self._ns[key] is self._hidden[key])

    def __getitem__(self, key: str) -> Any:
        if not self._shown(key):
            raise KeyError(key)
        return self._ns[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._shown(key)

    def __iter__(self) -> Iterator[str]:
        return (k for k in self._ns if self._shown(k))

    def __len__(self) -> int:
        return sum(1 for _ in self)
