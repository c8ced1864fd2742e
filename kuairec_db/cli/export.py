"""``export``: relations of the database as Parquet or CSV files."""

from __future__ import annotations

from kuairec_db import export
from kuairec_db.cli import common


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="write relations of the database to Parquet or CSV files",
        formatter_class=common.RAW,
        description="Writes one file per relation, NAME.parquet (default) or NAME.csv, into "
        "DIR. Without RELATION names: every public relation the database has (README, 'The "
        "public relations'); any relation of the database may be named.",
        epilog="examples:\n  python -m kuairec_db export --to out\n"
        "  python -m kuairec_db export --to out --format csv eval_metrics recommendations",
    )
    common.add_db(p)
    p.add_argument("--to", required=True, metavar="DIR", help="folder to write (created)")
    p.add_argument(
        "--format", choices=export.FORMATS, default="parquet", help="file format (default parquet)"
    )
    p.add_argument("relations", nargs="*", metavar="RELATION", help="relations to write")
    p.set_defaults(func=run)


def run(args) -> int:
    written = export.export(args.db, args.to, args.format, args.relations)
    for path, n in written:
        print(f"{path}\t{n}")
    return 0
