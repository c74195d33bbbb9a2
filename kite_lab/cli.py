"""``kite-lab``: serve | export | logs | eval | doctor | demo.

Each subcommand imports its machinery only when run, so ``kite-lab --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _cmd_serve(args: argparse.Namespace) -> int:
    from kite_lab.service.server import serve

    return serve(app=args.app, host=args.host, port=args.port, workers=args.workers)


def _cmd_export(args: argparse.Namespace) -> int:
    from kite_lab.notebook.export import cli_export

    return cli_export(
        args.notebook,
        output=args.output,
        force=args.force,
        main=args.main,
        service=args.service,
        check=args.check,
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from kite_lab.demo import run_demo  # the plain tour when the notebook extra is missing

    return run_demo()


def _cmd_logs(args: argparse.Namespace) -> int:
    from kite_lab.log.cli import run_logs

    return run_logs(args)


def _cmd_eval(args: argparse.Namespace) -> int:
    from kite_lab.evals.spec import run_eval_cli
    from kite_lab.kite import Kite

    return run_eval_cli(args, Kite)


def _cmd_doctor(args: argparse.Namespace) -> int:
    from kite_lab.doctor import run_doctor

    return run_doctor()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kite-lab",
        description="Build, inspect and ship LLM agents: notebooks, scripts and a service.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the FastAPI service")
    serve.add_argument(
        "--app", help="module:app or module exposing agents (e.g. an exported notebook)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(func=_cmd_serve)

    export = sub.add_parser("export", help="compile a notebook prototype into a plain script")
    export.add_argument("notebook")
    export.add_argument("-o", "--output", help="output path (default: NOTEBOOK.py)")
    export.add_argument("--force", action="store_true", help="overwrite an existing output")
    export.add_argument("--main", action="store_true", help="wrap top-level work in main()")
    export.add_argument("--service", action="store_true", help="a module `kite-lab serve` runs")
    export.add_argument("--check", action="store_true", help="run the script and compare outputs")
    export.set_defaults(func=_cmd_export)

    logs = sub.add_parser("logs", help="the call log: recent calls, search, spend")
    from kite_lab.log.cli import add_arguments

    add_arguments(logs)
    logs.set_defaults(func=_cmd_logs)

    evaluate = sub.add_parser("eval", help="run an eval spec; exit 1 when a threshold fails")
    from kite_lab.evals.spec import add_arguments as add_eval_arguments

    add_eval_arguments(evaluate)
    evaluate.set_defaults(func=_cmd_eval)

    doctor = sub.add_parser("doctor", help="check settings, providers and backends")
    doctor.set_defaults(func=_cmd_doctor)

    demo = sub.add_parser("demo", help="the offline tour on the embedded defaults")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kite_lab.core.errors import KiteError

    try:
        return int(args.func(args) or 0)
    except KiteError as exc:  # a typed error already says what to do: no traceback
        print(f"kite-lab {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
