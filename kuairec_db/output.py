"""Printing rows for people and for programs: aligned tables measured in display cells (a
Chinese character takes two), CSV, and JSON lines (one object per line)."""

from __future__ import annotations

import csv
import json
import math
import unicodedata
from collections.abc import Sequence
from typing import Any, TextIO

FORMATS = ("table", "csv", "json")


def add_format(parser, what: str) -> None:
    """The --format option of a command that prints rows."""
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help=f"table (for reading, the default), csv (a header, then one row per {what}) or json "
        f"(JSON lines: one object per {what} and line)",
    )


def char_width(char: str) -> int:
    """Terminal cells of one character: 2 for wide and full-width (CJK, most emoji), 0 for
    combining marks and zero-width characters, else 1."""
    if unicodedata.combining(char) or unicodedata.category(char) in ("Cf", "Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Terminal cells TEXT takes."""
    return sum(char_width(c) for c in text)


def truncate(text: str, cells: int) -> str:
    """TEXT cut to at most CELLS display cells, ending in an ellipsis when cut."""
    if display_width(text) <= cells:
        return text
    out, used = [], 0
    for char in text:
        width = char_width(char)
        if used + width > cells - 1:
            break
        out.append(char)
        used += width
    return "".join(out) + "…"


def pad(text: str, cells: int, right: bool = False) -> str:
    """TEXT padded with spaces to CELLS display cells (right=True: aligned right)."""
    fill = " " * max(cells - display_width(text), 0)
    return fill + text if right else text + fill


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> str:
    """Rows of text as aligned columns (two spaces apart), widths in display cells."""
    widths = [display_width(h) for h in header]
    for row in rows:
        widths = [max(w, display_width(cell)) for w, cell in zip(widths, row)]
    lines = []
    for row in [list(header), *rows]:
        cells = [pad(c, w, r) for c, w, r in zip(row, widths, right)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def write_records(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: TextIO):
    """ROWS as CSV (header first) or JSON lines (one object per row; NaN and NULL are null)."""
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if _plain(v) is None else _plain(v) for v in row])
    elif fmt == "json":
        for row in rows:
            record = {c: _plain(v) for c, v in zip(columns, row)}
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    else:
        raise ValueError(f"not a record format: {fmt}")
