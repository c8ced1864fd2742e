"""``exposure-study``: the KuaiRec paper's experiment on a built database."""

from __future__ import annotations

from pathlib import Path

from kuairec_db import exposure
from kuairec_db.cli import common


def register(sub) -> None:
    p = sub.add_parser(
        "exposure-study",
        help="sparse test sets under three exposure strategies vs the fully observed matrix",
        formatter_class=common.RAW,
        description="The KuaiRec paper's experiment on a built database: sample sparse test sets "
        "from the\nfully observed small matrix (test users) under uniform, positivity-oriented "
        "and\npopularity-oriented exposure at several densities, evaluate every model on each, "
        "and\nmeasure with Kendall's tau how well each orders the models like the full matrix,"
        "\nover --repeats samples (seeds) each, with intervals."
        "\nThen the usual sparse protocol for contrast: a temporal split of the big matrix with\n"
        "the cheap models retrained on the earlier views. Writes eval_exposure_study,\n"
        "eval_exposure_samples, eval_exposure_models, eval_exposure_info and eval_temporal_split"
        "\ninto the database (on a copy renamed into place; refused while a build runs).",
        epilog="examples:\n  python -m kuairec_db exposure-study\n"
        "  python -m kuairec_db exposure-study --densities 0.05,0.2 --strategies uniform "
        "--k 5,10\n  python -m kuairec_db exposure-study --models popularity,als --no-temporal",
    )
    common.add_db(p)
    p.add_argument(
        "--densities",
        type=common.float_list,
        default=list(exposure.DEFAULT_DENSITIES),
        metavar="D,D",
        help="shares of the fully observed pairs to sample (default 0.1,0.3,0.5,0.7,0.9)",
    )
    p.add_argument(
        "--strategies",
        type=common.name_list,
        default=list(exposure.STRATEGIES),
        metavar="S,S",
        help="exposure strategies (default uniform,positivity,popularity)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=exposure.DEFAULT_SEED,
        help=f"sampling seed (default {exposure.DEFAULT_SEED})",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=exposure.DEFAULT_REPEATS,
        metavar="R",
        help=f"samples per strategy and density, with seeds SEED .. SEED + R - 1: the study's "
        f"values are their means with intervals (default {exposure.DEFAULT_REPEATS})",
    )
    p.add_argument(
        "--k",
        type=common.int_list,
        default=list(exposure.DEFAULT_K),
        metavar="K,K",
        help="cutoffs (default 10)",
    )
    p.add_argument(
        "--models",
        type=common.name_list,
        metavar="A,B",
        help="models to study (default: all in the db)",
    )
    p.add_argument(
        "--no-temporal",
        dest="temporal",
        action="store_false",
        help="skip the temporal split (it retrains the --temporal-models)",
    )
    p.add_argument(
        "--temporal-days",
        type=int,
        default=exposure.DEFAULT_TEMPORAL_DAYS,
        metavar="N",
        help=f"the last N days of the big matrix are the test views (default "
        f"{exposure.DEFAULT_TEMPORAL_DAYS})",
    )
    p.add_argument(
        "--temporal-models",
        type=common.name_list,
        default=list(exposure.DEFAULT_TEMPORAL_MODELS),
        metavar="A,B",
        help="models to retrain on the earlier views (default popularity,als)",
    )
    common.add_resources(p)
    p.set_defaults(func=run)


def run(args) -> int:
    params = exposure.StudyParams(
        db=Path(args.db),
        densities=args.densities,
        strategies=args.strategies,
        seed=args.seed,
        repeats=args.repeats,
        k=args.k,
        models=args.models,
        temporal=args.temporal,
        temporal_days=args.temporal_days,
        temporal_models=args.temporal_models,
        threads=args.threads,
        memory_limit=args.memory_limit,
    )
    result = exposure.run_study(params)
    print(
        f"exposure study written to {result.db} in {result.seconds:.1f} s: "
        f"{len(result.models)} models ({', '.join(result.models)})"
    )
    for name, why in result.left_out.items():
        print(f"  {name}: {why}")
    if result.temporal_models:
        print(f"temporal split: {', '.join(result.temporal_models)} retrained on earlier views")
    print(f"next: python -m kuairec_db report --db {args.db}")
    return 0
