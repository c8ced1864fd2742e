"""The build, recommend, metrics and demo commands (argument parsing and printing)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import duckdb

from kuairec_db import output, validate
from kuairec_db.build import LABELS, BuildParams, build
from kuairec_db.build import explain as explain_build
from kuairec_db.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_DB = "kuairec.duckdb"
RAW = argparse.RawDescriptionHelpFormatter


def _add_db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default=DEFAULT_DB, metavar="PATH", help=f"database file (default: ./{DEFAULT_DB})"
    )


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _setting(text: str) -> tuple[str, str, str]:
    name, sep, value = text.partition("=")
    model, dot, key = name.partition(".")
    if not sep or not dot or not model or not key:
        raise argparse.ArgumentTypeError(f"expected MODEL.KEY=VALUE, got {text!r}")
    return model.strip(), key.strip(), value.strip()


# ---------------------------------------------------------------------------------------------
# build


def register_build(sub) -> None:
    p = sub.add_parser(
        "build",
        help="build the database from the KuaiRec files (or the synthetic demo)",
        formatter_class=RAW,
        description="Load, clean and evaluate KuaiRec, train the models, and write one DuckDB "
        "file.\n\nData: --data PATH (a folder of the CSVs, a folder holding 'KuaiRec 2.0/data',\n"
        "or KuaiRec.zip); else $KUAIREC_DATA, ./KuaiRec 2.0/data, ./KuaiRec/data, ./KuaiRec.zip;\n"
        "else a synthetic demo dataset (announced loudly and recorded in build_info).\n\n"
        "--db PATH is written only when PATH is missing or holds a database this project\n"
        "built (it has build_info); any other file there (a CSV, a SQLite or DuckDB database\n"
        "of your own) is refused and left as it was. To replace such a file on purpose,\n"
        "remove it first (rm PATH) or choose another --db.",
        epilog="examples:\n  python -m kuairec_db build\n"
        "  python -m kuairec_db build --data KuaiRec.zip --label ratio --label-threshold 2\n"
        "  python -m kuairec_db build --models popularity,als --set als.factors=64",
    )
    _add_db(p)
    p.add_argument("--data", type=Path, metavar="PATH", help="KuaiRec folder or KuaiRec.zip")
    p.add_argument("--demo", action="store_true", help="use the synthetic demo even if data exists")
    p.add_argument(
        "--demo-scale",
        type=float,
        default=0.1,
        metavar="S",
        help="demo size as a share of KuaiRec's users and videos (default 0.1)",
    )
    p.add_argument(
        "--models",
        type=_name_list,
        metavar="A,B",
        help="models to run (default: every file in models/ but the opt-in bpr and content)",
    )
    p.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="MODEL.KEY=VALUE",
        help="override a model setting, e.g. als.factors=64",
    )
    p.add_argument(
        "--top-n",
        type=int,
        default=100,
        metavar="N",
        help="videos per user in recommendations and eval_rankings (default 100)",
    )
    p.add_argument(
        "--k",
        type=_int_list,
        default=[5, 10, 20, 50],
        metavar="K,K",
        help="metric cutoffs (default 5,10,20,50)",
    )
    p.add_argument(
        "--label",
        choices=LABELS,
        default="debiased",
        help="relevance label of the small matrix (default debiased; see README)",
    )
    p.add_argument(
        "--label-threshold",
        type=float,
        default=2.0,
        metavar="X",
        help="--label ratio: relevant when watch_ratio > X (default 2.0)",
    )
    p.add_argument(
        "--label-quantile",
        type=float,
        default=0.8,
        metavar="Q",
        help="--label debiased: relevant above this quantile of training views of "
        "videos of similar length (default 0.8)",
    )
    p.add_argument(
        "--confidence-alpha",
        type=float,
        default=2.0,
        metavar="A",
        help="ALS confidence = 1 + A * ln(1 + capped watch ratio sum) (default 2.0)",
    )
    p.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples behind eval_metrics_ci and eval_paired (default 1000)",
    )
    _add_resources(p)
    p.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="model settings file (default: settings.toml of the models folder, ./models, "
        "written by tune)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild everything (by default only what changed since the last build is redone)",
    )
    p.add_argument(
        "--explain",
        action="store_true",
        help="say what a build would rebuild and why, without building (the database is "
        "left untouched)",
    )
    p.set_defaults(func=run_build)


def run_build(args) -> int:
    settings: dict[str, dict[str, str]] = {}
    for model, key, value in args.settings:
        settings.setdefault(model, {})[key] = value
    params = BuildParams(
        db=Path(args.db),
        data=args.data,
        demo=args.demo,
        demo_scale=args.demo_scale,
        models=args.models,
        settings=settings,
        top_n=args.top_n,
        k=args.k,
        label=args.label,
        label_threshold=args.label_threshold,
        label_quantile=args.label_quantile,
        confidence_alpha=args.confidence_alpha,
        threads=args.threads,
        memory_limit=args.memory_limit,
        force=args.force,
        bootstrap_replicates=args.bootstrap,
        config=args.config,
    )
    if args.explain:
        print("\n".join(explain_build(params)))
        return 0
    result = build(params)
    if result.up_to_date:
        print(f"{result.db} is up to date (nothing changed; --force rebuilds anyway)")
        return 0
    if result.kept:
        print(
            f"updated {result.db} in {result.seconds:.1f} s from {result.data_location}: "
            f"rebuilt {len(result.rebuilt)}, kept {len(result.kept)} tables and models "
            "(build_info: update_rebuilt)"
        )
    else:
        print(f"built {result.db} in {result.seconds:.1f} s from {result.data_location}")
    if result.data_kind == "synthetic_demo":
        print("note: this is SYNTHETIC DEMO data; see the README to build on the real KuaiRec")
    print(f"next: python -m kuairec_db metrics --db {args.db}")
    return 0


# ---------------------------------------------------------------------------------------------
# reading an existing database


def connect_read_only(db: str) -> duckdb.DuckDBPyConnection:
    path = Path(db)
    validate.check_database_file(path, db)
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{db}: cannot open the database ({first})") from None


def register_recommend(sub) -> None:
    p = sub.add_parser(
        "recommend",
        help="print one user's recommendations with captions",
        formatter_class=RAW,
        epilog="examples:\n  python -m kuairec_db recommend 14\n"
        "  python -m kuairec_db recommend 14 --model popularity --n 20",
    )
    _add_db(p)
    p.add_argument("user_id", type=int, help="a big-matrix user id")
    p.add_argument("--model", default="als", help="model name (default als)")
    p.add_argument("--n", type=int, default=10, help="how many videos (default 10)")
    output.add_format(p, "video")
    p.set_defaults(func=run_recommend)


def run_recommend(args) -> int:
    from kuairec_db import api

    con = connect_read_only(args.db)
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


def register_metrics(sub) -> None:
    p = sub.add_parser(
        "metrics",
        help="print the leaderboard (model x metric@k)",
        formatter_class=RAW,
        epilog="examples:\n  python -m kuairec_db metrics\n"
        "  python -m kuairec_db metrics --split tune --k 10",
    )
    _add_db(p)
    p.add_argument(
        "--split",
        choices=("test", "tune", "all"),
        default="test",
        help="users to report on (default test)",
    )
    p.add_argument(
        "--k", type=_int_list, default=[10], metavar="K,K", help="cutoffs to show (default 10)"
    )
    p.add_argument(
        "--metrics",
        type=_name_list,
        metavar="M,M",
        default=["precision", "recall", "ndcg", "map", "hit_rate", "mrr"],
        help="metrics to show (default: all six)",
    )
    p.add_argument(
        "--ci",
        action="store_true",
        help="add the 95%% bootstrap interval of every value (from eval_metrics_ci)",
    )
    output.add_format(p, "model, k and metric")
    p.set_defaults(func=run_metrics)


def run_metrics(args) -> int:
    from kuairec_db import api

    con = connect_read_only(args.db)
    frame = api.metrics(args.split, None, args.ci, db=con)  # UserError when it has no rows
    have = sorted(set(frame.k))
    ks = [k for k in have if k in args.k]
    if not ks:
        raise UserError(f"--k: none of {args.k} in the database (it has {have})")
    unknown = [m for m in args.metrics if m not in set(frame.metric)]
    if unknown:
        raise UserError(f"--metrics: unknown {', '.join(unknown)}")
    frame = frame[frame.k.isin(ks) & frame.metric.isin(args.metrics)]
    rank_k = 10 if 10 in ks else ks[0]
    ndcg = frame[(frame.metric == "ndcg") & (frame.k == rank_k)].set_index("model").value
    models = sorted(set(frame.model), key=lambda m: -ndcg.get(m, 0))
    if args.format != "table":
        order = {m: i for i, m in enumerate(models)}
        frame = frame.sort_values(
            ["model", "k", "metric"], key=lambda s: s.map(order) if s.name == "model" else s
        )
        output.write_records(
            list(frame.columns), frame.itertuples(index=False), args.format, sys.stdout
        )
        return 0
    label = con.execute("select value from build_info where key = 'param.label'").fetchone()
    kind = con.execute("select value from build_info where key = 'data_kind'").fetchone()
    print(
        f"split {args.split}: {int(frame.n_users.max()):,} users with a relevant video; label "
        f"{label[0] if label else '?'}; data {kind[0] if kind else '?'}"
        + ("; [95% bootstrap interval]" if args.ci else "")
    )
    cells = {(r.model, r.k, r.metric): r for r in frame.itertuples(index=False)}
    columns = [(metric, k) for metric in args.metrics for k in ks]
    rows = []
    for model in models:
        row = [model]
        for metric, k in columns:
            r = cells.get((model, k, metric))
            text = "nan" if r is None else f"{r.value:.4f}"
            if args.ci and r is not None:
                text += f" [{r.ci_low:.4f}, {r.ci_high:.4f}]"
            row.append(text)
        rows.append(row)
    header = ["model", *(f"{m}@{k}" for m, k in columns)]
    print(output.table(header, rows, [False] + [True] * len(columns)))
    return 0


def register_bench(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark the build on demo data: time, memory, floor, growth",
        formatter_class=RAW,
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
        type=_bench_scale_list,
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
        help="skip the model yardsticks",
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
    p.set_defaults(func=run_bench)


def _add_resources(p) -> None:
    """--threads and --memory-limit, the same for build, tune and exposure-study."""
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="threads for DuckDB and the models (default: all cores)",
    )
    p.add_argument(
        "--memory-limit",
        metavar="SIZE",
        help="DuckDB memory limit for the whole run, e.g. 4GB (default 1GB, and 3GB while a "
        "model that asks for it runs: random, content, sequence)",
    )


def _float_list(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def _scale_list(text: str) -> list[float]:
    values = _float_list(text)
    if any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError("scales must be in (0, 1]")
    return values


def _bench_scale_list(text: str) -> list[float]:
    values = _float_list(text)
    if any(not 0 < v <= 16 for v in values):
        raise argparse.ArgumentTypeError("scales must be in (0, 16]")
    return values


def run_bench(args) -> int:
    from kuairec_db.bench import bench

    validate.check_threads(args.threads)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    if models:
        from kuairec_db.hooks import discover

        unknown = sorted(set(models) - set(discover()))
        if unknown:
            raise UserError(f"--models: unknown model(s) {', '.join(unknown)}")
    bench(
        args.scales, args.out, args.threads, args.memory_limit, models if args.model_floors else []
    )
    print((args.out / "bench.md").read_text(), end="")
    print(f"results: {args.out / 'bench.json'}")
    return 0


def register_demo(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="write the synthetic KuaiRec-shaped CSV files to a folder",
        formatter_class=RAW,
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
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
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
