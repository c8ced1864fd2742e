"""Command line: ``python -m kuairec_db COMMAND``. Only this module prints for the user."""

from __future__ import annotations

import argparse
import logging
import sys

import duckdb

from kuairec_db import __version__
from kuairec_db.errors import UserError

log = logging.getLogger(__name__)


def _commands() -> list:
    # Each command module exposes register(subparsers) and sets args.func.
    from kuairec_db import commands, download, exposure, profile, report, tune

    return [
        commands.register_build,
        download.register,
        commands.register_recommend,
        commands.register_metrics,
        commands.register_demo,
        commands.register_bench,
        exposure.register,
        report.register,
        profile.register,
        tune.register,
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kuairec_db",
        description="Build KuaiRec recommendations and their fully observed evaluation "
        "into one DuckDB file, and query it.",
        epilog="Start with: python -m kuairec_db build   (then: python -m kuairec_db metrics)",
    )
    parser.add_argument("--version", action="version", version=f"kuairec_db {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in _commands():
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except duckdb.Error as exc:
        if args.debug:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: DuckDB: {first}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug of ours: one line unless --debug
        if args.debug:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: internal error: {first} (re-run with --debug for details)", file=sys.stderr)
        return 1
