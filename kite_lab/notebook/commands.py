"""The ``%kite`` line commands: ``list``, ``alias``, ``status``, ``breaker``, ``history``, ...

Why they return values: a line magic is an expression, so ``df = %kite calls`` or
``x = %kite complete Say hi`` works, and the last line of a cell shows the value (a
DataFrame renders as a table). Commands that only report display Markdown and return a
plain dict, so a script can use the same data.
"""

from __future__ import annotations

import argparse
import inspect
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from IPython.core.error import UsageError
from IPython.display import Markdown, display

from kite_lab.core.errors import ConfigError, KiteError
from kite_lab.core.runner import run_sync
from kite_lab.notebook.magic_args import (
    KiteCommand,
    cell_help,
    check_target,
    parse_line_command,
    resolve_alias,
)
from kite_lab.notebook.settings import MagicsHost

__all__ = ["run_line_command"]

T = TypeVar("T")

def run_line_command(magics: MagicsHost, line: str, ns: Mapping[str, Any]) -> Any:
    command = parse_line_command(line)
    handler: Callable[[MagicsHost, KiteCommand, Mapping[str, Any]], Any] = _HANDLERS[command.name]
    return handler(magics, command, ns)


def _complete(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    from kite_lab.core.interpolate import interpolate, visible
    from kite_lab.script import answer_text

    settings = magics.magic_settings
    prompt = interpolate(cmd.rest, visible(ns, getattr(magics.shell, "user_ns_hidden", None))).text
    model = resolve_alias(settings.default_model or None, settings.aliases)
    if model is not None and model.startswith("agent:"):
        raise UsageError("%kite complete asks a model; use %%kite agent:NAME for agents")
    return answer_text(run_sync(magics.ai.agenerate(prompt, model=model)))


def _help(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> None:
    print(cell_help())


def _list(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> dict[str, Any]:
    from kite_lab.providers.registry import available_providers, provider_class

    ai, aliases = magics.ai, magics.magic_settings.aliases
    providers = {}
    for name in available_providers():
        try:
            providers[name] = provider_class(name).default_model
        except Exception as exc:  # a broken third-party entry point: say so, go on
            providers[name] = f"(unavailable: {type(exc).__name__})"
    try:
        default = "/".join(ai.resolve(magics.magic_settings.default_model or None))
    except KiteError as exc:
        default = f"(none: {exc})"
    agents = _agents(ai, ns)
    info = {"default": default, "providers": providers, "aliases": dict(aliases),
            "agents": {name: repr(agent) for name, agent in agents.items()},
            "tools": sorted(ai.tools)}
    lines = [f"**default target:** `{default}`", "", "| provider | default model |", "|---|---|"]
    lines += [f"| {p} | `{m}` |" for p, m in providers.items()]
    lines += ["", "**aliases:** " + (", ".join(f"`{a}` → `{t}`" for a, t in aliases.items())
                                     or "none")]
    lines += ["", "**agents:** " + (", ".join(f"`{a}`" for a in agents) or "none")]
    lines += ["", "**tools:** " + (", ".join(f"`{t}`" for t in info["tools"]) or "none")]
    display(Markdown("\n".join(lines)))
    return info


def _agents(ai: Any, ns: Mapping[str, Any]) -> dict[str, Any]:
    import sys

    found = dict(ai.agents)
    if "kite_lab.agents.base" in sys.modules:
        from kite_lab.agents.base import Agent

        for value in list(ns.values()):
            if isinstance(value, Agent):
                found.setdefault(value.name, value)
    return found


def _alias(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> dict[str, str]:
    if not cmd.args or len(cmd.args) > 2:
        raise UsageError("usage: %kite alias NAME TARGET (or %kite alias NAME to remove it)")
    name = cmd.args[0]
    settings = magics.magic_settings
    aliases = dict(settings.aliases)
    if len(cmd.args) == 1:
        if aliases.pop(name, None) is None:
            known = ", ".join(aliases) or "none"
            raise UsageError(f"%kite alias: no alias {name!r} (aliases: {known})")
    else:
        if "/" in name or name.startswith("agent:") or name.startswith("-"):
            raise UsageError(f"%kite alias: {name!r} cannot be an alias name; use a plain word")
        check_target(cmd.args[1])
        aliases[name] = cmd.args[1]
    settings.aliases = aliases  # reassign: traitlets notices, other code sees a new dict
    return aliases


def _status(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> dict[str, Any]:
    ai = magics.ai
    settings = ai.settings
    shown = {k: v for k, v in settings.masked().items() if v is not None}
    backends = {
        "breaker": _backend(settings, "breaker"),
        "cache": _backend(settings, "cache"),
        "idempotency": _backend(settings, "idempotency"),
        "sessions": "postgres" if settings.postgres_url else "sqlite",
    }
    reachable = {}
    for name, url in (("redis", settings.redis_url), ("postgres", settings.postgres_url)):
        if url:
            reachable[name] = _reachable(url)
    breakers = {}
    for name, breaker in _breakers(ai).items():
        breakers[name] = breaker.state.value
    info = {"settings": shown, "backends": backends, "reachable": reachable,
            "breakers": breakers}
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {k} | `{v}` |" for k, v in shown.items()]
    lines += ["", "**backends:** " + ", ".join(f"{k}={v}" for k, v in backends.items())]
    if reachable:
        lines += ["", "**reachable:** " + ", ".join(
            f"{k} {'yes' if ok else 'NO'}" for k, ok in reachable.items())]
    lines += ["", "**breakers:** " + (", ".join(f"{k}={v}" for k, v in breakers.items())
                                      or "none built yet")]
    display(Markdown("\n".join(lines)))
    return info


def _backend(settings: Any, kind: str) -> str:
    try:
        return str(settings.resolved_backend(kind))
    except ConfigError as exc:
        return f"invalid ({exc})"


def _reachable(url: str, timeout: float = 1.0) -> bool:
    parts = urlsplit(url)
    default_port = {"redis": 6379, "rediss": 6380}.get(parts.scheme, 5432)
    try:
        with socket.create_connection((parts.hostname or "localhost", parts.port or default_port),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def _breakers(ai: Any) -> dict[str, Any]:
    try:
        return ai.breakers
    except KiteError:  # no provider configured: nothing to protect yet
        return dict(ai._breakers)


def _breaker(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    parser = _Parser(prog="%kite breaker")
    parser.add_argument("action", nargs="?", choices=("status", "reset", "trip"),
                        default="status")
    parser.add_argument("--provider", default=None)
    parser.add_argument("reason", nargs="*")
    args = parser.parse_args(list(cmd.args))
    ai = magics.ai
    if args.action == "status":
        from kite_lab.frames import breakers_df

        if args.provider:
            return ai.breaker_for(args.provider).get_stats()
        return breakers_df(ai)
    breaker = ai.breaker_for(args.provider) if args.provider else ai.circuit_breaker
    if args.action == "reset":
        if args.reason:
            raise UsageError("%kite breaker reset takes no reason")
        _call(breaker.reset)
    else:
        _call(breaker.trip, " ".join(args.reason) or "tripped from %kite breaker")
    print(f"breaker {breaker.name!r}: {breaker.state.value}")
    return breaker.state.value


def _call(func: Callable[..., Any], *args: Any) -> Any:
    result = func(*args)
    return _wait(result) if inspect.isawaitable(result) else result


def _wait(awaitable: Awaitable[T]) -> T:
    """``run_sync`` for any awaitable (store methods may return futures, not coroutines)."""

    async def waiting() -> T:
        return await awaitable

    return run_sync(waiting())


def _history(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    from kite_lab.frames import history_df, sessions_df

    if len(cmd.args) > 1:
        raise UsageError("usage: %kite history [SESSION]")
    if cmd.args:
        return history_df(magics.ai, cmd.args[0])
    return sessions_df(magics.ai)


def _reset(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    """Forget one session, or those this kernel's cells used (never other users' ones)."""
    if len(cmd.args) > 1:
        raise UsageError("usage: %kite reset [SESSION]")
    ids = list(cmd.args) or sorted(magics.sessions_used)
    store = magics.ai.session_memory
    for sid in ids:
        _wait(store.adelete_session(sid))
        magics.sessions_used.discard(sid)
    print(f"forgot {len(ids)} session(s): {', '.join(ids) or 'none'}")
    return ids


def _calls(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    from kite_lab.frames import calls_df

    return calls_df(magics.ai)


def _cassette(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    """Start a cassette for this kernel's Kite (``off``: stop the latest one)."""
    ai = magics.ai
    if list(cmd.args) == ["off"]:
        try:
            cassette = ai.stop_cassette()
        except KiteError:
            raise UsageError("%kite cassette off: no cassette is running") from None
        print(f"stopped {cassette!r}")
        return cassette
    parser = _Parser(prog="%kite cassette")
    parser.add_argument("path")
    parser.add_argument("--mode", default="once", choices=("record", "replay", "once", "off"))
    parser.add_argument("--speed", type=float, default=float("inf"))
    args = parser.parse_args(list(cmd.args))
    cassette = ai.cassette(args.path, mode=args.mode, speed=args.speed).start()
    print(f"cassette {args.path} ({args.mode}): {cassette.size} recorded interaction(s); "
          "`%kite cassette off` stops it")
    return cassette


def _metrics(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    from kite_lab.frames import metrics_df

    return metrics_df(magics.ai)


def _cost(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    from kite_lab.frames import cost_df

    frame = cost_df(magics.ai)
    total = frame["cost_usd"].sum(min_count=1) if len(frame) else 0.0
    unknown = int(frame["unpriced_calls"].sum()) if len(frame) else 0
    note = f" ({unknown} call(s) of unpriced models not included)" if unknown else ""
    print(f"total: ${0.0 if total != total else total:.6f}{note}")
    return frame


def _export(magics: MagicsHost, cmd: KiteCommand, ns: Mapping[str, Any]) -> Any:
    parser = _Parser(prog="%kite export")
    parser.add_argument("path")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--main", action="store_true")
    parser.add_argument("--service", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--notebook", default=None, help="the .ipynb (default: this one)")
    args = parser.parse_args(list(cmd.args))
    try:
        from kite_lab.notebook.export import export_notebook
    except ImportError as exc:
        if exc.name not in ("kite_lab.notebook.export", None):
            raise
        raise UsageError(
            "%kite export is not available: kite_lab.notebook.export is missing from this "
            "installation (reinstall kite-lab, or run `kite-lab export NOTEBOOK -o PATH`)"
        ) from None
    notebook = args.notebook or _running_notebook(ns)
    if notebook is None:
        raise UsageError("%kite export: cannot tell which notebook this is; "
                         "pass --notebook PATH.ipynb")
    # the same call as `kite-lab export NOTEBOOK -o PATH` (kite_lab.cli)
    return export_notebook(notebook, output=args.path, force=args.force, main=args.main,
                           service=args.service, check=args.check)


def _running_notebook(ns: Mapping[str, Any]) -> str | None:
    """The path of the running notebook, as Jupyter Server or VS Code tell the kernel."""
    import os

    for candidate in (ns.get("__session__"), ns.get("__vsc_ipynb_file__"),
                      os.environ.get("JPY_SESSION_NAME")):
        if isinstance(candidate, str) and candidate.endswith(".ipynb"):
            return candidate
    return None


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of exiting the kernel."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(add_help=False, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


_HANDLERS: dict[str, Callable[..., Any]] = {
    "complete": _complete,
    "list": _list,
    "alias": _alias,
    "status": _status,
    "breaker": _breaker,
    "history": _history,
    "reset": _reset,
    "calls": _calls,
    "cassette": _cassette,
    "metrics": _metrics,
    "cost": _cost,
    "export": _export,
    "help": _help,
}
