"""``recommend``: one user's recommendations with captions."""

from __future__ import annotations

import sys

import duckdb

from kuairec_db import output
from kuairec_db.cli import common
from kuairec_db.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "recommend",
        help="print one user's recommendations with captions",
        formatter_class=common.RAW,
        epilog="examples:\n  python -m kuairec_db recommend 14\n"
        "  python -m kuairec_db recommend 14 --model popularity --n 20",
    )
    common.add_db(p)
    p.add_argument("user_id", type=int, help="a big-matrix user id")
    p.add_argument("--model", default="als", help="model name (default als)")
    p.add_argument("--n", type=int, default=10, help="how many videos (default 10)")
    common.add_format(p, "video")
    p.set_defaults(func=run)


def run(args) -> int:
    from kuairec_db import api

    con = common.connect_read_only(args.db)
    _check_n(con, args)
    try:
        frame = api.recommend(args.user_id, args.model, args.n, db=con)
    except UserError as exc:  # name the database, as every message of the CLI does
        raise UserError(f"{exc} of {args.db}" if "unknown user" in str(exc) else str(exc)) from None
    if args.format != "table":
        output.write_records(
            list(frame.columns), frame.itertuples(index=False), args.format, sys.stdout
        )
        return 0
    print(f"top {len(frame)} for user {args.user_id} by {args.model}:")
    rows = []
    for r in frame.itertuples(index=False):
        text = r.caption if isinstance(r.caption, str) else ""  # NULL arrives as NaN
        caption = output.truncate(" ".join(text.split()), 50)
        name = r.first_level_category_name
        category = output.truncate(name if isinstance(name, str) else "-", 12)
        secs = "-" if r.video_duration_s != r.video_duration_s else f"{r.video_duration_s:.1f}"
        rows.append([str(r.rank), str(r.video_id), f"{r.score:.4f}", category, secs, caption])
    header = ["rank", "video", "score", "category", "secs", "caption"]
    print(output.table(header, rows, [True, True, True, False, True, False]))
    return 0


def _check_n(con: duckdb.DuckDBPyConnection, args) -> None:
    """--n from 1 to the videos per user the database holds (its build's --top-n)."""
    row = con.execute("select value from build_info where key = 'param.top_n'").fetchone()
    top_n = int(row[0]) if row else None
    if args.n < 1:
        raise UserError(f"--n {args.n}: must be at least 1")
    if top_n is not None and args.n > top_n:
        raise UserError(
            f"--n {args.n}: {args.db} holds {top_n} videos per user (its build's --top-n); "
            f"ask for at most {top_n}, or rebuild with --top-n {args.n}"
        )
