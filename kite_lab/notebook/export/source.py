"""Python source building blocks for the exporter: string literals, calls, names, indentation.

Why a module of its own: the compiler (``export.compile``) decides *what* a cell becomes;
this module makes sure the text it emits is valid on Python 3.11 (no backslashes or reused
quotes inside f-string expressions), fits the project's 100-column ruff limit, never
re-indents the inside of a multi-line string, and never collides with a notebook name.
"""

from __future__ import annotations

import ast
import io
import keyword
import math
import textwrap
import tokenize
from collections.abc import Iterable, Mapping
from typing import Any

from kite_lab.core.interpolate import Reference, segments

__all__ = ["LIMIT", "Names", "call_lines", "comment_lines", "from_import", "header_gap",
           "indent_code", "is_quiet", "isort_key", "literal", "names_in", "quote",
           "string_pieces"]

LIMIT = 100  # the project's ruff line-length


class Names:
    """Picks names the notebook never uses, so generated names cannot shadow user ones."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self.taken = set(taken) | set(keyword.kwlist) | {"print", "isinstance"}
        self._temps: dict[str, str] = {}

    def fresh(self, base: str) -> str:
        name, n = base, 1
        while name in self.taken:
            n += 1
            name = f"{base}_{n}"
        self.taken.add(name)
        return name

    def temp(self, base: str) -> str:
        """One reusable scratch name per ``base`` (e.g. every cell's ``prompt``)."""
        if base not in self._temps:
            self._temps[base] = self.fresh(base)
        return self._temps[base]


def literal(value: Any) -> str:
    """Python source for a JSON-like value (``-m`` params): repr, but NaN/inf spelled out."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, str):
        return quote(value)
    return repr(value)


# -- string literals -------------------------------------------------------------------

_Piece = tuple[str, str]  # ("lit", text) or ("ref", python expression)


def string_pieces(text: str, *, interpolate: bool, defined: Mapping[str, str],
                  hoist: list[str], names: Names, width: int) -> list[str]:
    """``text`` (a prompt) as implicitly concatenated literals, one per output line.

    With ``interpolate``, ``{ref}`` whose name the notebook defines at this point (as a
    value, not a module) becomes an f-string field; every other brace stays literal, like
    ``interpolate.interpolate`` at run time. A field that cannot sit in a 3.11 f-string is
    assigned to a fresh name first (appended to ``hoist``).
    """
    items: list[_Piece] = []
    if interpolate:
        for seg in segments(text):
            if isinstance(seg, Reference) and defined.get(seg.name) == "value":
                expr = seg.python_expr()
                if "\\" in expr or ("'" in expr and '"' in expr):
                    var = names.fresh("value")
                    hoist.append(f"{var} = {expr}")
                    expr = var
                items.append(("ref", expr))
            else:
                items.append(("lit", seg if isinstance(seg, str) else "{" + seg.source + "}"))
    else:
        items.append(("lit", text))
    lines = _layout(_atoms(items), max(width, 20))
    return [_render(line) for line in lines] or ['""']


def _atoms(items: list[_Piece]) -> list[_Piece]:
    atoms: list[_Piece] = []
    for kind, text in items:
        if kind == "ref":
            atoms.append((kind, text))
            continue
        atoms.extend(("lit", part) for part in text.splitlines(keepends=True) if part)
    return atoms


def _layout(atoms: list[_Piece], width: int) -> list[list[_Piece]]:
    lines: list[list[_Piece]] = []
    line: list[_Piece] = []
    for atom in atoms:
        for part in _split_long(atom, width):
            if line and _size([*line, part]) > width:
                lines.append(line)
                line = []
            line.append(part)
            if part[0] == "lit" and part[1].endswith(("\n", "\r")):
                lines.append(line)
                line = []
    if line:
        lines.append(line)
    return lines


def _split_long(atom: _Piece, width: int) -> list[_Piece]:
    kind, text = atom
    if kind == "ref" or _size([atom]) <= width:
        return [atom]
    out: list[_Piece] = []
    rest = text
    budget = max(10, width - 10)
    while _size([("lit", rest)]) > width:
        cut = rest.rfind(" ", 0, budget)
        cut = cut + 1 if cut > 0 else budget  # keep the space at the end of a piece
        out.append(("lit", rest[:cut]))
        rest = rest[cut:]
    if rest:
        out.append(("lit", rest))
    return out


def _size(line: list[_Piece]) -> int:
    return len(_render(line))


def _render(line: list[_Piece]) -> str:
    exprs = [text for kind, text in line if kind == "ref"]
    body = "".join(text for kind, text in line if kind == "lit")
    if any('"' in e for e in exprs):
        quote = "'"
    elif '"' in body and "'" not in body and not any("'" in e for e in exprs):
        quote = "'"
    else:
        quote = '"'
    parts = []
    for kind, text in line:
        if kind == "ref":
            parts.append("{" + text + "}")
        else:
            escaped = _escape(text, quote)
            parts.append(escaped.replace("{", "{{").replace("}", "}}") if exprs else escaped)
    return ("f" if exprs else "") + quote + "".join(parts) + quote


_SIMPLE_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(text: str, quote: str) -> str:
    out = []
    for ch in text:
        if ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif ch == quote:
            out.append("\\" + ch)
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def quote(text: str) -> str:
    """A one-line string literal, double-quoted unless single quotes read better."""
    return _render([("lit", text)])


# -- statements --------------------------------------------------------------------------


def call_lines(head: str, args: list[str], tail: str = "", indent: int = 0) -> list[str]:
    """``head(arg, ...)tail`` on one line, or one argument per line when it is too long."""
    one = f"{head}({', '.join(args)}){tail}"
    if indent + len(one) <= LIMIT or not args:
        return [one]
    return [f"{head}(", *(f"    {a}," for a in args), f"){tail}"]


def comment_lines(text: str, indent: int = 0) -> list[str]:
    """``text`` as ``#`` comment lines that fit the line limit (no trailing spaces)."""
    out: list[str] = []
    width = LIMIT - indent - 2
    for raw in text.splitlines() or [""]:
        line = raw.rstrip().expandtabs(4)
        if not line:
            out.append("#")
        elif len(line) <= width:
            out.append("# " + line)
        else:
            lead = line[: len(line) - len(line.lstrip())]
            wrapped = textwrap.wrap(line, width=width, subsequent_indent=lead,
                                    break_long_words=False, break_on_hyphens=False)
            out.extend("# " + w.rstrip() for w in wrapped)
    return out


def indent_code(code: str, prefix: str) -> str:
    """Indent every line of ``code`` except lines inside a multi-line string literal."""
    lines = code.splitlines(keepends=True)
    inside: set[int] = set()  # 1-based line numbers that continue a string token
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover - code was parsed before
        pass
    return "".join(
        line if (n in inside or not line.strip()) else prefix + line
        for n, line in enumerate(lines, 1)
    )


def is_quiet(code: str) -> bool:
    """IPython's rule: a cell whose last token is ``;`` does not display its value."""
    last = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.COMMENT,
                                tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
                last = tok
    except (tokenize.TokenError, SyntaxError):  # pragma: no cover
        return False
    return last is not None and last.type == tokenize.OP and last.string == ";"


def names_in(tree: ast.AST) -> set[str]:
    """Every identifier a piece of code binds or reads (for ``Names``)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.alias):
            found.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.Global | ast.Nonlocal):
            found.update(node.names)
    return found


def isort_key(name: str) -> tuple[int, str]:
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def from_import(module: str, names: list[str]) -> list[str]:
    one = f"from {module} import {', '.join(names)}"
    if len(one) <= LIMIT:
        return [one]
    return [f"from {module} import (", *(f"    {n}," for n in names), ")"]


def header_gap(head: str, body: str) -> str:
    """Blank lines after the header: isort wants one before code, two before a def/class."""
    if "\nfrom " in head:  # the header ends with the helpers' imports
        first = next((ln for ln in body.splitlines() if ln.strip() and not ln.startswith("#")),
                     "")
        if first.startswith(("def ", "class ", "@", "async def ")):
            return "\n\n"
    return "\n"
