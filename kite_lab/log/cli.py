"""``kite-lab logs``: the call log from a shell, as a table, JSON lines or spend sums.

    kite-lab logs                      # the newest 20 calls
    kite-lab logs -n 5 --json          # one JSON object per call
    kite-lab logs --search invoice --model gpt-4o-mini --since 1h
    kite-lab logs --cost --by model    # spend per model (replayed calls cost nothing)

Why it reads the settings like a Kite does (env, ``.env``): the same KITE_CALL_LOG,
KITE_HOME and POSTGRES_URL find the same log the notebooks and services write.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import IO, Any

from .record import LogQuery, parse_time

__all__ = ["add_arguments", "run_logs"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--limit", type=int, default=20, help="newest N rows (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--search", metavar="TEXT", help="text in prompts, answers, names")
    parser.add_argument("--model", metavar="M", help="only this model")
    parser.add_argument("--since", metavar="AGE", help="e.g. 30m, 1h, 2d or an ISO date")
    parser.add_argument("--all", action="store_true",
                        help="agent runs, tool calls and map rows too (default: LLM calls)")
    parser.add_argument("--cost", action="store_true", help="sum tokens and spend")
    parser.add_argument("--by", choices=("model", "provider", "day", "run", "kind"),
                        help="with --cost: one line per model / provider / day / run")


def run_logs(args: argparse.Namespace, out: IO[str] | None = None) -> int:
    from kite_lab.core.config import load_settings
    from kite_lab.core.errors import ConfigError, InvalidInput

    from .build import LOG_FILE, open_store

    out = out or sys.stdout
    if args.limit is not None and args.limit < 1:
        raise InvalidInput("-n must be at least 1")
    since = parse_time(args.since)
    settings = load_settings()
    if settings.kite_call_log == "sqlite":
        path = settings.kite_home.expanduser().absolute() / LOG_FILE
        if not path.exists():
            print(f"no call log at {path} yet: nothing was logged there (is KITE_HOME right?)",
                  file=sys.stderr)
            return 1
    store = open_store(settings)
    if store is None:
        raise ConfigError("the call log is off (KITE_CALL_LOG=none); set it to sqlite or "
                          "postgres to keep a log")
    query = LogQuery(since=since, model=args.model, search=args.search,
                     kind=None if args.all else "llm")
    if args.cost or args.by:
        return _cost(store, query, args.by or None, args.json, out)
    query.limit, query.newest_first = args.limit, True
    records = list(reversed(store.records(query)))
    if args.json:
        for record in records:
            out.write(json.dumps(record.to_dict(), ensure_ascii=False, default=str) + "\n")
        return 0
    if not records:
        print("no calls match", file=out)
        return 0
    out.write(_table(["time (UTC)", "kind", "model", "tokens", "cost $", "ms", "status", "text"],
                     [_row(r.to_dict()) for r in records]))
    return 0


def _row(r: dict[str, Any]) -> list[str]:
    tokens = ""
    if r["prompt_tokens"] is not None or r["completion_tokens"] is not None:
        tokens = f"{r['prompt_tokens'] or 0}+{r['completion_tokens'] or 0}"
    status = "ERROR " + str(r["error"]) if r["error"] else (
        "cached" if r["cached"] else "replayed" if r["replayed"] else "ok")
    text = r["answer"] or r["error_message"] or r["name"] or ""
    text = " ".join(str(text).split())
    return [time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["ts"])), r["kind"],
            str(r["model"] or r["name"] or ""), tokens,
            "" if r["cost_usd"] is None else f"{r['cost_usd']:.6f}",
            "" if r["latency_s"] is None else f"{r['latency_s'] * 1000:.0f}",
            status, text[:60] + ("…" if len(text) > 60 else "")]


def _cost(store: Any, query: LogQuery, by: str | None, as_json: bool, out: IO[str]) -> int:
    rows = store.cost_by(by or "kind", query)
    if by is None:  # one total line
        rows = [("total", sum(r[1] for r in rows), sum(r[2] for r in rows),
                 sum(r[3] for r in rows),
                 None if all(r[4] is None for r in rows) else sum(r[4] or 0.0 for r in rows))]
    if as_json:
        for group, calls, prompt, completion, cost in rows:
            out.write(json.dumps({by or "group": group, "calls": calls, "prompt_tokens": prompt,
                                  "completion_tokens": completion, "cost_usd": cost}) + "\n")
        return 0
    lines = [[str(g), str(n), str(p), str(c), "unpriced" if cost is None else f"{cost:.6f}"]
             for g, n, p, c, cost in rows]
    out.write(_table([by or "", "calls", "prompt tokens", "completion tokens", "cost $"], lines))
    return 0


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines) + "\n"
