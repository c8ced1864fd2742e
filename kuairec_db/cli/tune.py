"""``tune``: choose model settings on the tune users and write them."""

from __future__ import annotations

from pathlib import Path

from kuairec_db import resources, tune
from kuairec_db.cli import common


def register(sub) -> None:
    p = sub.add_parser(
        "tune",
        help="choose model settings on the tune users (random search) and write them",
        formatter_class=common.RAW,
        description="Random search over each model's settings, evaluated on the TUNE users only\n"
        "(in a copy of the database whose ground truth holds nothing else). Every trial goes\n"
        "to the table tuning_trials; the best settings per model go to a TOML file that build\n"
        "reads (DEFAULTS < file < --set). Trial 0 is always the model's defaults.",
        epilog="examples:\n  python -m kuairec_db tune\n"
        "  python -m kuairec_db tune --models als --budget 12 --seed 7\n"
        "  python -m kuairec_db tune --metric recall --k 20 --write tuned.toml",
    )
    common.add_db(p)
    p.add_argument(
        "--models",
        type=common.name_list,
        metavar="A,B",
        help="models to tune (default: those of the database with a search space)",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=tune.DEFAULT_BUDGET,
        metavar="N",
        help=f"trials per model, trial 0 being the defaults (default {tune.DEFAULT_BUDGET})",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=tune.DEFAULT_SEED,
        metavar="S",
        help=f"seed of the search (default {tune.DEFAULT_SEED})",
    )
    p.add_argument(
        "--metric",
        choices=tune.METRICS,
        default="ndcg",
        help="selection metric on the tune users (default ndcg)",
    )
    p.add_argument("--k", type=int, default=10, metavar="K", help="its cutoff (default 10)")
    p.add_argument(
        "--write",
        type=Path,
        metavar="FILE",
        help="settings file to write (default: settings.toml in the models folder, "
        "./models unless --models-dir says otherwise; build reads it)",
    )
    common.add_resources(p)
    p.set_defaults(func=run)


def run(args) -> int:
    result = tune.tune(
        Path(args.db),
        models=args.models,
        budget=args.budget,
        seed=args.seed,
        metric=args.metric,
        k=args.k,
        write=args.write or resources.settings_file(),
        threads=args.threads,
        memory_limit=args.memory_limit,
    )
    selection = f"{result.metric}@{result.k}"
    print(
        f"tuned {len(result.chosen())} model(s) on the {result.n_tune_users} tune users of "
        f"{args.db} by {selection} in {result.seconds:.1f} s"
    )
    defaults = {t.model: t for t in result.trials if t.trial == 0}
    print(f"{'model':<12}{'trials':>7}{'defaults':>10}{'chosen':>10}  settings")
    for name, trial in result.chosen().items():
        n = sum(t.model == name for t in result.trials)
        changed = {
            key: value
            for key, value in trial.settings.items()
            if value != defaults[name].settings.get(key)
        }
        shown = " ".join(f"{key}={value}" for key, value in changed.items()) or "(the defaults)"
        print(
            f"{name:<12}{n:>7}{defaults[name].values[result.metric]:>10.4f}"
            f"{trial.values[result.metric]:>10.4f}  {shown}"
        )
    print(f"every trial: table {tune.TRIALS_TABLE} in {args.db}")
    if result.settings_file is not None:
        print(f"chosen settings written to {result.settings_file}; apply them with:")
        print(f"  {result.build_command}")
    return 0
