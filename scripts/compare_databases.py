"""Compare two kuairec_db databases relation by relation, bit for bit.

Every table and view of either file is compared with EXCEPT ALL in both directions (rows of A
missing from B, rows of B missing from A; floating values must be identical, not close). Views
are recomputed by the query, so the comparison runs on one thread: a view whose sums depend on
the order threads add rows in would otherwise differ from itself. build_info,
build_fingerprints and build_lineage describe the build (timings, code) and are listed apart.

    python scripts/compare_databases.py before.duckdb after.duckdb

Prints one line per relation that differs, then a summary; exits 1 when any relation differs.
"""

from __future__ import annotations

import sys

import duckdb

ABOUT_THE_BUILD = ("build_info", "build_fingerprints", "build_lineage")


def relations(con: duckdb.DuckDBPyConnection, catalog: str) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = ? and table_schema = 'main'",
            [catalog],
        ).fetchall()
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: compare_databases.py A.duckdb B.duckdb", file=sys.stderr)
        return 2
    con = duckdb.connect(argv[0], read_only=True, config={"threads": "1"})
    con.execute(f"attach '{argv[1]}' as other (read_only)")
    first = con.execute("select current_database()").fetchone()[0]
    mine, theirs = relations(con, first), relations(con, "other")
    differ = 0
    for name in sorted(mine ^ theirs):
        print(f"{name}: only in {'A' if name in mine else 'B'}")
        differ += 1
    n_rows = 0
    compared = 0
    for name in sorted(mine & theirs):
        a, b = f"{first}.main.{name}", f"other.main.{name}"
        missing, extra, count = con.execute(
            f"select (select count(*) from (from {a} except all from {b})), "
            f"(select count(*) from (from {b} except all from {a})), (select count(*) from {a})"
        ).fetchone()
        compared += 1
        n_rows += count
        if missing or extra:
            tag = " (describes the build)" if name in ABOUT_THE_BUILD else ""
            print(f"{name}: {missing} rows of A not in B, {extra} rows of B not in A{tag}")
            differ += name not in ABOUT_THE_BUILD
    print(f"{compared} relations compared, {n_rows:,} rows of A; {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
