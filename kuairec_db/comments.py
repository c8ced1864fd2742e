"""The catalogue of descriptions: COMMENT ON every relation and column sql/catalog.toml
describes (build, tune and exposure-study all write through here)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from pathlib import Path

import duckdb

from kuairec_db import stages


def apply_comments(
    con: duckdb.DuckDBPyConnection,
    catalog_file: Path = stages.CATALOG_FILE,
    only: Iterable[str] | None = None,
) -> None:
    """COMMENT ON every relation and column described in sql/catalog.toml (those of ONLY, when
    given, present in the database: exposure-study comments its own tables alone)."""
    catalog = tomllib.loads(catalog_file.read_text(encoding="utf-8"))
    kinds = dict(
        con.execute(
            "select table_name, case when table_type = 'VIEW' then 'view' else 'table' end "
            "from information_schema.tables where table_catalog = current_database()"
        ).fetchall()
    )
    kinds |= dict(  # the shared formulas of sql/macros/
        con.execute(
            "select function_name, case when function_type = 'table_macro' then 'macro table' "
            "else 'macro' end from duckdb_functions() where database_name = current_database() "
            "and function_type in ('macro', 'table_macro') and not internal"
        ).fetchall()
    )
    wanted = None if only is None else set(only)

    columns = {
        (t, c)
        for t, c in con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_catalog = current_database()"
        ).fetchall()
    }
    statements = []
    for name, entry in catalog.items():
        if name not in kinds or (wanted is not None and name not in wanted):
            continue
        statements.append(f"comment on {kinds[name]} {name} is {quote(entry['description'])}")
        for column, text in entry.get("columns", {}).items():
            if (name, column) in columns:
                statements.append(f"comment on column {name}.{column} is {quote(text)}")
    # one transaction, not a commit (a write of the database file) per statement
    con.begin()
    try:
        for statement in statements:
            con.execute(statement)
    except BaseException:
        con.rollback()
        raise
    con.commit()


def quote(text: str) -> str:
    """TEXT as a SQL string literal, its whitespace runs made single spaces."""
    return "'" + " ".join(text.split()).replace("'", "''") + "'"
