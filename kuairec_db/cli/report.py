"""``report``: one self-contained HTML report of a database."""

from __future__ import annotations

from pathlib import Path

from kuairec_db import report
from kuairec_db.cli import common


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write one self-contained HTML report (tables and plots) of a database",
        formatter_class=common.RAW,
        description="Reads the database only (read-only) and writes one HTML file with its "
        "plots embedded:\nthe data and its row accounting, the leaderboard, paired comparisons, "
        "accuracy against\npopularity, coverage and diversity, the exposure study and the "
        "temporal split, and\nper-segment results. Sections whose tables are missing say so.",
        epilog="examples:\n  python -m kuairec_db report\n"
        "  python -m kuairec_db report --db kuairec.duckdb --out report.html",
    )
    common.add_db(p)
    p.add_argument(
        "--out",
        type=Path,
        default=Path("report.html"),
        metavar="FILE",
        help="HTML file to write (default ./report.html)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    result = report.write_report(Path(args.db), args.out)
    print(f"wrote {result.out} ({result.n_images} plots)")
    for key in result.notes:
        title = dict(report.SECTIONS)[key]
        print(f"  note: section '{title}' is partial (a table is missing)")
    return 0
