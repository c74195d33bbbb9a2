"""What IPython line magics and ``%kite`` line commands become in an exported script.

Why the shapes below: ``%kite`` commands are parsed by ``magic_args.parse_line_command``
(the magic's parser) and become the ``kite_lab`` calls the commands make; other IPython
syntax is compiled (``%time``, ``%env``, ``await``), dropped with a comment (display-only
magics) or refused with an error naming the cell.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Callable, Mapping
from typing import Any

from kite_lab.notebook.export.kite_cells import PromptText, room
from kite_lab.notebook.export.source import LIMIT, call_lines, comment_lines, quote
from kite_lab.notebook.export.state import CellContext, CompileState, usage
from kite_lab.notebook.magic_args import check_target, parse_line_command, resolve_alias

__all__ = ["line_magic"]


def line_magic(comp: CompileState, ctx: CellContext, kind: str, args: list[str],
               defined: Mapping[str, str], *, expr: bool, show: bool, indent: int,
               nested: bool) -> list[str]:
    """Statements (or ``[expression]`` when ``expr``) for one IPython call in a cell."""
    if kind in ("system", "getoutput"):
        command = args[0] if args else ""
        if expr or kind == "getoutput":
            raise ctx.error(f"uses the output of the shell command !{command}; a script "
                            "cannot run it implicitly: call subprocess.run(...) instead")
        comp.notes.append(f"cell {ctx.number}: shell command NOT run: !{command}")
        return ["# WARNING: this shell command is not run by the script; run it yourself:",
                *comment_lines(f"!{command}", indent)]
    if kind != "run_line_magic" or len(args) < 1:
        raise ctx.error("uses get_ipython(), which only exists in IPython; write the "
                        "plain-Python equivalent")
    name, line = args[0], (args[1] if len(args) > 1 else "")
    if name.startswith("%"):
        raise ctx.error(f"%{name} must be the first line of its cell (cell magics apply to "
                        "the whole cell)")
    spelled = f"%{name} {line}".rstrip()
    if name == "kite":
        return _kite_line(comp, ctx, line, defined, expr=expr, show=show, indent=indent,
                          nested=nested)
    if name in ("time", "timeit"):
        code = _TIMEIT.sub("", line, count=1) if name == "timeit" else line
        return _inline_code(ctx, spelled, code, expr=expr, show=show, comp=comp)
    if name == "config":
        return _no_value(ctx, spelled, expr) or _config(comp, ctx, line)
    if name in _DROP_LINE:
        comp.notes.append(f"cell {ctx.number}: {spelled} dropped (IPython only)")
        return _no_value(ctx, spelled, expr) or [
            f"# {spelled}: IPython only, dropped"[: LIMIT - indent]]
    if name in _INSTALL:
        comp.notes.append(f"cell {ctx.number}: {spelled} not run (install it first)")
        return _no_value(ctx, spelled, expr) or [
            "# install before running this script:", *comment_lines(spelled, indent)]
    if name in _SHELL_LINE:
        return line_magic(comp, ctx, "getoutput" if expr else "system", [line], defined,
                          expr=expr, show=show, indent=indent, nested=nested)
    if name == "env":
        return _env(comp, ctx, line, expr=expr, show=show)
    raise ctx.error(f"unknown or unsupported magic %{name}: the exporter cannot turn it into "
                    "plain Python; replace it with code")


_TIMEIT = re.compile(r"\A\s*(?:-[nrp]\s*\d+\s*|-[tcqo](?:\s+|\Z))*")
_DROP_LINE = {"load_ext", "reload_ext", "unload_ext", "matplotlib", "autoreload", "aimport",
              "who", "whos", "who_ls", "lsmagic", "magic", "pinfo", "pinfo2", "pdef", "pdoc",
              "psource", "pfile", "history", "hist", "xmode", "precision", "pprint", "colors",
              "doctest_mode", "automagic", "autocall", "quickref", "page"}
_INSTALL = {"pip", "conda", "mamba", "micromamba", "uv"}
_SHELL_LINE = {"sx", "system", "sc"}
_SECRET_ENV = re.compile(r"(KEY|KEYS|TOKEN|SECRET|PASSWORD)\Z", re.I)


def _no_value(ctx: CellContext, spelled: str, expr: bool) -> list[str]:
    if expr:
        raise ctx.error(f"{spelled} has no value in a script; use it as a statement")
    return []


def _inline_code(ctx: CellContext, spelled: str, code: str, *, expr: bool, show: bool,
                 comp: CompileState) -> list[str]:
    try:
        tree = ast.parse(code, mode="eval" if expr else "exec")
    except SyntaxError as exc:
        raise ctx.error(f"{spelled}: syntax error ({exc.msg})") from None
    if expr:
        return [f"({code.strip()})"]
    body = tree.body  # type: ignore[attr-defined]
    if show and len(body) == 1 and isinstance(body[0], ast.Expr):
        return [f"{comp.helper('show')}({code.strip()})  # {spelled.split()[0]}: untimed"]
    return [f"{code.strip()}  # {spelled.split()[0]}: runs once, untimed"]


def _config(comp: CompileState, ctx: CellContext, line: str) -> list[str]:
    match = re.match(r"\s*KiteMagics\.(\w+)\s*=\s*(.+)\Z", line, re.S)
    if match is None:
        comp.notes.append(f"cell {ctx.number}: %config {line} dropped (IPython only)")
        return [f"# %config {line}: IPython only, dropped"]
    key, raw = match.groups()
    try:
        value = ast.literal_eval(raw.strip())
    except (ValueError, SyntaxError):
        raise ctx.error(f"%config KiteMagics.{key}: the exporter needs a literal value, not "
                        f"{raw.strip()!r}") from None
    applied = comp.settings.apply(key, value)
    what = "applied to the %%kite cells below" if applied else "no effect in a script"
    return comment_lines(f"%config KiteMagics.{key} = {raw.strip()}  ({what})", comp.indent)


def _env(comp: CompileState, ctx: CellContext, line: str, *, expr: bool, show: bool) -> list[str]:
    words = line.strip()
    environ = comp.helper("environ")
    match = re.match(r"(\w+)(?:\s*=\s*|\s+)(.*)\Z", words, re.S)
    if match is None:
        if re.fullmatch(r"\w+", words):
            value = f"{environ}[{quote(words)}]"
            if expr:
                return [value]
            return [f"{comp.helper('show')}({value})"] if show else []
        return _no_value(ctx, "%env", expr) or ["# %env: lists the environment; dropped"]
    name, value = match.groups()
    if expr:
        raise ctx.error("%env NAME=VALUE has no value in a script; use it as a statement")
    if _SECRET_ENV.search(name):
        comp.notes.append(f"cell {ctx.number}: %env {name}=... dropped (a secret)")
        return [f"# %env {name}=... dropped: set {name} in the environment, never in a file"]
    return [f"{environ}[{quote(name)}] = {quote(value)}"]


def _kite_line(comp: CompileState, ctx: CellContext, line: str, defined: Mapping[str, str], *,
               expr: bool, show: bool, indent: int, nested: bool) -> list[str]:
    cmd = usage(ctx, parse_line_command, line)
    spelled = f"%kite {line.strip()}"
    pre: list[str] = []

    def kite() -> str:
        if expr and (comp.kite_name is None or comp.kite_dynamic):
            return f"{comp.helper('current')}()"
        return comp.kite(pre, nested=nested)

    def value(code: Callable[[], str]) -> list[str]:
        """The command's value: an expression, shown when last, else nothing to run."""
        if expr:
            return [code()]
        if show:
            return [*pre, f"{comp.helper('show')}({code()})"]
        return [f"# {spelled}: its value is not shown here, nothing to do"[:LIMIT - indent]]

    if cmd.name == "complete":
        target = usage(ctx, resolve_alias, comp.settings.default_model or None,
                       comp.settings.aliases)
        if target is not None and target.startswith("agent:"):
            raise ctx.error("%kite complete asks a model; use %%kite agent:NAME for agents")
        text = PromptText(comp, ctx, cmd.rest, interpolate=True, pre=pre, base="prompt",
                     defined=defined, expr=expr, indent=indent)
        args = [f"model={quote(target)}"] if target is not None else []
        helper = comp.helper("answer_text")
        if expr:
            return [f"{helper}({kite()}.generate({', '.join([text.inline(), *args])}))"]
        head = f"{helper}({kite()}.generate"
        call = call_lines(head, [text.code(room(comp, head, args, ")") - indent), *args], ")",
                          indent)
        if show:
            call[0] = f"{comp.helper('show')}({call[0]}"
            call[-1] += ")"
        return [*pre, *call]
    if cmd.name in ("calls", "metrics", "cost"):
        return value(lambda: f"{comp.helper(cmd.name + '_df')}({kite()})")
    if cmd.name == "history":
        if len(cmd.args) > 1:
            raise ctx.error("usage: %kite history [SESSION]")
        if cmd.args:
            session = cmd.args[0]
            return value(lambda: f"{comp.helper('history_df')}({kite()}, {quote(session)})")
        return value(lambda: f"{comp.helper('sessions_df')}({kite()})")
    if cmd.name in ("list", "status", "help", "export"):
        comp.notes.append(f"cell {ctx.number}: {spelled} dropped (notebook display only)")
        return _no_value(ctx, spelled, expr) or [
            f"# {spelled}: shows information in the notebook only; dropped"[:LIMIT - indent]]
    if cmd.name == "alias":
        return _no_value(ctx, spelled, expr) or _alias(comp, ctx, cmd.args, pre)
    if cmd.name == "breaker":
        return _breaker(comp, ctx, cmd.args, kite, value, expr, pre)
    if cmd.name == "reset":
        _no_value(ctx, spelled, expr)
        if len(cmd.args) > 1:
            raise ctx.error("usage: %kite reset [SESSION]")
        ids = list(cmd.args) or sorted(comp.sessions_used)
        if not ids:
            return ["# %kite reset: no session to forget"]
        lines = [*pre, *(f"{kite()}.session_memory.delete_session({quote(sid)})" for sid in ids)]
        comp.sessions_used.difference_update(ids)
        return lines
    if cmd.name == "cassette":
        return _no_value(ctx, spelled, expr) or _cassette(ctx, cmd.args, kite, pre)
    raise ctx.error(f"{spelled}: not supported by the exporter")  # pragma: no cover


def _cassette(ctx: CellContext, argv: tuple[str, ...], kite: Any, pre: list[str]) -> list[str]:
    """``%kite cassette PATH [--mode M] [--speed S]`` / ``off``: the same calls on ``ai``."""
    if list(argv) == ["off"]:
        call = f"{kite()}.stop_cassette()"
        return [*pre, call]
    parser = _Parser(ctx, prog="%kite cassette")
    parser.add_argument("path")
    parser.add_argument("--mode", default="once", choices=("record", "replay", "once", "off"))
    parser.add_argument("--speed", type=float, default=None)
    args = parser.parse_args(list(argv))
    speed = "" if args.speed is None else f", speed={args.speed!r}"
    call = f"{kite()}.cassette({quote(args.path)}, mode={quote(args.mode)}{speed}).start()"
    return [*pre, call]


def _alias(comp: CompileState, ctx: CellContext, args: tuple[str, ...], pre: list[str]
           ) -> list[str]:
    if not args or len(args) > 2:
        raise ctx.error("usage: %kite alias NAME TARGET (or %kite alias NAME to remove it)")
    name = args[0]
    aliases = dict(comp.settings.aliases)
    mapping = comp.alias_mapping(pre)
    if len(args) == 1:
        if name not in aliases:
            raise ctx.error(f"%kite alias: no alias {name!r} (aliases: "
                            f"{', '.join(aliases) or 'none'})")
        del aliases[name]
        line = f"del {mapping}[{quote(name)}]"
    else:
        if "/" in name or name.startswith(("agent:", "-")):
            raise ctx.error(f"%kite alias: {name!r} cannot be an alias name; use a plain word")
        usage(ctx, check_target, args[1])
        aliases[name] = args[1]
        line = f"{mapping}[{quote(name)}] = {quote(args[1])}"
    comp.settings.aliases = aliases
    return [*pre, line]


class _Parser(argparse.ArgumentParser):
    def __init__(self, ctx: CellContext, **kwargs: Any) -> None:
        super().__init__(add_help=False, allow_abbrev=False, **kwargs)
        self.ctx = ctx

    def error(self, message: str) -> Any:
        raise self.ctx.error(f"{self.prog}: {message}")


def _breaker(comp: CompileState, ctx: CellContext, argv: tuple[str, ...], kite: Any, value: Any,
             expr: bool, pre: list[str]) -> list[str]:
    parser = _Parser(ctx, prog="%kite breaker")
    parser.add_argument("action", nargs="?", choices=("status", "reset", "trip"),
                        default="status")
    parser.add_argument("--provider", default=None)
    parser.add_argument("reason", nargs="*")
    args = parser.parse_args(list(argv))
    if args.action == "status":
        if args.provider:
            return value(lambda: f"{kite()}.breaker_for({quote(args.provider)}).get_stats()")
        return value(lambda: f"{comp.helper('breakers_df')}({kite()})")
    _no_value(ctx, f"%kite breaker {args.action}", expr)
    breaker = (f"{kite()}.breaker_for({quote(args.provider)})" if args.provider
               else f"{kite()}.circuit_breaker")
    if args.action == "reset":
        if args.reason:
            raise ctx.error("%kite breaker reset takes no reason")
        call = f"{breaker}.reset()"
    else:
        call = f"{breaker}.trip({quote(' '.join(args.reason) or 'tripped from %kite breaker')})"
    return [*pre, call, f'print("breaker", repr({breaker}.name) + ":", {breaker}.state.value)']
