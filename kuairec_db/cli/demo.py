"""``demo``: the synthetic KuaiRec-shaped CSV files."""

from __future__ import annotations

from pathlib import Path

from kuairec_db.cli import common
from kuairec_db.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="write the synthetic KuaiRec-shaped CSV files to a folder",
        formatter_class=common.RAW,
        epilog="examples:\n  python -m kuairec_db demo --out demo-data\n"
        "  python -m kuairec_db build --data demo-data",
    )
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write to")
    p.add_argument(
        "--scale",
        type=float,
        default=0.1,
        help="share of KuaiRec's users and videos (default 0.1; 1.0 = full size)",
    )
    p.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--full-catalogue",
        action="store_true",
        help="shrink users only: every user keeps KuaiRec's 10,728 videos and activity, so "
        "rows grow in proportion to --scale (the bench's data)",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from kuairec_db import demo

    if not 0 < args.scale <= 1:
        raise UserError("--scale must be in (0, 1]")
    from kuairec_db import progress
    from kuairec_db.schema import SOURCES

    with progress.steps(len(SOURCES), "generating the demo", "file") as step:
        counts = demo.generate(
            args.out,
            scale=args.scale,
            seed=args.seed,
            progress=step,
            full_catalogue=args.full_catalogue,
        )
    for name, n in counts.items():
        print(f"{args.out / name}: {n:,} rows")
    return 0
