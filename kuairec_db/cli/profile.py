"""``profile``: the dataset's profile (data_profile) of one or two datasets side by side."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from kuairec_db import profile, validate
from kuairec_db.cli import common
from kuairec_db.errors import UserError

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser(
        "profile",
        help="print the dataset's profile (data_profile) of one or two datasets side by side",
        formatter_class=common.RAW,
        description="The paper-style table (users, videos, rows, density, duplicates, re-watches,\n"
        "views per user and per video, watch-ratio quantiles and label shares) and the\n"
        "structure statistics of the fully observed matrix on a fixed md5 sample of 83 videos\n"
        "a user (see the README, 'The dataset's profile'). SOURCE is a database built by this\n"
        "project, a folder of KuaiRec files (or KuaiRec.zip), or a bare CSV of user_id,\n"
        "video_id, watch_ratio of the fully observed matrix with --captions FILE. Without a\n"
        "SOURCE it profiles --db (default ./kuairec.duckdb), as the other commands read it.",
        epilog="examples:\n  python -m kuairec_db profile\n"
        "  python -m kuairec_db profile kuairec.duckdb\n"
        "  python -m kuairec_db profile small_matrix_sample.csv demo-data "
        "--captions kuairec_caption_category.csv\n"
        "  python -m kuairec_db profile 'KuaiRec 2.0/data' --csv profile.csv",
    )
    p.add_argument(
        "sources",
        nargs="*",
        type=Path,
        metavar="SOURCE",
        help="one or more datasets (default: --db)",
    )
    p.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="a database built by this project, profiled after any SOURCE (default without a "
        f"SOURCE: ./{common.DEFAULT_DB})",
    )
    p.add_argument(
        "--captions",
        type=Path,
        metavar="FILE",
        help="caption file (kuairec_caption_category.csv) for bare pairs files",
    )
    p.add_argument("--csv", type=Path, metavar="FILE", help="also write the table as CSV")
    p.add_argument("--threads", type=int, metavar="N", help="DuckDB threads (default: all cores)")
    p.set_defaults(func=run)


def _labels(paths: list[Path]) -> list[str]:
    names = [p.name or str(p) for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def run(args) -> int:
    profiles: dict[str, pd.DataFrame] = {}
    db = args.db or (None if args.sources else Path(common.DEFAULT_DB))
    if db is not None:  # a database, as every command that reads one says of it
        validate.check_database_file(db, str(db))
    sources = list(args.sources) + ([db] if db is not None else [])
    labels = _labels(sources)
    if len(set(labels)) != len(labels):
        raise UserError("the same source is given twice")
    for label, path in zip(labels, sources):
        started = time.perf_counter()
        profiles[label] = profile.profile_source(path, args.captions, args.threads)
        log.info("profiled %s in %.1f s", path, time.perf_counter() - started)
    table = profile.side_by_side(profiles)
    if args.csv:
        table.to_csv(args.csv, index=False)
    widths = [max(len(label), 12) for label in labels]
    stat_width = max(len(s) for s in table["statistic"]) + 2
    scope_width = max(len(s) for s in table["scope"]) + 2
    print(
        "scope".ljust(scope_width)
        + "statistic".ljust(stat_width)
        + "".join(label.rjust(w + 2) for label, w in zip(labels, widths))
        + ("  comment" if len(labels) == 1 else "")
    )
    section = None
    for row_section, scope, statistic, *values, comment in table.itertuples(index=False, name=None):
        if row_section != section:
            section = row_section
            print(f"-- {section}")
        cells = "".join(
            profile.format_value(value, statistic).rjust(w + 2) for value, w in zip(values, widths)
        )
        tail = f"  {comment}" if len(labels) == 1 else ""
        print(scope.ljust(scope_width) + statistic.ljust(stat_width) + cells + tail)
    if args.csv:
        print(f"wrote {args.csv}")
    return 0
