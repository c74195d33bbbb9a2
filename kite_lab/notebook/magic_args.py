"""The options of ``%%kite`` and the words of ``%kite``, parsed in one importable place.

Why a module of its own: the magics, ``%%kite?`` help, and the exporter (which compiles
``%%kite`` cells into plain ``Kite`` calls) must agree on what a line means. They all call
``parse_kite_line`` and ``parse_line_command``; nothing else parses a magic line.

    %%kite [VAR <<] [target] [options]

``target`` is ``provider/model``, a bare model, an alias, or ``agent:NAME``. Every error is
an IPython ``UsageError`` (short, no traceback), never an argparse ``SystemExit``.

``plan_cell`` turns a line, a body and the magic's settings into a ``CellPlan``: what the
cell will do, decided once. The cell runner executes it (``cell.CellRunner``) and the
exporter compiles it (``export.kite_cells``), both through ``kite_lab.script``.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from IPython.core.error import UsageError
from IPython.core.magic_arguments import argument, magic_arguments

from kite_lab.notebook.settings import FORMATS, MagicSettings

__all__ = [
    "MODEL_ONLY_OPTIONS",
    "RESERVED_PARAMS",
    "model_only_given",
    "LINE_COMMANDS",
    "CellPlan",
    "KiteCellOptions",
    "KiteCommand",
    "OverOptions",
    "cell_help",
    "check_target",
    "kite_arguments",
    "parse_kite_line",
    "parse_line_command",
    "plan_cell",
    "resolve_alias",
]

#: options that configure a model call, so they make no sense with ``agent:NAME``
MODEL_ONLY_OPTIONS: tuple[str, ...] = (
    "temperature", "max_tokens", "params", "tools", "system", "no_cache", "schema", "images",
)


def model_only_given(opts: Any) -> list[str]:
    """The MODEL_ONLY_OPTIONS a cell actually set (flags true, values present)."""

    def given(value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, tuple | dict):
            return bool(value)
        return value is not None

    return [name for name in MODEL_ONLY_OPTIONS if given(getattr(opts, name))]


#: ``-m`` keys a cell decides itself (the prompt and history, the cache flag, the tools)
RESERVED_PARAMS: tuple[str, ...] = (
    "messages", "prompt", "cache", "tools", "tool_choice", "schema", "images",
)

#: ``%kite`` line commands and their one-line help (the order is the help's order)
LINE_COMMANDS: dict[str, str] = {
    "complete": "complete PROMPT        answer PROMPT; returns the text (x = %kite complete ...)",
    "list": "list                   providers, models, aliases and agents",
    "alias": "alias NAME TARGET      let NAME stand for TARGET in %%kite (no TARGET: remove)",
    "status": "status                 settings (secrets masked), breakers, backends reachable",
    "breaker": "breaker [reset|trip] [--provider P] [REASON]   show, close or open a breaker",
    "history": "history [SESSION]      a session's messages (no SESSION: the sessions)",
    "reset": "reset [SESSION]        forget a session (no SESSION: those this kernel's cells used)",
    "calls": "calls                  the LLM calls of the call log as a DataFrame",
    "cassette": "cassette PATH [--mode M] [--speed S] | off   record / replay this kernel's calls",
    "metrics": "metrics                calls, errors, tokens, cost and latency per model",
    "cost": "cost                   total cost and tokens per model",
    "export": "export PATH [--force] [--main] [--service] [--check]   this notebook as a script",
    "help": "help                   this list",
}

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CAPTURE = re.compile(r"\s*(?P<var>[A-Za-z_][A-Za-z0-9_]*)\s*<<(?P<rest>.*)\Z", re.S)

F = TypeVar("F", bound=Callable[..., Any])


def kite_arguments(func: F) -> F:
    """Apply the ``%%kite`` arguments to ``func`` (its ``__doc__`` becomes the help)."""
    decorators = [
        magic_arguments(name="%kite"),
        argument("target", nargs="?", default=None,
                 help="provider/model, a bare model, an alias, or agent:NAME "
                      "(default: KiteMagics.default_model, else the configured provider)"),
        argument("-f", "--format", choices=FORMATS, default=None, metavar="FORMAT",
                 help=f"{' | '.join(FORMATS)}: how to show the answer "
                      "(default: KiteMagics.default_format)"),
        argument("-o", "--out", metavar="VAR", default=None,
                 help="store the result in VAR (also: 'VAR <<' as the first word)"),
        argument("--stream", dest="stream", action="store_const", const=True, default=None,
                 help="show the answer as the model writes it"),
        argument("--no-stream", dest="stream", action="store_const", const=False,
                 help="show the answer when it is complete"),
        argument("--session", metavar="ID", default=None,
                 help="continue conversation ID (its history is sent, the answer stored)"),
        argument("--system", metavar="TEXT", default=None, help="system prompt"),
        argument("--temperature", type=float, default=None, help="sampling temperature"),
        argument("--max-tokens", type=int, default=None, help="answer length limit"),
        argument("-m", "--params", metavar="JSON", default=None,
                 help="other model parameters as a JSON object, e.g. '{\"top_p\": 0.9}'"),
        argument("--tools", metavar="NAMES", default=None,
                 help="a,b: tools the model may call (ai tools or notebook functions)"),
        argument("--no-cache", action="store_true", help="do not use the response cache"),
        argument("--schema", metavar="NAME", default=None,
                 help="a pydantic model / TypedDict / JSON-schema dict in the notebook (or "
                      "list[NAME]): -o stores the validated instance, -f df one column per field"),
        argument("--image", dest="images", action="append", metavar="VAR_OR_PATH", default=None,
                 help="an image sent with the prompt: a variable (path, bytes, PIL image, URL) "
                      "or a file path; repeatable"),
        argument("--over", metavar="DF", default=None,
                 help="run the body as a template over every row of DF (ai.map; -f df)"),
        argument("--budget", type=float, default=None, metavar="USD",
                 help="--over: start no row past this spend (needs --max-tokens)"),
        argument("--concurrency", type=int, default=None, help="--over: rows at a time"),
        argument("--checkpoint", metavar="PATH", default=None,
                 help="--over: SQLite path or postgresql:// URL; a rerun asks only the rest"),
        argument("--no-interpolate", action="store_true",
                 help="send {braces} literally (no {name} substitution)"),
        argument("--dry-run", action="store_true",
                 help="show the rendered prompt and settings; call nothing"),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


@kite_arguments
def _kite_cell(line: str) -> None:
    """Ask a model (or an agent) with the cell body as the prompt.

    {name}, {name.attr} and {name[key]} in the cell are replaced by notebook variables
    that exist; other braces stay as they are, and {{name}} gives a literal {name}.
    """


_PARSER = _kite_cell.parser  # type: ignore[attr-defined]
_PARSER.allow_abbrev = False  # --temp is not --temperature: the exporter reads exact names


@dataclass(frozen=True)
class OverOptions:
    """``--over DF``: the cell is ``ai.map(DF, body, ...)`` (the body a template over rows)."""

    data: str
    budget: float | None = None
    concurrency: int | None = None
    checkpoint: str | None = None


@dataclass(frozen=True)
class KiteCellOptions:
    """What one ``%%kite`` line asks for, validated."""

    target: str | None = None
    format: str | None = None
    out: str | None = None
    stream: bool | None = None
    session: str | None = None
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tools: tuple[str, ...] = ()
    no_cache: bool = False
    interpolate: bool = True
    dry_run: bool = False
    #: ``--schema NAME`` / ``list[NAME]``: a name in the user namespace
    schema: str | None = None
    #: ``--image VAR_OR_PATH`` (repeatable)
    images: tuple[str, ...] = ()
    #: ``--over DF`` and its map options
    over: OverOptions | None = None

    @property
    def agent_name(self) -> str | None:
        """``NAME`` when the target is ``agent:NAME``."""
        if self.target and self.target.startswith("agent:"):
            return self.target[len("agent:"):]
        return None

    @property
    def cache(self) -> bool | None:
        """The pipeline's ``cache=`` argument: False with --no-cache, else its default."""
        return False if self.no_cache else None

    def model_params(self) -> dict[str, Any]:
        """Generation parameters: ``-m`` JSON plus ``--temperature`` / ``--max-tokens``."""
        merged = dict(self.params)
        if self.temperature is not None:
            merged["temperature"] = self.temperature
        if self.max_tokens is not None:
            merged["max_tokens"] = self.max_tokens
        return merged


def parse_kite_line(line: str) -> KiteCellOptions:
    """Parse the text after ``%%kite``; raise ``UsageError`` on anything invalid."""
    line = line or ""
    out: str | None = None
    match = _CAPTURE.match(line)
    if match:
        out, line = match.group("var"), match.group("rest")
    try:
        argv = shlex.split(line)  # POSIX rules: quotes group words and are removed
    except ValueError as exc:  # "No closing quotation" and friends
        raise UsageError(f"%%kite: cannot split the line ({exc}); check its quotes") from None
    try:
        args = _PARSER.parse_args(argv)
    except UsageError as exc:
        raise UsageError(f"%%kite: {exc} (%%kite? lists the options)") from None
    if args.out is not None:
        if out is not None and out != args.out:
            raise UsageError(f"%%kite: two capture variables given ({out!r} and {args.out!r})")
        out = args.out
    if out is not None and (not _IDENT.match(out) or out in _KEYWORDS):
        raise UsageError(f"%%kite: -o needs a Python variable name, not {out!r}")
    target = args.target
    if target is not None:
        check_target(target)
    params = _parse_params(args.params)
    for flag, name in ((args.temperature, "temperature"), (args.max_tokens, "max_tokens")):
        if flag is not None and name in params:
            raise UsageError(f"%%kite: {name} is given twice (--{name.replace('_', '-')} and -m)")
    if args.max_tokens is not None and args.max_tokens <= 0:
        raise UsageError("%%kite: --max-tokens must be a positive number")
    if args.temperature is not None and not 0 <= args.temperature <= 2:
        raise UsageError("%%kite: --temperature must be between 0 and 2")
    if args.session is not None and not args.session.strip():
        raise UsageError("%%kite: --session needs a non-empty id")
    return KiteCellOptions(
        target=target,
        format=args.format,
        out=out,
        stream=args.stream,
        session=args.session,
        system=args.system,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        params=params,
        tools=_parse_tools(args.tools),
        no_cache=bool(args.no_cache),
        interpolate=not args.no_interpolate,
        dry_run=bool(args.dry_run),
        schema=_parse_schema(args.schema),
        images=tuple(args.images or ()),
        over=_parse_over(args),
    )


def _parse_over(args: Any) -> OverOptions | None:
    """``--over`` and the options only it takes (``--budget``, ``--concurrency``, ...)."""
    given = [f"--{n}" for n in ("budget", "concurrency", "checkpoint") if getattr(args, n)
             is not None]
    if args.over is None:
        if given:
            raise UsageError(f"%%kite: {', '.join(given)} need --over DF (a map over rows)")
        return None
    if not _IDENT.match(args.over):
        raise UsageError(f"%%kite: --over takes a variable name, not {args.over!r}")
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("%%kite: --concurrency must be >= 1")
    if args.budget is not None and not args.budget > 0:
        raise UsageError("%%kite: --budget must be > 0 (USD)")
    return OverOptions(args.over, args.budget, args.concurrency, args.checkpoint)


def check_target(target: str) -> None:
    """UsageError unless ``target`` can name a model, an alias or ``agent:NAME``."""
    if target.startswith("-"):  # argparse lets "-" through as a positional
        raise UsageError(f"%%kite: unknown option {target!r}; see %%kite? for the options")
    if target.startswith("agent:"):
        name = target[len("agent:"):]
        if not _IDENT.match(name):
            raise UsageError(f"%%kite: agent:NAME needs an agent name, not {name!r}")
    elif any(ch.isspace() for ch in target) or target.endswith("/") or target.startswith("/"):
        raise UsageError(f"%%kite: {target!r} is not a model id; use provider/model or an alias")


def _parse_params(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"%%kite: -m needs a JSON object, e.g. -m '{{\"top_p\": 0.9}}' ({exc.msg} in {raw!r})"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"%%kite: -m needs a JSON object, not {type(value).__name__}")
    return value


_SCHEMA_NAME = re.compile(r"(list\[)?[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*(?(1)\])\Z")


def _parse_schema(raw: str | None) -> str | None:
    if raw is None:
        return None
    name = raw.replace(" ", "")
    if not _SCHEMA_NAME.match(name):
        raise UsageError(f"%%kite: --schema takes a name (or list[NAME]) from the notebook, "
                         f"not {raw!r}")
    return name


def _parse_tools(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if not _IDENT.match(name):
            raise UsageError(f"%%kite: --tools takes names separated by commas, not {name!r}")
    if not names:
        raise UsageError("%%kite: --tools needs at least one tool name")
    return names


_KEYWORDS = frozenset(__import__("keyword").kwlist)


@dataclass(frozen=True)
class KiteCommand:
    """One ``%kite`` line: the command word, its shell-split words, and the raw rest."""

    name: str
    args: tuple[str, ...] = ()
    rest: str = ""


def parse_line_command(line: str) -> KiteCommand:
    """Split ``%kite WORD ...``; ``UsageError`` names the commands for an unknown word."""
    stripped = (line or "").strip()
    if not stripped:
        return KiteCommand("help")
    word, _, rest = stripped.partition(" ")
    rest = rest.strip()
    if word not in LINE_COMMANDS:
        from difflib import get_close_matches

        close = get_close_matches(word, LINE_COMMANDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UsageError(
            f"%kite: unknown command {word!r}{hint} Commands: {', '.join(LINE_COMMANDS)} "
            "(%%kite with a cell body asks a model)"
        )
    if word == "complete":  # the prompt is verbatim text, never shell-split
        if not rest:
            raise UsageError("%kite complete needs a prompt: x = %kite complete Say hi")
        return KiteCommand(word, (), rest)
    try:
        args = tuple(shlex.split(rest))
    except ValueError as exc:
        raise UsageError(f"%kite {word}: cannot split the line ({exc}); check its quotes") from None
    return KiteCommand(word, args, rest)


def cell_help() -> str:
    """The help shown by ``%%kite?`` and ``%kite help``: cell options, then line commands."""
    from kite_lab.notebook.eval_line import EVAL_HELP

    commands = "\n".join(f"  %kite {text}" for text in LINE_COMMANDS.values())
    return f"{_kite_cell.__doc__}\n\nEval cells:\n{EVAL_HELP}\n\nLine commands:\n{commands}\n"


# -- the plan of one %%kite cell ---------------------------------------------------------


def resolve_alias(target: str | None, aliases: Mapping[str, str]) -> str | None:
    """Follow aliases (``agents.resolve_alias``, the one rule); a cycle is a UsageError."""
    from kite_lab.agents.lookup import resolve_alias as follow
    from kite_lab.core.errors import InvalidInput

    try:
        return follow(target, aliases)
    except InvalidInput as exc:
        raise UsageError(f"%%kite: {exc}") from None


@dataclass(frozen=True)
class CellPlan:
    """What one ``%%kite`` cell does, decided from its line, its body and the settings.

    ``prompt`` and ``system`` are templates: ``{name}`` references are filled in where the
    cell runs (from the kernel's namespace) or compiled (into an f-string).
    """

    kind: str  # "model", "agent" (agent:NAME) or "tools" (--tools: an agent loop)
    target: str | None  # after aliases and default_model; "agent:NAME" for agents
    requested: str | None  # the target the line names, as written (None: it names none)
    asked: str | None  # where alias resolution started: ``requested``, else default_model
    prompt: str
    system: str | None
    params: dict[str, Any]  # generation parameters (-m, --temperature, --max-tokens)
    session: str | None
    tools: tuple[str, ...]
    format: str
    out: str | None
    stream: bool
    cache: bool | None  # the pipeline's cache= (False with --no-cache)
    interpolate: bool
    dry_run: bool
    max_history: int  # session messages sent (--session), or read by a tools agent
    schema: str | None = None  # --schema: a namespace name, or list[NAME]
    images: tuple[str, ...] = ()  # --image: namespace names or file paths
    over: OverOptions | None = None  # --over DF: ai.map over the rows of DF

    @property
    def agent(self) -> str | None:
        """``NAME`` of ``agent:NAME``."""
        if self.kind == "agent" and self.target is not None:
            return self.target[len("agent:"):]
        return None


def plan_cell(line: str, body: str, settings: MagicSettings) -> CellPlan:
    """Parse a ``%%kite`` cell into its ``CellPlan``; ``UsageError`` when it cannot run."""
    opts = parse_kite_line(line)
    prompt = body.strip("\n").rstrip()
    if not prompt.strip():
        raise UsageError("the %%kite cell is empty; write the prompt below the %%kite line")
    asked = opts.target or settings.default_model or None
    target = resolve_alias(asked, settings.aliases)
    params = opts.model_params()
    kind = "model"
    if target is not None and target.startswith("agent:"):
        kind = "agent"
        given = model_only_given(opts)
        if given:
            raise UsageError(
                f"%%kite: {', '.join('--' + g.replace('_', '-') for g in given)} do not apply "
                f"to {target}; set them on the agent (ai.create_agent(..., model=...))")
    elif opts.tools:
        kind = "tools"
        if params:
            raise UsageError("%%kite: --tools runs an agent loop; model parameters are not "
                             "supported with it (create an agent with ai.create_agent)")
        if opts.schema or opts.images:
            raise UsageError("%%kite: --tools runs an agent loop; --schema and --image are for "
                             "one model call (run the agent, then ai.extract(answer, Model))")
    if opts.over is not None:
        _check_over(opts, kind)
    for key in params:
        if key in RESERVED_PARAMS:
            raise UsageError(f"%%kite: -m cannot set {key!r}; it is decided by the cell")
    return CellPlan(
        kind=kind, target=target, requested=opts.target, asked=asked, prompt=prompt,
        system=opts.system, params=params, session=opts.session, tools=opts.tools,
        format=opts.format or ("df" if opts.over else settings.default_format), out=opts.out,
        stream=settings.stream if opts.stream is None else opts.stream, cache=opts.cache,
        interpolate=opts.interpolate, dry_run=opts.dry_run, max_history=settings.max_history,
        schema=opts.schema, images=opts.images, over=opts.over,
    )


def _check_over(opts: KiteCellOptions, kind: str) -> None:
    """What ``--over`` cannot be combined with (a map is many one-shot calls)."""
    clash = [flag for flag, on in (("agent:NAME", kind == "agent"), ("--tools", kind == "tools"),
                                   ("--session", opts.session), ("--image", opts.images),
                                   ("--stream", opts.stream)) if on]
    if clash:
        raise UsageError(f"%%kite: --over runs ai.map; it does not take {', '.join(clash)} "
                         "(for an agent over rows use ai.map(df, agent) in Python)")
    if opts.format not in (None, "df"):
        raise UsageError("%%kite: --over gives a DataFrame; leave out -f (or use -f df)")
