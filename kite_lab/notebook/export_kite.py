"""What each magic becomes in an exported script: ``%%kite`` cells, ``%kite`` and the rest.

Why the shapes below: each mirrors ``cell.CellRunner`` / ``commands`` step for step, so the
script stores the same value the cell stored (``-o VAR``), in the same order of effects
(call, parse, remember the session turn), and fails where the cell fails (agents that
did not succeed raise ``AgentError``). The line is read by ``magic_args``, never re-parsed.

    %%kite -o answer --temperature 0        answer = answer_text(ai.generate(
    What is {city} famous for?                  f"What is {city} famous for?", temperature=0.0))
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kite_lab.notebook.export_source import (
    LIMIT,
    call_lines,
    comment_lines,
    literal,
    quote,
    string_pieces,
)

if TYPE_CHECKING:
    from kite_lab.notebook.export_compile import Compiler, _Cell
    from kite_lab.notebook.magic_args import KiteCellOptions

__all__ = ["kite_cell", "line_magic"]

_RESERVED = ("messages", "prompt", "cache", "tools", "tool_choice")
_TEXT_FORMATS = ("markdown", "text", "html")


def _usage(ctx: _Cell, call: Any, *args: Any) -> Any:
    """Run a notebook-layer parser; its UsageError becomes an ExportError naming the cell."""
    from IPython.core.error import UsageError

    try:
        return call(*args)
    except UsageError as exc:
        raise ctx.error(str(exc)) from None


def _resolve_alias(ctx: _Cell, target: str | None, aliases: Mapping[str, str]) -> str | None:
    from kite_lab.notebook.cell import resolve_alias

    return _usage(ctx, resolve_alias, target, aliases)  # type: ignore[no-any-return]


def _target_code(comp: Compiler, wanted: str | None, resolved: str | None,
                 pre: list[str]) -> str | None:
    """``"provider/model"``, or ``aliases["fast"]`` when one alias hop led there."""
    if resolved is None:
        return None
    aliases = comp.settings.aliases
    if wanted is not None and wanted in aliases and aliases[wanted] == resolved:
        return f"{comp.alias_mapping(pre)}[{quote(wanted)}]"
    return quote(resolved)


class _Text:
    """A prompt (or system text) as Python: inline when it fits, else bound to a name."""

    def __init__(self, comp: Compiler, ctx: _Cell, text: str, *, interpolate: bool,
                 pre: list[str], base: str, defined: Mapping[str, str] | None = None,
                 expr: bool = False, indent: int = 0) -> None:
        hoist: list[str] = []
        self.pieces = string_pieces(text, interpolate=interpolate,
                                    defined=comp.defined if defined is None else defined,
                                    hoist=hoist, names=comp.names, width=LIMIT - indent - 4)
        if hoist and expr:
            raise ctx.error("a {reference} here needs quotes or backslashes the script cannot "
                            "inline; assign the value to a plain variable first")
        pre.extend(hoist)
        self.comp, self.pre, self.base, self.indent = comp, pre, base, indent
        self.var: str | None = None

    def inline(self) -> str:
        return self.pieces[0] if len(self.pieces) == 1 else "(" + " ".join(self.pieces) + ")"

    def code(self, room: int = 60) -> str:
        """Inline if one short literal (at most ``room`` characters), else a bound name."""
        if self.var is None and len(self.pieces) == 1 and len(self.pieces[0]) <= room:
            return self.pieces[0]
        return self.bind()

    def bind(self) -> str:
        if self.var is None:
            self.var = self.comp.names.temp(self.base)
            one = f"{self.var} = {self.pieces[0]}"
            if len(self.pieces) == 1 and self.indent + len(one) <= LIMIT:
                self.pre.append(one)
            else:
                self.pre += [f"{self.var} = (", *(f"    {p}" for p in self.pieces), ")"]
        return self.var


def _room(comp: Compiler, head: str, args: list[str], tail: str) -> int:
    """Characters left for the first argument of ``head(FIRST, args...)tail`` on one line."""
    rest = "".join(f", {a}" for a in args)
    return LIMIT - comp.indent - len(head) - 1 - len(rest) - 1 - len(tail)


# -- %%kite cells ----------------------------------------------------------------------


def kite_cell(comp: Compiler, ctx: _Cell, line: str, body: str) -> list[str]:
    """The statements equivalent to one ``%%kite`` cell."""
    from kite_lab.notebook.magic_args import parse_kite_line

    opts: KiteCellOptions = _usage(ctx, parse_kite_line, line)
    head = comment_lines(f"%%kite {line}".rstrip(), comp.indent)
    prompt = body.strip("\n").rstrip()
    if not prompt.strip():
        raise ctx.error("the %%kite cell is empty; write the prompt below the %%kite line")
    settings = comp.settings
    wanted = opts.target or settings.default_model or None
    target = _resolve_alias(ctx, wanted, settings.aliases)
    fmt = opts.format or settings.default_format
    agent = target[len("agent:"):] if target and target.startswith("agent:") else None
    if agent is not None:
        from kite_lab.notebook.magic_args import model_only_given

        given = model_only_given(opts)
        if given:
            raise ctx.error(
                f"{', '.join('--' + g.replace('_', '-') for g in given)} do not apply to "
                f"agent:{agent}; set them on the agent (ai.create_agent(..., model=...))")
    elif opts.tools and opts.model_params():
        raise ctx.error("--tools runs an agent loop; model parameters are not supported with "
                        "it (create an agent with ai.create_agent)")
    if opts.dry_run and opts.out:
        raise ctx.error("--dry-run with -o stores a plan only the notebook can build; remove "
                        "-o or --dry-run")
    if opts.session and agent is None and not opts.tools:
        comp.sessions_used.add(opts.session)  # the magic notes it before the dry-run check
    pre: list[str] = []
    indent = comp.indent
    prompt_code = _Text(comp, ctx, prompt, interpolate=opts.interpolate, pre=pre,
                        base="prompt", indent=indent)
    system_code = None
    if opts.system is not None:
        system_code = _Text(comp, ctx, opts.system, interpolate=opts.interpolate, pre=pre,
                            base="system", indent=indent).code(40)
    if opts.dry_run:
        shown = prompt_code.code(_room(comp, "print", [], ""))
        return [*head, "# dry run: the notebook showed this prompt and called nothing", *pre,
                f"print({shown})"]
    comp.answer_cells.append(ctx.number)
    if opts.session and (agent is not None or opts.tools):
        comp.sessions_used.add(opts.session)
    if agent is not None:
        body_lines = _agent_cell(comp, ctx, opts, agent, fmt, prompt_code, pre)
    elif opts.tools:
        body_lines = _tools_cell(comp, ctx, opts, target, wanted, fmt, prompt_code,
                                 system_code, pre)
    else:
        body_lines = _model_cell(comp, ctx, opts, target, wanted, fmt, prompt_code,
                                 system_code, pre)
    if opts.out:
        comp.defined[opts.out] = "value"
        if opts.out == comp.kite_name:
            comp.kite_dynamic = True
    return [*head, *pre, *body_lines]


def _value_of(comp: Compiler, fmt: str) -> tuple[str, str]:
    """(prefix, suffix) turning a Completion expression into what ``-o`` stores."""
    if fmt == "json":
        return f"{comp.helper('parse_json')}(", ".text)"
    if fmt == "df":
        return f"{comp.helper('to_dataframe')}({comp.helper('parse_json')}(", ".text))"
    if fmt == "code":
        return f"{comp.helper('answer_code')}(", ")"
    return f"{comp.helper('answer_text')}(", ")"


def _model_cell(comp: Compiler, ctx: _Cell, opts: KiteCellOptions, target: str | None,
                wanted: str | None, fmt: str, prompt: _Text, system: str | None,
                pre: list[str]) -> list[str]:
    kite = comp.kite(pre)
    kwargs: dict[str, str] = {}
    model = _target_code(comp, wanted, target, pre)
    if model is not None:
        kwargs["model"] = model
    if system is not None:
        kwargs["system"] = system
    for key, value in opts.model_params().items():
        if key in _RESERVED:
            raise ctx.error(f"-m cannot set {key!r}; it is decided by the cell")
        kwargs[key] = literal(value)
    if opts.no_cache:
        kwargs["cache"] = "False"
    args = _kw(kwargs)
    var = opts.out or comp.names.temp("answer")
    prefix, suffix = _value_of(comp, fmt)
    lines: list[str] = []
    if opts.session:
        prompt_var = prompt.bind()
        completion = comp.names.temp("completion")
        messages = (f"messages={comp.helper('session_messages')}({kite}, {quote(opts.session)}, "
                    f"{prompt_var}, {comp.settings.max_history})")
        lines += call_lines(f"{completion} = {kite}.generate", [messages, *args], "",
                            comp.indent)
        lines.append(f"{var} = {prefix}{completion}{suffix}")
        lines += call_lines(f"{comp.helper('remember_turn')}",
                            [kite, quote(opts.session), prompt_var, f"{completion}.text"], "",
                            comp.indent)
    else:
        head = f"{var} = {prefix}{kite}.generate"
        first = prompt.code(_room(comp, head, args, suffix))
        lines += call_lines(head, [first, *args], suffix, comp.indent)
    return lines + _finish(comp, ctx, fmt, var, var)


def _finish(comp: Compiler, ctx: _Cell, fmt: str, var: str, shown: str) -> list[str]:
    lines = []
    if comp.record:
        lines.append(f"{comp.helper('record_answer')}({ctx.number}, {quote(fmt)}, {var})")
    lines.append(f"print({shown})")
    return lines


def _kw(kwargs: Mapping[str, str]) -> list[str]:
    plain = [f"{k}={v}" for k, v in kwargs.items() if k.isidentifier()]
    odd = [f"{quote(k)}: {v}" for k, v in kwargs.items() if not k.isidentifier()]
    return plain + ([f"**{{{', '.join(odd)}}}"] if odd else [])


def _run_agent(comp: Compiler, ctx: _Cell, opts: KiteCellOptions, fmt: str, agent: str,
               prompt: _Text) -> list[str]:
    """``VAR = agent.run_sync(prompt)``, ``check_run(VAR)``, then the value and the display."""
    args = [f"session_id={quote(opts.session)}"] if opts.session else []
    parsed = fmt in ("json", "df", "code")
    result = comp.names.temp("result") if (parsed or not opts.out) else opts.out
    head = f"{result} = {agent}.run_sync"
    lines = call_lines(head, [prompt.code(_room(comp, head, args, "")), *args], "",
                       comp.indent)
    lines.append(f"{comp.helper('check_run')}({result})")
    if not parsed:
        return lines + _finish(comp, ctx, fmt, result, f"{result}.response")
    var = opts.out or comp.names.temp("answer")
    if fmt == "code":
        value = f"{comp.helper('answer_code')}({result}.response)"
    else:
        prefix, suffix = _value_of(comp, fmt)
        value = f"{prefix}{result}{suffix.replace('.text', '.response')}"
    lines.append(f"{var} = {value}")
    return lines + _finish(comp, ctx, fmt, var, var)


def _agent_cell(comp: Compiler, ctx: _Cell, opts: KiteCellOptions, name: str, fmt: str,
                prompt: _Text, pre: list[str]) -> list[str]:
    kite = comp.kite(pre)
    by_name = f"{kite}.agents[{quote(name)}]"
    if comp.defined.get(name) == "value":  # a notebook variable wins when it is an Agent
        agent_cls = comp.helper("Agent")
        chosen = comp.names.temp("agent")
        pre.append(f"{chosen} = {name} if isinstance({name}, {agent_cls}) else {by_name}")
        by_name = chosen
    return _run_agent(comp, ctx, opts, fmt, by_name, prompt)


def _tools_cell(comp: Compiler, ctx: _Cell, opts: KiteCellOptions, target: str | None,
                wanted: str | None, fmt: str, prompt: _Text, system: str | None,
                pre: list[str]) -> list[str]:
    kite = comp.kite(pre)
    resolve = comp.helper("resolve_tool")
    tools = [f"{resolve}({kite}, {quote(t)}, {t})" if comp.defined.get(t) == "value"
             else f"{resolve}({kite}, {quote(t)})" for t in opts.tools]
    listed = f"[{', '.join(tools)}]"
    if len(listed) > 50:  # one tool per line, bound to a name
        name = comp.names.temp("cell_tools")
        pre += [f"{name} = [", *(f"    {t}," for t in tools), "]"]
        listed = name
    args = [kite, '"kite-cell"', system if system is not None else '""', f"tools={listed}"]
    model = _target_code(comp, wanted, target, pre)
    if model is not None:
        args.append(f"model={model}")
    if comp.settings.max_history != 20:
        args.append(f"history_messages={comp.settings.max_history}")
    agent = comp.names.temp("cell_agent")
    pre += call_lines(f"{agent} = {comp.helper('Agent')}", args, "", comp.indent)
    return _run_agent(comp, ctx, opts, fmt, agent, prompt)


# -- line magics ---------------------------------------------------------------------------


def line_magic(comp: Compiler, ctx: _Cell, kind: str, args: list[str],
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


def _no_value(ctx: _Cell, spelled: str, expr: bool) -> list[str]:
    if expr:
        raise ctx.error(f"{spelled} has no value in a script; use it as a statement")
    return []


def _inline_code(ctx: _Cell, spelled: str, code: str, *, expr: bool, show: bool,
                 comp: Compiler) -> list[str]:
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


def _config(comp: Compiler, ctx: _Cell, line: str) -> list[str]:
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


def _env(comp: Compiler, ctx: _Cell, line: str, *, expr: bool, show: bool) -> list[str]:
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


def _kite_line(comp: Compiler, ctx: _Cell, line: str, defined: Mapping[str, str], *,
               expr: bool, show: bool, indent: int, nested: bool) -> list[str]:
    from kite_lab.notebook.magic_args import parse_line_command

    cmd = _usage(ctx, parse_line_command, line)
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
        target = _resolve_alias(ctx, comp.settings.default_model or None, comp.settings.aliases)
        if target is not None and target.startswith("agent:"):
            raise ctx.error("%kite complete asks a model; use %%kite agent:NAME for agents")
        text = _Text(comp, ctx, cmd.rest, interpolate=True, pre=pre, base="prompt",
                     defined=defined, expr=expr, indent=indent)
        args = [f"model={quote(target)}"] if target is not None else []
        helper = comp.helper("answer_text")
        if expr:
            return [f"{helper}({kite()}.generate({', '.join([text.inline(), *args])}))"]
        head = f"{helper}({kite()}.generate"
        call = call_lines(head, [text.code(_room(comp, head, args, ")") - indent), *args], ")",
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
    raise ctx.error(f"{spelled}: not supported by the exporter")  # pragma: no cover


def _alias(comp: Compiler, ctx: _Cell, args: tuple[str, ...], pre: list[str]) -> list[str]:
    from kite_lab.notebook.magic_args import _check_target

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
        _usage(ctx, _check_target, args[1])
        aliases[name] = args[1]
        line = f"{mapping}[{quote(name)}] = {quote(args[1])}"
    comp.settings.aliases = aliases
    return [*pre, line]


class _Parser(argparse.ArgumentParser):
    def __init__(self, ctx: _Cell, **kwargs: Any) -> None:
        super().__init__(add_help=False, allow_abbrev=False, **kwargs)
        self.ctx = ctx

    def error(self, message: str) -> Any:
        raise self.ctx.error(f"{self.prog}: {message}")


def _breaker(comp: Compiler, ctx: _Cell, argv: tuple[str, ...], kite: Any, value: Any,
             expr: bool, pre: list[str]) -> list[str]:
    parser = _Parser(ctx, prog="%kite breaker")
    parser.add_argument("action", nargs="?", choices=("status", "reset", "trip"),
                        default="status")
    parser.add_argument("--provider", default=None)
    parser.add_argument("reason", nargs="*")
    args = parser.parse_args(list(argv))
    if args.action == "status":
        if args.provider:
            return value(  # type: ignore[no-any-return]
                lambda: f"{kite()}.breaker_for({quote(args.provider)}).get_stats()")
        return value(lambda: f"{comp.helper('breakers_df')}({kite()})")  # type: ignore[no-any-return]
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

