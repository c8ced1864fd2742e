"""``bench``: the build's time, memory, floor and growth on demo data."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kuairec_db import validate
from kuairec_db.cli import common
from kuairec_db.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark the build on demo data: time, memory, floor, growth",
        formatter_class=common.RAW,
        description="Generates the demo dataset at each scale (users shrink, the catalogue stays "
        "whole, so rows are the scale's share of KuaiRec's; 1.0 = the real KuaiRec shape), "
        "measures a bare DuckDB scan plus a bare ALS fit (the floor), the aggregation floor "
        "(tables, one group-by, the ALS fit) and the seed's pipeline in pandas "
        "(benchmarks/pandas_pipeline.py, in a checkout), then the build with popularity and "
        "ALS (wall time, CPU time, peak RSS, per stage), a no-op rebuild and one user's lookup; "
        "at the largest scale up to 1.0 a build with every model and each library model's "
        "bare fit and top-N (its floor); scales above 1.0 show the growth per doubling. Writes "
        "bench.json and bench.md.",
        epilog="examples:\n  python -m kuairec_db bench --scale 1.0   (about 12 minutes once the "
        "data exists, 13 the first time)\n"
        "  python -m kuairec_db bench --scale 1,2,4   (the growth: 12.5M, 25M, 50M rows)\n"
        "  python -m kuairec_db bench   (scales 0.25, 0.5 and 1.0: about twice that)",
    )
    p.add_argument(
        "--scale",
        dest="scales",
        type=scale_list,
        default=[0.25, 0.5, 1.0],
        metavar="S,S",
        help="demo scales (default 0.25,0.5,1.0; above 1 more users than KuaiRec, e.g. "
        "1,2,4 for growth)",
    )
    p.add_argument(
        "--models",
        metavar="M,M",
        help="the models of the model yardsticks (default every model): their build and each "
        "library model's floor, at the largest scale up to 1.0",
    )
    p.add_argument(
        "--no-model-floors",
        dest="model_floors",
        action="store_false",
        help="skip the model yardsticks (and exposure-study and tune on their build)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("bench-out"),
        metavar="DIR",
        help="folder for data, databases and results (default ./bench-out)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="threads for the floor and the build (default: all cores)",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="passed to build (default: the build's own, 1GB for popularity and ALS)",
    )
    p.set_defaults(func=run)


def scale_list(text: str) -> list[float]:
    values = common.float_list(text)
    if any(not 0 < v <= 16 for v in values):
        raise argparse.ArgumentTypeError("scales must be in (0, 16]")
    return values


def run(args) -> int:
    from kuairec_db.bench import bench

    validate.check_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if models:
        from kuairec_db.runner import discover

        unknown = sorted(set(models) - set(discover()))
        if unknown:
            raise UserError(f"--models: unknown model(s) {', '.join(unknown)}")
    bench(
        args.scales, args.out, args.threads, args.memory_limit, models if args.model_floors else []
    )
    print((args.out / "bench.md").read_text(), end="")
    print(f"results: {args.out / 'bench.json'}")
    return 0
