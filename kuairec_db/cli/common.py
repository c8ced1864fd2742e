"""What the commands share, written once: --db, --threads and --memory-limit (declared with the
build's parameters, kuairec_db/params.py), --format, the list parsers, the help formatter and
opening a built database read-only."""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb

from kuairec_db import output, validate
from kuairec_db.errors import UserError
from kuairec_db.params import BY_NAME, DEFAULT_DB, RESOURCE_OPTIONS, Parameter, int_list, name_list

__all__ = [
    "DEFAULT_DB",
    "RAW",
    "add_db",
    "add_format",
    "add_parameter",
    "add_resources",
    "connect_read_only",
    "float_list",
    "int_list",
    "name_list",
]

add_format = output.add_format


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _opt_in() -> str:
    """but the opt-in A and B: the models whose file says they do not run by default."""
    from kuairec_db import runner

    names = [name for name, model in runner.discover().items() if not model.runs_by_default]
    return f" but the opt-in {_and(names)}" if names else ""


def _hungry() -> str:
    """, and 3GB while a model that asks for it runs: A, B: the models' own memory limits."""
    from kuairec_db import runner

    limits = {name: m.memory_limit for name, m in runner.discover().items() if m.memory_limit}
    if not limits:
        return ""
    if len(set(limits.values())) == 1:
        return (
            f", and {next(iter(limits.values()))} while a model that asks for it runs: "
            + ", ".join(limits)
        )
    return ", and more while a model that asks for it runs: " + ", ".join(
        f"{name} {limit}" for name, limit in limits.items()
    )


# Facts of the models that help texts name ({opt_in} in a help); filled in only when a help is
# shown, since finding them loads the models' modules.
MODEL_FACTS = {"opt_in": _opt_in, "hungry": _hungry}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's and epilog's line breaks; fills in MODEL_FACTS while showing a
    help (not when argparse merely checks a help string)."""

    def format_help(self) -> str:
        self._showing = True
        return super().format_help()

    def _expand_help(self, action: argparse.Action) -> str:
        text = super()._expand_help(action)
        if not getattr(self, "_showing", False):
            return text
        for key, fill in MODEL_FACTS.items():
            if "{" + key + "}" in text:
                try:
                    value = fill()
                except Exception:  # a broken model file: its own command says what is wrong
                    value = ""
                text = text.replace("{" + key + "}", value)
        return text


RAW = HelpFormatter


def add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"database file (default: ./{DEFAULT_DB})"
    )


def add_parameter(parser: argparse.ArgumentParser, parameter: Parameter) -> None:
    """The option of a build parameter, as its declaration says."""
    kwargs: dict = {"dest": parameter.name, "help": parameter.help_text()}
    if parameter.action == "store_true":
        kwargs["action"] = "store_true"
    else:
        if parameter.metavar:
            kwargs["metavar"] = parameter.metavar
        if parameter.choices:
            kwargs["choices"] = parameter.choices
        parse = parameter.parse or (parameter.check.type if parameter.check else None)
        if parse is not None:
            kwargs["type"] = parse
        if parameter.action == "append":
            kwargs.update(action="append", default=[])
        else:
            kwargs["default"] = parameter.default
    parser.add_argument(parameter.option, **kwargs)


def add_resources(parser: argparse.ArgumentParser) -> None:
    """--threads and --memory-limit, the same for build, tune and exposure-study."""
    for name in RESOURCE_OPTIONS:
        add_parameter(parser, BY_NAME[name])


def float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def connect_read_only(db: str) -> duckdb.DuckDBPyConnection:
    path = Path(db)
    validate.check_database_file(path, db)
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{db}: cannot open the database ({first})") from None
