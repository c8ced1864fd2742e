"""Checks made before any work starts: what a file is, whether the build may replace it, the
type and range of settings, and files created beside the database without following links."""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kuairec_db.errors import UserError

# A DuckDB file: an 8-byte checksum, then the magic bytes.
DUCKDB_MAGIC = (8, b"DUCK")
SQLITE_MAGIC = b"SQLite format 3\x00"
PROJECT_MARK = "kuairec_db_version"  # a key of build_info: only this project writes it
HOW_TO_REPLACE = "to replace it on purpose, remove it first (rm PATH) or choose another --db"
THREADS_PER_CORE = 4  # --threads above cores x this is refused


def file_kind(path: Path) -> str:
    """What a file is, as a phrase for messages ("a DuckDB database", "a SQLite database",
    "a text file", ...), from its first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head:
        return "an empty file"
    start, magic = DUCKDB_MAGIC
    if head[start : start + len(magic)] == magic:
        return "a DuckDB database"
    if head.startswith(SQLITE_MAGIC):
        return "a SQLite database"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "a zip archive"
    if head.startswith(b"PAR1"):
        return "a Parquet file"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
            text = True
        except UnicodeDecodeError as exc:
            text = exc.start >= len(head) - 3  # a character cut by the 4 KiB window
        if text:
            first = head.split(b"\n", 1)[0]
            return "a CSV file" if b"," in first else "a text file"
    return "a file that is not a DuckDB database"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def check_build_target(target: Path, shown: str) -> None:
    """Refuse to build over anything but a missing path or a database this project built."""
    if target.is_symlink() and not target.exists():
        raise UserError(f"{shown}: a symbolic link to nothing; {HOW_TO_REPLACE}")
    if not target.exists():
        return
    if target.is_dir():
        raise UserError(f"{shown}: is a folder; --db takes a file path")
    if not target.is_file():
        raise UserError(f"{shown}: not a regular file; {HOW_TO_REPLACE}")
    kind = file_kind(target)
    if kind != "a DuckDB database":
        raise UserError(f"{shown}: {kind}, not a database this project built; {HOW_TO_REPLACE}")
    try:
        con = duckdb.connect(str(target), read_only=True)
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():
            raise UserError(f"{shown}: another program has it open for writing") from None
        raise UserError(
            f"{shown}: a DuckDB file that cannot be opened ({_first_line(exc)}); {HOW_TO_REPLACE}"
        ) from None
    try:
        try:
            mark = con.execute(
                "select count(*) from build_info where key = ?", [PROJECT_MARK]
            ).fetchone()[0]
        except duckdb.Error:
            mark = 0
        if not mark:
            n_tables = con.execute(
                "select count(*) from information_schema.tables "
                "where table_catalog = current_database()"
            ).fetchone()[0]
            raise UserError(
                f"{shown}: a DuckDB database with {n_tables} table(s) of its own, not a database "
                f"this project built (no build_info); {HOW_TO_REPLACE}"
            )
    finally:
        con.close()


def check_database_file(path: Path, shown: str) -> None:
    """Refuse a file that is not a DuckDB database before DuckDB opens it (DuckDB would try to
    install an extension from the network for a SQLite file)."""
    if not path.is_file():
        raise UserError(f"{shown}: no database here; build it first: python -m kuairec_db build")
    kind = file_kind(path)
    if kind != "a DuckDB database":
        raise UserError(f"{shown}: {kind}, not a DuckDB database built by kuairec_db")


def open_beside(path: Path, append: bool = False) -> int:
    """A file descriptor of PATH opened for reading and writing, created if missing, without
    following a symbolic link: a link (or anything but a regular file) found there is refused.
    append=True opens it for appending."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    if append:
        flags |= os.O_APPEND
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        if path.is_symlink():
            raise UserError(
                f"{path}: a symbolic link where this program keeps its own file; remove it"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{path}: not a regular file where this program keeps its own file")
    return fd


def max_threads() -> int:
    return (os.cpu_count() or 1) * THREADS_PER_CORE


def check_threads(threads: int, option: str = "--threads") -> None:
    """At least 1 and at most cores x THREADS_PER_CORE: more only makes DuckDB and the models
    start threads that contend (100,000 of them hang the machine)."""
    if threads < 1:
        raise UserError(f"{option} must be at least 1")
    if threads > max_threads():
        raise UserError(
            f"{option} {threads} is more than {max_threads()} ({THREADS_PER_CORE} per core; "
            f"this machine has {os.cpu_count() or 1})"
        )


@dataclass(frozen=True)
class Setting:
    """The type and range of one setting: a value of TYPE from LOW to HIGH (inclusive; None =
    unbounded; low_open / high_open exclude LOW / HIGH), or one of WORDS. Numbers must be
    finite."""

    type: type
    low: float | None = None
    high: float | None = None
    words: tuple[str, ...] = ()
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        if self.type is bool:
            return "true or false"
        if self.type is str and not self.words:
            return "text"
        parts = []
        if self.type in (int, float):
            kind = "an integer" if self.type is int else "a number"
            if self.low is not None and self.high is not None:
                if not self.low_open and not self.high_open:
                    parts.append(f"{kind} from {self.low:g} to {self.high:g}")
                else:
                    left = "above" if self.low_open else "of at least"
                    right = "below" if self.high_open else "at most"
                    parts.append(f"{kind} {left} {self.low:g} and {right} {self.high:g}")
            elif self.low is not None:
                parts.append(f"{kind} {'above' if self.low_open else 'of at least'} {self.low:g}")
            elif self.high is not None:
                parts.append(f"{kind} {'below' if self.high_open else 'of at most'} {self.high:g}")
            else:
                parts.append(f"a finite {kind.split()[-1]}")
        parts += [repr(w) for w in self.words]
        return " or ".join(parts)

    def convert(self, value: Any, where: str) -> Any:
        """VALUE (from TOML, --set text or the command line) as this setting's type, or a
        UserError naming WHERE and what is expected."""
        expected = self.describe()
        if isinstance(value, str):
            word = {w.lower(): w for w in self.words}.get(value.strip().lower())
            if word is not None:
                return word
        if self.type is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "false", "0", "no"):
                return text in ("true", "1", "yes")
            raise UserError(f"{where}: expected {expected}, got {value!r}")
        if self.type is str:
            if self.words or not isinstance(value, str):
                raise UserError(f"{where}: expected {expected}, got {value!r}")
            return value
        if isinstance(value, bool):
            raise UserError(f"{where}: expected {expected}, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: expected {expected}, got {value!r}") from None
        if not math.isfinite(number):
            raise UserError(f"{where}: expected {expected}, got {value!r}")
        if self.type is int:
            if number != int(number):
                raise UserError(f"{where}: expected {expected}, got {value!r}")
            number = int(number)
        below = self.low is not None and (
            number <= self.low if self.low_open else number < self.low
        )
        above = self.high is not None and (
            number >= self.high if self.high_open else number > self.high
        )
        if below or above:
            raise UserError(f"{where}: expected {expected}, got {value!r}")
        return number
