"""Uncertainty, paired comparisons, beyond-accuracy measures and user segments.

- int_resampling_weights: Poisson(1) bootstrap weights and sign-flip signs from md5, checked
  against hashlib and the Poisson inverse CDF in Python, and identical across two builds;
- eval_metrics_ci and eval_paired: hand-computed cases on an in-memory DuckDB with weights set
  by hand, then properties on the built demo database (intervals hold the value, a model against
  itself gives 0, [0, 0], p = 1, a model against a much worse one a clear win);
- eval_beyond_accuracy: against an independent numpy computation on the demo database;
- eval_segment_metrics: the segments of each kind add up to eval_metrics;
- every new view read by the ``duckdb`` command-line program (an older DuckDB than the build's).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import duckdb
import numpy as np
import pytest

from kuairec_db.stages import SQL_DIR, create_macros, select_body
from tests.conftest import run_cli

TOL = 1e-9
SEED = 42  # the constants of sql/intermediate/int_resampling_weights.sql
N_REPLICATES = 1000
NEW_VIEWS = ("eval_metrics_ci", "eval_paired", "eval_beyond_accuracy", "eval_segment_metrics")


def _body(folder: str, name: str) -> str:
    return select_body((SQL_DIR / folder / f"{name}.sql").read_text(encoding="utf-8"))


def _rows(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


# ---------------------------------------------------------------------------------------------
# int_resampling_weights


def reference_weight(seed: int, replicate: int, user_id: int) -> tuple[int, int]:
    """(weight, sign) of one user in one replicate, from the formulas in the SQL header."""
    digest = hashlib.md5(f"{seed}:{replicate}:{user_id}".encode()).hexdigest()
    uniform = (int(digest[:13], 16) + 0.5) / 16**13
    weight, cdf = 0, math.exp(-1)
    while cdf < uniform:
        weight += 1
        cdf += math.exp(-1) / math.factorial(weight)
    sign = 1 if int(digest[-1], 16) % 2 == 0 else -1
    return weight, sign


def resampling_table(user_ids: list[int], n_replicates: int | None = None) -> list[tuple]:
    con = duckdb.connect()
    con.execute("create table int_ground_truth (user_id integer, video_id integer)")
    con.executemany("insert into int_ground_truth values (?, 1)", [(u,) for u in user_ids])
    con.execute("create table int_user_index (user_id integer)")  # big-matrix users: none here
    if n_replicates is not None:
        con.execute("set variable bootstrap_replicates = ?", [n_replicates])
    return con.execute(
        f"select * from ({_body('intermediate', 'int_resampling_weights')}) "
        "order by replicate, user_id"
    ).fetchall()


def test_resampling_weights_follow_the_md5_formula():
    users = [0, 7, 14, 1411, 7175]
    rows = resampling_table(users, n_replicates=40)
    assert len(rows) == 40 * len(users)
    for replicate, user_id, weight, sign in rows:
        assert (weight, sign) == reference_weight(SEED, replicate, user_id), (replicate, user_id)


def test_resampling_weights_are_poisson_one_and_fair_signs(db_con):
    n_users, n_rows, mean, share_zero, share_two, mean_sign = db_con.execute(
        "select count(distinct user_id), count(*), avg(weight), avg((weight = 0)::integer), "
        "avg((weight = 2)::integer), avg(sign) from int_resampling_weights"
    ).fetchone()
    every_user = db_con.execute(
        "select count(*) from (select user_id from eval_ground_truth "
        "union select user_id from int_user_index)"
    )
    assert n_users == every_user.fetchone()[0]
    assert n_rows == N_REPLICATES * n_users
    # Poisson(1): mean 1, P(0) = e^-1, P(2) = e^-1 / 2; over ~700,000 draws
    assert mean == pytest.approx(1.0, abs=0.02)
    assert share_zero == pytest.approx(math.exp(-1), abs=0.01)
    assert share_two == pytest.approx(math.exp(-1) / 2, abs=0.01)
    assert mean_sign == pytest.approx(0.0, abs=0.02)
    replicates = db_con.execute("select min(replicate), max(replicate) from int_resampling_weights")
    assert replicates.fetchone() == (1, N_REPLICATES)


def test_resampling_weights_are_identical_across_builds(built_db, demo_dir, tmp_path):
    other = tmp_path / "again.duckdb"
    result = run_cli("build", "--data", str(demo_dir), "--db", str(other), "--models", "popularity")
    assert result.returncode == 0, result.stderr
    query = "select * from int_resampling_weights order by replicate, user_id"
    with duckdb.connect(str(built_db), read_only=True) as first:
        expected = first.execute(query).fetchall()
    with duckdb.connect(str(other), read_only=True) as second:
        assert second.execute(query).fetchall() == expected


# ---------------------------------------------------------------------------------------------
# eval_metrics_ci and eval_paired on literal rows


# eval_user_values holding only eval_metrics' series (no segments, no lists): the bootstrap
# files on literal per-user metrics
METRICS_ONLY_USER_VALUES = (
    "create view eval_user_values as select 'eval_metrics' as relation, model, split, "
    "'all' as segment_kind, 'all' as segment, k, metric, user_id, value from eval_user_metrics"
)


def uncertainty_db(
    values: dict[tuple[str, int], float],
    splits: dict[int, str],
    weights: dict[int, list[int]],
    signs: dict[int, list[int]] | None = None,
) -> duckdb.DuckDBPyConnection:
    """In-memory database with eval_metrics_ci and eval_paired over literal per-user values.

    values: (model, user) -> the user's ndcg@10; splits: user -> tune / test;
    weights, signs: replicate -> one weight (sign) per user, users in ascending order.
    """
    con = duckdb.connect(config={"threads": "1"})
    con.execute(
        "create table eval_user_metrics (model varchar, split varchar, user_id integer, "
        "k integer, metric varchar, value double)"
    )
    con.executemany(
        "insert into eval_user_metrics values (?, ?, ?, 10, 'ndcg', ?)",
        [(model, splits[user], user, value) for (model, user), value in values.items()],
    )
    con.execute(
        "create table eval_user_relevance as select user_id, split, 10 as n_candidates, "
        "1 as n_relevant from (select distinct user_id, split from eval_user_metrics)"
    )
    con.execute(
        "create table int_resampling_weights "
        "(replicate integer, user_id integer, weight integer, sign integer)"
    )
    users = sorted(splits)
    rows = [
        (replicate, user, weight, (signs or {}).get(replicate, [1] * len(users))[i])
        for replicate, row in weights.items()
        for i, (user, weight) in enumerate(zip(users, row))
    ]
    con.executemany("insert into int_resampling_weights values (?, ?, ?, ?)", rows)
    con.execute(METRICS_ONLY_USER_VALUES)
    create_macros(con)
    for name in ("eval_resampled_sums", "eval_intervals", "eval_metrics_ci", "eval_paired"):
        con.execute(f"create view {name} as {_body('eval', name)}")
    return con


def ci_row(con, model: str, split: str, k: int = 10, metric: str = "ndcg") -> dict:
    (row,) = _rows(
        con,
        "from eval_metrics_ci where model = ? and split = ? and k = ? and metric = ?",
        [model, split, k, metric],
    )
    return row


def paired_row(
    con, model_a: str, model_b: str, split: str, k: int = 10, metric: str = "ndcg"
) -> dict:
    (row,) = _rows(
        con,
        "from eval_paired where model_a = ? and model_b = ? and split = ? and k = ? and metric = ?",
        [model_a, model_b, split, k, metric],
    )
    return row


def test_one_replicate_of_unit_weights_collapses_the_interval():
    values = {("m", 1): 0.25, ("m", 2): 0.5, ("m", 3): 1.0, ("m", 4): 0.0}
    splits = {1: "test", 2: "test", 3: "tune", 4: "test"}
    con = uncertainty_db(values, splits, {1: [1, 1, 1, 1]})
    for split, users in (("test", [1, 2, 4]), ("tune", [3]), ("all", [1, 2, 3, 4])):
        row = ci_row(con, "m", split)
        expected = sum(values["m", u] for u in users) / len(users)
        assert row["value"] == pytest.approx(expected, abs=TOL)
        assert row["ci_low"] == pytest.approx(expected, abs=TOL)
        assert row["ci_high"] == pytest.approx(expected, abs=TOL)
        assert (row["n_users"], row["n_replicates"]) == (len(users), 1)


# Three users with values a = (0.2, 0.5, 0.9) and b = (0.1, 0.5, 0.4): d = (0.1, 0, 0.5).
HAND_VALUES = {
    ("a", 1): 0.2,
    ("a", 2): 0.5,
    ("a", 3): 0.9,
    ("b", 1): 0.1,
    ("b", 2): 0.5,
    ("b", 3): 0.4,
}
HAND_SPLITS = {1: "test", 2: "test", 3: "test"}
HAND_WEIGHTS = {1: [1, 1, 1], 2: [2, 0, 1], 3: [0, 3, 0], 4: [1, 0, 2], 5: [0, 0, 0]}
HAND_SIGNS = {1: [1, 1, 1], 2: [-1, 1, 1], 3: [1, -1, -1], 4: [-1, -1, -1], 5: [1, 1, -1]}


def test_hand_computed_bootstrap_interval():
    con = uncertainty_db(HAND_VALUES, HAND_SPLITS, HAND_WEIGHTS, HAND_SIGNS)
    # replicate means of a: r1 (0.2 + 0.5 + 0.9) / 3 = 0.5333, r2 (0.4 + 0.9) / 3 = 0.4333,
    # r3 1.5 / 3 = 0.5, r4 (0.2 + 1.8) / 3 = 0.6667; r5 has no weight and no mean.
    # Sorted: 0.4333, 0.5, 0.5333, 0.6667; the q-quantile sits at position 3q (0-based):
    # 2.5%: 0.075 -> 0.4333 + 0.075 * (0.5 - 0.4333); 97.5%: 2.925 -> 0.5333 + 0.925 * 0.1333
    sorted_means = [1.3 / 3, 0.5, 1.6 / 3, 2.0 / 3]
    row = ci_row(con, "a", "test")
    assert row["value"] == pytest.approx(1.6 / 3, abs=TOL)
    low = sorted_means[0] + 0.075 * (sorted_means[1] - sorted_means[0])
    high = sorted_means[2] + 0.925 * (sorted_means[3] - sorted_means[2])
    assert row["ci_low"] == pytest.approx(low, abs=TOL)
    assert row["ci_high"] == pytest.approx(high, abs=TOL)
    assert row["ci_low"] == pytest.approx(np.percentile(sorted_means, 2.5), abs=TOL)
    assert (row["n_users"], row["n_replicates"]) == (3, 4)
    assert ci_row(con, "a", "all") == {**row, "split": "all"}


def test_hand_computed_paired_comparison():
    con = uncertainty_db(HAND_VALUES, HAND_SPLITS, HAND_WEIGHTS, HAND_SIGNS)
    row = paired_row(con, "a", "b", "test")
    assert row["mean_diff"] == pytest.approx(0.6 / 3, abs=TOL)
    assert row["win_rate"] == pytest.approx(2 / 3, abs=TOL)  # users 1 and 3; user 2 ties
    assert row["tie_rate"] == pytest.approx(1 / 3, abs=TOL)
    assert row["n_users"] == 3
    # replicate mean differences: r1 0.6 / 3 = 0.2, r2 (0.2 + 0.5) / 3, r3 0 / 3 = 0,
    # r4 (0.1 + 1.0) / 3; r5 none. Sorted: 0, 0.2, 0.2333, 0.3667.
    diffs = [0.0, 0.2, 0.7 / 3, 1.1 / 3]
    assert row["ci_low"] == pytest.approx(0.0 + 0.075 * 0.2, abs=TOL)
    assert row["ci_high"] == pytest.approx(diffs[2] + 0.925 * (diffs[3] - diffs[2]), abs=TOL)
    # T = 0.6; sign-flipped sums: r1 0.6, r2 0.4, r3 -0.4, r4 -0.6, r5 -0.4:
    # two of five reach |T|, so p = (1 + 2) / (1 + 5)
    assert row["p_value"] == pytest.approx(3 / 6, abs=TOL)
    mirrored = paired_row(con, "b", "a", "test")
    assert mirrored["mean_diff"] == pytest.approx(-row["mean_diff"], abs=TOL)
    assert (mirrored["ci_low"], mirrored["ci_high"]) == pytest.approx(
        (-row["ci_high"], -row["ci_low"]), abs=TOL
    )
    assert mirrored["p_value"] == row["p_value"]
    assert mirrored["win_rate"] == 0.0
    for model in ("a", "b"):
        same = paired_row(con, model, model, "test")
        assert (same["mean_diff"], same["ci_low"], same["ci_high"]) == (0.0, 0.0, 0.0)
        assert (same["p_value"], same["win_rate"], same["tie_rate"]) == (1.0, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# eval_metrics_ci and eval_paired on the demo database


def test_intervals_hold_the_full_data_value(db_con):
    rows = _rows(db_con, "from eval_metrics_ci")
    metrics = {
        (r["model"], r["split"], r["k"], r["metric"]): (r["value"], r["n_users"])
        for r in _rows(db_con, "from eval_metrics")
    }
    assert len(rows) == len(metrics)
    for row in rows:
        key = (row["model"], row["split"], row["k"], row["metric"])
        assert row["value"] == pytest.approx(metrics[key][0], abs=TOL), key
        assert row["n_users"] == metrics[key][1]
        assert row["n_replicates"] == N_REPLICATES
        assert row["ci_low"] - TOL <= row["value"] <= row["ci_high"] + TOL, key
    # an interval that is not degenerate: some spread where users differ
    widths = [r["ci_high"] - r["ci_low"] for r in rows if r["split"] == "test" and r["k"] == 10]
    assert max(widths) > 0.01


def test_paired_comparisons_on_the_demo(db_con):
    rows = _rows(db_con, "from eval_paired")
    models = [m for (m,) in db_con.execute("select distinct model from eval_rankings").fetchall()]
    metrics = {
        (r["model"], r["split"], r["k"], r["metric"]): r["value"]
        for r in _rows(db_con, "from eval_metrics")
    }
    assert len(rows) == len(models) ** 2 * len(metrics) / len(models)
    by_key = {(r["model_a"], r["model_b"], r["split"], r["k"], r["metric"]): r for r in rows}
    for (a, b, split, k, metric), row in by_key.items():
        if a == b:  # a model against itself
            assert (row["mean_diff"], row["ci_low"], row["ci_high"]) == (0.0, 0.0, 0.0)
            assert (row["p_value"], row["win_rate"], row["tie_rate"]) == (1.0, 0.0, 1.0)
            continue
        expected = metrics[a, split, k, metric] - metrics[b, split, k, metric]
        assert row["mean_diff"] == pytest.approx(expected, abs=TOL)
        assert row["ci_low"] - TOL <= row["mean_diff"] <= row["ci_high"] + TOL
        assert 1 / (N_REPLICATES + 1) - TOL <= row["p_value"] <= 1.0
        mirrored = by_key[b, a, split, k, metric]
        assert mirrored["p_value"] == pytest.approx(row["p_value"], abs=TOL)
        assert mirrored["ci_low"] == pytest.approx(-row["ci_high"], abs=TOL)
        loss_rate = 1 - row["win_rate"] - row["tie_rate"]
        assert mirrored["win_rate"] == pytest.approx(loss_rate, abs=TOL)


def test_intervals_and_p_value_match_numpy(db_con):
    """One series and one pair recomputed from the per-user values and the resampling table."""
    model_a, model_b = (
        m
        for (m,) in db_con.execute(
            "select distinct model from eval_rankings order by model limit 2"
        ).fetchall()
    )
    values = {
        (model, user): value
        for model, user, value in db_con.execute(
            "select model, user_id, value from eval_user_metrics "
            "where split = 'test' and k = 10 and metric = 'ndcg'"
        ).fetchall()
    }
    users = sorted({user for _, user in values})
    resamples = db_con.execute(
        "select replicate, user_id, weight, sign from int_resampling_weights "
        "where user_id in (select unnest(?)) order by replicate, user_id",
        [users],
    ).fetchall()
    weights = np.array([w for _, _, w, _ in resamples], dtype=float).reshape(-1, len(users))
    signs = np.array([s for *_, s in resamples], dtype=float).reshape(-1, len(users))
    a = np.array([values[model_a, u] for u in users])
    b = np.array([values[model_b, u] for u in users])

    means = weights @ a / weights.sum(axis=1)
    row = ci_row(db_con, model_a, "test")
    assert row["ci_low"] == pytest.approx(np.percentile(means, 2.5), abs=TOL)
    assert row["ci_high"] == pytest.approx(np.percentile(means, 97.5), abs=TOL)

    d = a - b
    row = paired_row(db_con, model_a, model_b, "test")
    diff_means = weights @ d / weights.sum(axis=1)
    assert row["ci_low"] == pytest.approx(np.percentile(diff_means, 2.5), abs=TOL)
    assert row["ci_high"] == pytest.approx(np.percentile(diff_means, 97.5), abs=TOL)
    flipped = np.abs(signs @ d)
    p_value = (1 + np.count_nonzero(flipped >= abs(d.sum()) - 1e-9)) / (1 + len(flipped))
    assert row["p_value"] == pytest.approx(p_value, abs=TOL)
    assert row["win_rate"] == pytest.approx(np.mean(d > 1e-9), abs=TOL)


def test_a_model_beats_a_much_worse_one(built_db):
    """Popularity against a ranking that puts every relevant candidate last, on the demo."""
    con = duckdb.connect(config={"threads": "2"})
    create_macros(con)
    con.execute(f"attach '{built_db}' as demo (read_only)")
    for table in ("eval_ground_truth", "int_eval_cutoffs", "int_ideal_dcg"):
        con.execute(f"create table {table} as select * from demo.{table}")
    con.execute("create table int_resampling_weights as from demo.int_resampling_weights")
    con.execute(
        "create table eval_rankings as "
        "select * from demo.eval_rankings where model = 'popularity' "
        "union all "
        "select 'worst', user_id, rank, video_id, -rank from ("
        "    select user_id, video_id, row_number() over ("
        "        partition by user_id order by is_relevant, video_id)::integer as rank"
        "    from eval_ground_truth) where rank <= 100"
    )
    for name in (
        "eval_user_relevance",
        "eval_hits",
        "eval_user_metrics",
        "eval_resampled_sums",
        "eval_paired",
    ):
        con.execute(f"create view {name} as {_body('eval', name)}")
        if name == "eval_user_metrics":
            con.execute(METRICS_ONLY_USER_VALUES)
    row = paired_row(con, "popularity", "worst", "test")
    assert row["mean_diff"] > 0.1
    assert row["ci_low"] > 0
    assert row["win_rate"] > 0.5
    assert row["p_value"] == pytest.approx(1 / (N_REPLICATES + 1), abs=TOL)
    k_rows = _rows(con, "from eval_paired where model_a = 'popularity' and model_b = 'worst'")
    assert all(r["p_value"] < 0.01 for r in k_rows if r["metric"] in ("ndcg", "hit_rate"))


# ---------------------------------------------------------------------------------------------
# eval_beyond_accuracy against numpy


def reference_beyond_accuracy(con) -> dict[tuple[str, str, int, str], float]:
    """(source, model, k, metric) -> value, from the formulas of eval_beyond_accuracy."""
    cutoffs = [k for (k,) in con.execute("select k from int_eval_cutoffs order by k").fetchall()]
    n_train_users = con.execute(
        "select count(*) from int_user_index where n_train_videos > 0"
    ).fetchone()[0]
    facts = {
        video: (percentile, n_users, category, duration)
        for video, percentile, n_users, category, duration in con.execute(
            "select p.video_id, p.popularity_percentile, p.n_users, c.first_level_category_id, "
            "c.video_duration_ms from feat_video_popularity as p "
            "left join feat_video_content as c using (video_id)"
        ).fetchall()
    }
    catalogues = {
        "recommendations": [
            v for (v,) in con.execute("select video_id from int_item_index").fetchall()
        ],
        "eval_rankings": [
            v for (v,) in con.execute("select distinct video_id from eval_ground_truth").fetchall()
        ],
    }
    out = {}
    for source in ("recommendations", "eval_rankings"):
        lists: dict[tuple[str, int], list[int]] = defaultdict(list)
        for model, user, video in con.execute(
            f"select model, user_id, video_id from {source} order by model, user_id, rank"
        ).fetchall():
            lists[model, user].append(video)
        catalogue = catalogues[source]
        durations = [facts[v][3] for v in catalogue if facts[v][3] is not None]
        catalogue_duration = float(np.mean(durations))
        for model in sorted({m for m, _ in lists}):
            for k in cutoffs:
                tops = [videos[:k] for (m, _), videos in lists.items() if m == model]
                exposure = {v: 0 for v in catalogue}
                for top in tops:
                    for v in top:
                        exposure[v] += 1
                counts = np.array(list(exposure.values()), dtype=float)
                # Gini as the mean absolute difference over all pairs, / (2 * mean)
                gini = np.abs(counts[:, None] - counts[None, :]).sum() / (
                    2 * len(counts) ** 2 * counts.mean()
                )
                novelty = [
                    np.mean([-math.log2((facts[v][1] + 1) / (n_train_users + 2)) for v in top])
                    for top in tops
                ]
                categories = [
                    len({facts[v][2] for v in top if facts[v][2] is not None}) for top in tops
                ]
                mean_duration = np.mean(
                    [np.mean([facts[v][3] for v in top if facts[v][3] is not None]) for top in tops]
                )
                values = {
                    "coverage": np.count_nonzero(counts) / len(catalogue),
                    "gini": gini,
                    "popularity_percentile": np.mean(
                        [np.mean([facts[v][0] for v in top]) for top in tops]
                    ),
                    "novelty_bits": np.mean(novelty),
                    "n_categories": np.mean(categories),
                    "mean_duration_ms": mean_duration,
                    "catalogue_duration_ms": catalogue_duration,
                    "duration_ratio": mean_duration / catalogue_duration,
                }
                for metric, value in values.items():
                    out[source, model, k, metric] = float(value)
    return out


def test_beyond_accuracy_matches_an_independent_implementation(db_con):
    expected = reference_beyond_accuracy(db_con)
    rows = _rows(db_con, "from eval_beyond_accuracy")
    actual = {(r["source"], r["model"], r["k"], r["metric"]): r["value"] for r in rows}
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key
    n_users = {(r["source"], r["model"]): r["n_users"] for r in rows}
    big_users = db_con.execute("select count(*) from int_user_index").fetchone()[0]
    small_users = db_con.execute("select count(distinct user_id) from eval_ground_truth")
    n_small = small_users.fetchone()[0]
    for (source, _), n in n_users.items():
        assert n == (big_users if source == "recommendations" else n_small)


# ---------------------------------------------------------------------------------------------
# eval_segment_metrics


def test_segments_add_up_to_the_metrics(db_con):
    metrics = {
        (r["model"], r["split"], r["k"], r["metric"]): (r["value"], r["n_users"])
        for r in _rows(db_con, "from eval_metrics")
    }
    totals: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0])
    segments = defaultdict(set)
    for row in _rows(db_con, "from eval_segment_metrics"):
        key = (row["model"], row["split"], row["k"], row["metric"], row["segment_kind"])
        totals[key][0] += row["value"] * row["n_users"]
        totals[key][1] += row["n_users"]
        segments[row["segment_kind"]].add(row["segment"])
    assert set(segments) == {"user_active_degree", "activity_quartile"}
    assert len(segments["activity_quartile"]) == 4
    assert len(totals) == 2 * len(metrics)
    for (model, split, k, metric, kind), (weighted, n_users) in totals.items():
        value, expected_users = metrics[model, split, k, metric]
        assert n_users == expected_users, (model, split, k, metric, kind)
        assert weighted / n_users == pytest.approx(value, abs=TOL)


def test_activity_quartiles_are_equal_count_groups_by_training_views(db_con):
    users = db_con.execute(
        "select r.user_id, coalesce(a.n_views, 0), r.n_relevant > 0 from eval_user_relevance r "
        "left join feat_user_activity a using (user_id)"
    ).fetchall()
    ordered = sorted(users, key=lambda u: (u[1], u[0]))
    size, extra = divmod(len(ordered), 4)
    expected = {}
    start = 0
    for quartile in range(1, 5):
        group = ordered[start : start + size + (1 if quartile <= extra else 0)]
        start += len(group)
        label = f"q{quartile}: {group[0][1]}-{group[-1][1]} views"
        expected[label] = sum(1 for _, _, scored in group if scored)
    rows = db_con.execute(
        "select segment, n_users from eval_segment_metrics where segment_kind = "
        "'activity_quartile' and split = 'all' and k = 10 and metric = 'ndcg' "
        "and model = 'popularity'"
    ).fetchall()
    assert dict(rows) == expected


# ---------------------------------------------------------------------------------------------
# the duckdb command-line program reads every new view


def test_duckdb_cli_reads_the_new_views(built_db, db_con):
    exe = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")
    assert exe, "the duckdb program (duckdb-cli package) is not installed"
    queries = {
        "eval_metrics_ci": "select count(*), count(ci_low) from eval_metrics_ci",
        "eval_paired": "select count(*), count(p_value) from eval_paired",
        "eval_beyond_accuracy": "select count(*), count(distinct metric) from eval_beyond_accuracy",
        "eval_segment_metrics": "select count(*), sum(n_users) from eval_segment_metrics",
    }
    assert set(queries) == set(NEW_VIEWS)
    for view, query in queries.items():
        result = subprocess.run(
            [exe, "-readonly", str(built_db), "-csv", "-noheader", "-c", query],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        (values,) = list(csv.reader(io.StringIO(result.stdout)))
        expected = db_con.execute(query).fetchone()
        assert tuple(int(v) for v in values) == expected, view
        assert expected[0] > 0 and expected[1] > 0
