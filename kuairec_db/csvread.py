"""Reading the KuaiRec CSVs in DuckDB, and DuckDB's errors while reading them worded as one line
naming the file, line and column.

The staging tables read the views ``csv_view_sql`` makes, so this module is part of the code
every staging table runs (its fingerprint covers it, fingerprints.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from kuairec_db import sources
from kuairec_db.schema import SOURCES

MAX_LINE_BYTES = 2_000_000  # DuckDB's read_csv max_line_size default
MAX_ID = 2**31 - 1  # ids are read as INTEGER


def csv_error_message(exc: duckdb.Error, src: sources.DataSource, source: str) -> str:
    text = str(exc)
    display = src.display[source]
    read = src.files.get(source)
    file_match = re.search(r"^\s*file = (.+)$", text, flags=re.M)
    if file_match:
        path = file_match.group(1).strip()
        for name, read_path in src.files.items():
            if str(read_path) == path:
                display, read = src.display[name], read_path
    if read is not None and re.search(
        r"Maximum line size|unterminated quote|Parallel CSV Reader", text
    ):
        # a line longer than DuckDB's limit: worded as such wherever DuckDB noticed it
        long_line = sources.find_long_line(read, MAX_LINE_BYTES)
        if long_line is not None:
            return (
                f"{display}: line {long_line}: longer than {MAX_LINE_BYTES // 1_000_000} MB, "
                "far more than any KuaiRec row (a damaged file, or a quote that never closes)"
            )
    where = ""
    line_match = re.search(r"CSV Error on Line: (\d+)", text)
    if line_match:
        where = f" line {line_match.group(1)}:"
    convert = re.search(
        r'Error when converting column "([^"]+)"\. (Could not convert string "(.*?)" to '
        r"'([A-Z0-9_]+)')",
        text,
    )
    if convert:
        column, _, value, type_name = convert.groups()
        expected = {
            "INTEGER": "an integer",
            "BIGINT": "an integer",
            "DOUBLE": "a number",
            "TIMESTAMP": "a timestamp like 2020-07-05 00:08:23.438",
        }
        if type_name == "INTEGER" and re.fullmatch(r"[+-]?\d+", value.strip()):
            # only ids are read as INTEGER (schema.py)
            reason = (
                f" column {column}: {value.strip()[:60]} is out of range "
                f"(an id is an integer from 0 to {MAX_ID:,})"
            )
        else:
            kind = expected.get(type_name, type_name)
            reason = f' column {column}: "{value[:60]}" is not {kind}'
    else:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        reason_line = next(
            (
                ln
                for ln in lines
                if re.match(
                    r"(Expected Number of Columns|Value with unterminated"
                    r"|Invalid unicode|Maximum line size)",
                    ln,
                )
            ),
            None,
        )
        if reason_line is None:
            reason_line = re.sub(
                r"^[A-Za-z ]*Error: ", "", lines[0] if lines else type(exc).__name__
            )
            reason_line = re.sub(r"CSV Error on Line: \d+", "", reason_line).strip() or "bad CSV"
        count = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", reason_line)
        if count:
            reason_line = (
                f"{count.group(2)} fields where {count.group(1)} were expected "
                "(a truncated or malformed line)"
            )
        reason = " " + reason_line
        if "unterminated" in reason_line:
            reason += " (a quoted field never ends: is the file truncated?)"
    return f"{display}:{where}{reason}"


def csv_view_sql(source: str, path: Path, header: list[str]) -> str:
    _, types = SOURCES[source]
    columns = ", ".join(
        f"'{col.replace(chr(39), chr(39) * 2)}': '{types.get(col, 'VARCHAR')}'" for col in header
    )
    quoted = str(path).replace("'", "''")
    # ids are read as INTEGER and must not be negative: a negative one stops the build
    guards = ", ".join(
        f"case when {col} < 0 then error('column {col}: ' || {col} || ' is negative (ids are "
        f"non-negative integers)') else {col} end as {col}"
        for col in header
        if types.get(col) == "INTEGER"
    )
    columns_sql = f"* replace ({guards})" if guards else "*"
    return (
        f"create or replace temp view src_{source} as select {columns_sql} "
        f"from read_csv('{quoted}', "
        f"columns = {{{columns}}}, auto_detect = false, header = true, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = true)"
    )
