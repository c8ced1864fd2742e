"""``metrics``: the leaderboard (model x metric@k)."""

from __future__ import annotations

import sys

from kuairec_db import output
from kuairec_db.cli import common
from kuairec_db.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "metrics",
        help="print the leaderboard (model x metric@k)",
        formatter_class=common.RAW,
        epilog="examples:\n  python -m kuairec_db metrics\n"
        "  python -m kuairec_db metrics --split tune --k 10",
    )
    common.add_db(p)
    p.add_argument(
        "--split",
        choices=("test", "tune", "all"),
        default="test",
        help="users to report on (default test)",
    )
    p.add_argument(
        "--k",
        type=common.int_list,
        default=[10],
        metavar="K,K",
        help="cutoffs to show (default 10)",
    )
    p.add_argument(
        "--metrics",
        type=common.name_list,
        metavar="M,M",
        default=["precision", "recall", "ndcg", "map", "hit_rate", "mrr"],
        help="metrics to show (default: all six)",
    )
    p.add_argument(
        "--ci",
        action="store_true",
        help="add the 95%% bootstrap interval of every value (from eval_metrics_ci)",
    )
    common.add_format(p, "model, k and metric")
    p.set_defaults(func=run)


def run(args) -> int:
    from kuairec_db import api

    con = common.connect_read_only(args.db)
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
