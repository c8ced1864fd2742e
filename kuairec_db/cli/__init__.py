"""Command line: ``python -m kuairec_db COMMAND``: the parser, the options of every command
(-q, --debug, --models-dir) and the one place where every error becomes one line and an exit
code (2 for a user's mistake, 3 for a mistake in the project's own files, 130 for Ctrl-C, 1
otherwise). One module per command in this package (``register`` adds its options, ``run``
does it and prints its results to stdout); what several share is in ``common.py``; progress
and notes go to stderr through logging."""

from __future__ import annotations

import argparse
import logging
import os
import sys

import duckdb

from kuairec_db import __version__
from kuairec_db.errors import UserError
from kuairec_db.stages import LayoutError

log = logging.getLogger(__name__)


# The commands in the order --help lists them: kuairec_db/cli/NAME.py each.
COMMANDS = (
    "build",
    "download",
    "recommend",
    "metrics",
    "demo",
    "bench",
    "export",
    "exposure",
    "report",
    "profile",
    "tune",
)


def _commands() -> list:
    # Each command module exposes register(subparsers), which sets args.func.
    import importlib

    return [importlib.import_module(f"kuairec_db.cli.{name}").register for name in COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kuairec_db",
        description="Build KuaiRec recommendations and their fully observed evaluation "
        "into one DuckDB file, and query it.",
        epilog="Start with: python -m kuairec_db build   (then: python -m kuairec_db metrics)",
    )
    parser.add_argument("--version", action="version", version=f"kuairec_db {__version__}")
    _add_common(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for register in _commands():
        register(sub)
    for command in sub.choices.values():  # the same options after the command: build -q
        _add_common(command, argparse.SUPPRESS)
    return parser


def _add_common(parser: argparse.ArgumentParser, default) -> None:
    """-q, --debug and --models-dir, accepted before and after the command (after it they
    default to SUPPRESS, so they do not overwrite a value given before it)."""
    flag = {} if default is None else {"default": default}
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors, no progress", **flag
    )
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks of internal errors", **flag
    )
    parser.add_argument(
        "--models-dir",
        metavar="DIR",
        help="folder of your own models, run with the shipped ones (default: ./models when it "
        "exists; a file named like a shipped model replaces it)",
        **flag,
    )


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports the commands' modules
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    from kuairec_db import allocator, progress, resources

    allocator.keep_large_blocks()
    if args.quiet:
        progress.set_enabled(False)
    try:
        resources.set_models_dir(args.models_dir)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the try
        return code
    except BrokenPipeError:
        # The reader went away (metrics | head -2): end quietly, and keep Python's own
        # flush at exit from failing on the same closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, duckdb.InterruptException):  # Ctrl-C in Python or in a query
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
    except LayoutError as exc:  # a contributor's mistake in sql/ or models/
        print(f"error: project layout: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # a bug of ours: one line unless --debug
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if first.startswith("Query interrupted"):  # DuckDB's Ctrl-C, re-raised by a library
            print("error: interrupted", file=sys.stderr)
            return 130
        if args.debug:
            raise
        print(f"error: internal error: {first} (re-run with --debug for details)", file=sys.stderr)
        return 1
