"""The metric views eval_hits -> eval_user_metrics -> eval_metrics.

Small cases run the real SQL files on an in-memory DuckDB holding literal eval_rankings and
eval_ground_truth; the last tests compare the views of the built demo database with an
independent Python implementation of the project's formulas:

- binary relevance; R = the user's relevant videos among its candidates; users with R = 0 are
  left out, every value is a mean over users;
- precision@k = hits in top k / k;  recall@k = hits / R;
- AP@k = (sum over hit ranks i <= k of precision@i) / min(R, k);
- NDCG@k = DCG@k / ideal DCG of min(R, k) hits, gain 1, discount 1 / log2(rank + 1);
- MRR@k = 1 / rank of the first hit within k (0 if none); hit_rate@k = 1 if any hit in top k.
"""

from __future__ import annotations

import math
from collections import defaultdict

import duckdb
import numpy as np
import pytest

from kuairec_db.stages import SQL_DIR, create_macros, select_body

METRICS = ("precision", "recall", "map", "ndcg", "hit_rate", "mrr")
TOL = 1e-9


# ---------------------------------------------------------------------------------------------
# Helpers


def _body(folder: str, name: str) -> str:
    return select_body((SQL_DIR / folder / f"{name}.sql").read_text(encoding="utf-8"))


def metrics_db(
    ground_truth: dict[int, tuple[str, list[int], set[int]]],
    rankings: dict[tuple[str, int], list[int]],
    eval_k: list[int],
) -> duckdb.DuckDBPyConnection:
    """In-memory database with the metric views over literal inputs.

    ground_truth: user -> (split, candidate videos, relevant videos);
    rankings: (model, user) -> videos in rank order (rank 1 first).
    """
    con = duckdb.connect(config={"threads": "1"})
    con.execute("set variable eval_k = ?", [eval_k])
    create_macros(con)
    # the columns of the public view eval_ground_truth; the metrics read four of them
    con.execute(
        "create table eval_ground_truth (user_id integer, video_id integer, watch_ratio double, "
        "is_relevant boolean, split varchar, relevance_threshold double, video_duration_ms bigint)"
    )
    gt_rows = [
        (user, video, video in relevant, split)
        for user, (split, candidates, relevant) in ground_truth.items()
        for video in candidates
    ]
    con.executemany(
        "insert into eval_ground_truth (user_id, video_id, is_relevant, split) values (?, ?, ?, ?)",
        gt_rows,
    )
    con.execute(
        "create table eval_rankings "
        "(model varchar, user_id integer, rank integer, video_id integer, score double)"
    )
    ranked_rows = [
        (model, user, rank, video, -float(rank))
        for (model, user), videos in rankings.items()
        for rank, video in enumerate(videos, start=1)
    ]
    if ranked_rows:
        con.executemany("insert into eval_rankings values (?, ?, ?, ?, ?)", ranked_rows)
    for name in ("int_eval_cutoffs", "int_ideal_dcg"):
        con.execute(f"create table {name} as {_body('intermediate', name)}")
    for name in ("eval_user_relevance", "eval_hits", "eval_user_metrics", "eval_metrics"):
        con.execute(f"create view {name} as {_body('eval', name)}")
    return con


def user_metrics(con) -> dict[tuple[str, int, int, str], float]:
    """(model, user, k, metric) -> value, from eval_user_metrics."""
    rows = con.execute("select model, user_id, k, metric, value from eval_user_metrics").fetchall()
    out = {}
    for model, user, k, metric, value in rows:
        key = (model, user, k, metric)
        assert key not in out, f"two rows for {key}"
        out[key] = value
    return out


def mean_metrics(con) -> dict[tuple[str, str, int, str], tuple[float, int]]:
    """(model, split, k, metric) -> (value, n_users), from eval_metrics."""
    rows = con.execute("select model, split, k, metric, value, n_users from eval_metrics")
    return {(m, s, k, metric): (v, n) for m, s, k, metric, v, n in rows.fetchall()}


def assert_close(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, abs=TOL), key


# ---------------------------------------------------------------------------------------------
# (a) perfect lists, (b) no hits


def test_perfect_ranking_scores_one():
    # user 1: relevant {1, 2, 3} among 8 candidates, ranked first
    con = metrics_db(
        {1: ("test", list(range(1, 9)), {1, 2, 3})},
        {("m", 1): [1, 2, 3, 4, 5, 6, 7, 8]},
        eval_k=[1, 2, 3, 5, 8],
    )
    values = user_metrics(con)
    for k in (1, 2, 3, 5, 8):
        for metric in ("map", "ndcg", "hit_rate", "mrr"):
            assert values["m", 1, k, metric] == pytest.approx(1.0, abs=TOL), (k, metric)
    for k in (1, 2, 3):  # k <= R
        assert values["m", 1, k, "precision"] == pytest.approx(1.0, abs=TOL)
    for k in (3, 5, 8):  # R <= k
        assert values["m", 1, k, "recall"] == pytest.approx(1.0, abs=TOL)
    assert values["m", 1, 5, "precision"] == pytest.approx(3 / 5, abs=TOL)
    assert values["m", 1, 2, "recall"] == pytest.approx(2 / 3, abs=TOL)
    means = mean_metrics(con)
    assert means["m", "all", 3, "ndcg"] == (pytest.approx(1.0, abs=TOL), 1)


def test_no_hits_score_zero():
    con = metrics_db(
        {1: ("test", list(range(1, 9)), {7, 8}), 2: ("tune", [1, 2, 3], {3})},
        {("m", 1): [1, 2, 3, 4, 5, 6], ("m", 2): [1, 2]},
        eval_k=[1, 3, 6],
    )
    values = user_metrics(con)
    assert len(values) == 2 * 3 * len(METRICS)
    assert all(v == 0.0 for v in values.values()), values
    means = mean_metrics(con)
    assert {v for v, _ in means.values()} == {0.0}
    assert means["m", "all", 6, "recall"] == (0.0, 2)


# ---------------------------------------------------------------------------------------------
# (c) hand-computed cases


def test_hand_computed_user_metrics():
    # user 1: relevant {A, C, F} = {1, 3, 6}, ranking A B C D E F G H = 1 .. 8
    # user 2: relevant {13, 17}, ranking 11 .. 18: first hit at rank 3
    # user 3: relevant {21, 22, 23, 24, 25} (R = 5 > k = 3), ranking 21, 30, 22, 31, ...
    con = metrics_db(
        {
            1: ("test", list(range(1, 9)), {1, 3, 6}),
            2: ("test", list(range(11, 19)), {13, 17}),
            3: ("tune", list(range(21, 26)) + list(range(30, 34)), {21, 22, 23, 24, 25}),
        },
        {
            ("m", 1): list(range(1, 9)),
            ("m", 2): list(range(11, 19)),
            ("m", 3): [21, 30, 22, 31, 32, 33, 23, 24],
        },
        eval_k=[1, 3, 5, 8],
    )
    values = user_metrics(con)
    log2 = math.log2
    expected = {
        # user 1, k = 5: hits at ranks 1 and 3
        (1, 5, "precision"): 2 / 5,
        (1, 5, "recall"): 2 / 3,
        (1, 5, "map"): (1 / 1 + 2 / 3) / 3,  # min(R, k) = 3
        (1, 5, "ndcg"): (1 + 1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4)),
        (1, 5, "mrr"): 1.0,
        (1, 5, "hit_rate"): 1.0,
        # user 1, k = 8: hits at ranks 1, 3 and 6
        (1, 8, "precision"): 3 / 8,
        (1, 8, "recall"): 1.0,
        (1, 8, "map"): (1 / 1 + 2 / 3 + 3 / 6) / 3,
        (1, 8, "ndcg"): (1 + 1 / log2(4) + 1 / log2(7)) / (1 + 1 / log2(3) + 1 / log2(4)),
        # user 1, k = 1: one hit at rank 1, min(R, k) = 1
        (1, 1, "precision"): 1.0,
        (1, 1, "recall"): 1 / 3,
        (1, 1, "map"): 1.0,
        (1, 1, "ndcg"): 1.0,
        # user 2, k = 5: one hit, at rank 3
        (2, 5, "precision"): 1 / 5,
        (2, 5, "recall"): 1 / 2,
        (2, 5, "map"): (1 / 3) / 2,
        (2, 5, "ndcg"): (1 / log2(4)) / (1 + 1 / log2(3)),
        (2, 5, "mrr"): 1 / 3,
        (2, 5, "hit_rate"): 1.0,
        # user 2, k = 1: nothing yet
        **{(2, 1, metric): 0.0 for metric in METRICS},
        # user 2, k = 8: hits at 3 and 7
        (2, 8, "map"): (1 / 3 + 2 / 7) / 2,
        (2, 8, "ndcg"): (1 / log2(4) + 1 / log2(8)) / (1 + 1 / log2(3)),
        (2, 8, "mrr"): 1 / 3,
        # user 3, k = 3: hits at 1 and 3, R = 5, so the normaliser is min(R, k) = 3
        (3, 3, "precision"): 2 / 3,
        (3, 3, "recall"): 2 / 5,
        (3, 3, "map"): (1 / 1 + 2 / 3) / 3,
        (3, 3, "ndcg"): (1 + 1 / log2(4)) / (1 + 1 / log2(3) + 1 / log2(4)),
        (3, 3, "mrr"): 1.0,
        # user 3, k = 8: hits at 1, 3, 7, 8 of R = 5; min(R, k) = 5
        (3, 8, "recall"): 4 / 5,
        (3, 8, "map"): (1 + 2 / 3 + 3 / 7 + 4 / 8) / 5,
        (3, 8, "ndcg"): (1 + 1 / log2(4) + 1 / log2(8) + 1 / log2(9))
        / sum(1 / log2(i + 1) for i in range(1, 6)),
    }
    for (user, k, metric), value in expected.items():
        assert values["m", user, k, metric] == pytest.approx(value, abs=TOL), (user, k, metric)
    # the means: users 1 and 2 are 'test', user 3 'tune'
    means = mean_metrics(con)
    assert means["m", "test", 5, "mrr"] == (pytest.approx((1 + 1 / 3) / 2, abs=TOL), 2)
    assert means["m", "tune", 5, "mrr"] == (pytest.approx(1.0, abs=TOL), 1)
    assert means["m", "all", 5, "mrr"] == (pytest.approx((1 + 1 / 3 + 1) / 3, abs=TOL), 3)


def test_hits_relation():
    con = metrics_db(
        {1: ("test", [1, 2, 3, 4], {2, 4})},
        {("m", 1): [1, 2, 9, 4]},  # 9 is not a candidate of user 1: not relevant
        eval_k=[4],
    )
    rows = con.execute(
        "select rank, video_id, is_relevant, n_hits_so_far from eval_hits order by rank"
    ).fetchall()
    assert rows == [(1, 1, False, 0), (2, 2, True, 1), (3, 9, False, 1), (4, 4, True, 2)]


# ---------------------------------------------------------------------------------------------
# (d) users without relevant videos, (e) users a model did not rank, (f) the 'all' split


def test_users_without_relevant_videos_are_left_out():
    con = metrics_db(
        {1: ("test", [1, 2, 3], {1}), 2: ("test", [4, 5, 6], set()), 3: ("tune", [7], set())},
        {("m", 1): [1, 2, 3], ("m", 2): [4, 5, 6], ("m", 3): [7]},
        eval_k=[1, 3],
    )
    assert {key[1] for key in user_metrics(con)} == {1}
    means = mean_metrics(con)
    assert {n for _, n in means.values()} == {1}
    assert ("m", "tune", 1, "precision") not in means  # the split has no user with R > 0
    assert means["m", "test", 3, "precision"] == (pytest.approx(1 / 3, abs=TOL), 1)


def test_a_user_the_model_did_not_rank_counts_as_zero():
    ground_truth = {1: ("test", [1, 2, 3], {1}), 2: ("test", [4, 5, 6], {4, 5})}
    con = metrics_db(
        ground_truth,
        # model a ranks both users perfectly; model b ranks user 1 only
        {("a", 1): [1, 2, 3], ("a", 2): [4, 5, 6], ("b", 1): [1, 2, 3]},
        eval_k=[1, 3],
    )
    values = user_metrics(con)
    for k in (1, 3):
        for metric in METRICS:
            assert values["b", 2, k, metric] == 0.0
    means = mean_metrics(con)
    assert means["a", "test", 3, "recall"] == (pytest.approx(1.0, abs=TOL), 2)
    assert means["b", "test", 3, "recall"] == (pytest.approx(0.5, abs=TOL), 2)
    assert means["b", "all", 1, "mrr"] == (pytest.approx(0.5, abs=TOL), 2)


def test_all_split_is_the_mean_over_both_splits_users():
    # test: users 1, 2 (hit rate@1: 1, 0); tune: users 3, 4, 5 (1, 1, 0); 6 has R = 0
    ground_truth = {
        1: ("test", [1, 2], {1}),
        2: ("test", [1, 2], {2}),
        3: ("tune", [1, 2], {1}),
        4: ("tune", [1, 2], {1, 2}),
        5: ("tune", [1, 2], {2}),
        6: ("tune", [1, 2], set()),
    }
    rankings = {("m", u): [1, 2] for u in ground_truth}
    con = metrics_db(ground_truth, rankings, eval_k=[1, 2])
    means = mean_metrics(con)
    assert means["m", "test", 1, "hit_rate"] == (pytest.approx(1 / 2, abs=TOL), 2)
    assert means["m", "tune", 1, "hit_rate"] == (pytest.approx(2 / 3, abs=TOL), 3)
    assert means["m", "all", 1, "hit_rate"] == (pytest.approx(3 / 5, abs=TOL), 5)
    for k in (1, 2):
        for metric in METRICS:
            test_value, n_test = means["m", "test", k, metric]
            tune_value, n_tune = means["m", "tune", k, metric]
            all_value, n_all = means["m", "all", k, metric]
            assert n_all == n_test + n_tune == 5
            expected = (test_value * n_test + tune_value * n_tune) / n_all
            assert all_value == pytest.approx(expected, abs=TOL), (k, metric)
    assert {key[1] for key in means} == {"test", "tune", "all"}


# ---------------------------------------------------------------------------------------------
# (g) an independent implementation against the built demo database


def reference_user_metrics(rankings, ground_truth, cutoffs):
    """(model, user, k, metric) -> value from the formulas in the module docstring.

    rankings: rows (model, user_id, rank, video_id); ground_truth: rows (user_id, video_id,
    is_relevant, split).
    """
    relevant: dict[int, set[int]] = defaultdict(set)
    split_of: dict[int, str] = {}
    for user, video, is_relevant, split in ground_truth:
        split_of[user] = split
        if is_relevant:
            relevant[user].add(video)
    ranked: dict[tuple[str, int], dict[int, int]] = defaultdict(dict)  # rank -> video
    for model, user, rank, video in rankings:
        assert rank not in ranked[model, user], "a rank given twice"
        ranked[model, user][rank] = video
    models = sorted({model for model, *_ in rankings})
    out = {}
    for model in models:
        for user, rel in relevant.items():
            n_rel = len(rel)
            by_rank = ranked.get((model, user), {})
            hit_ranks = np.array(sorted(r for r, v in by_rank.items() if v in rel), dtype=float)
            for k in cutoffs:
                ranks_k = hit_ranks[hit_ranks <= k]
                n_hits = len(ranks_k)
                precision_at_hits = np.arange(1, n_hits + 1) / ranks_k
                ideal = np.sum(1.0 / np.log2(np.arange(1, min(n_rel, k) + 1) + 1.0))
                values = {
                    "precision": n_hits / k,
                    "recall": n_hits / n_rel,
                    "map": precision_at_hits.sum() / min(n_rel, k),
                    "ndcg": np.sum(1.0 / np.log2(ranks_k + 1.0)) / ideal,
                    "hit_rate": 1.0 if n_hits else 0.0,
                    "mrr": 1.0 / ranks_k[0] if n_hits else 0.0,
                }
                for metric, value in values.items():
                    out[model, user, k, metric] = float(value)
    return out, split_of


def reference_means(per_user, split_of):
    """(model, split, k, metric) -> (mean, n_users) for each split and 'all'."""
    groups: dict[tuple, list[float]] = defaultdict(list)
    for (model, user, k, metric), value in per_user.items():
        groups[model, split_of[user], k, metric].append(value)
        groups[model, "all", k, metric].append(value)
    return {key: (float(np.mean(v)), len(v)) for key, v in groups.items()}


@pytest.fixture()
def demo_metrics(db_con):
    rankings = db_con.execute("select model, user_id, rank, video_id from eval_rankings").fetchall()
    ground_truth = db_con.execute(
        "select user_id, video_id, is_relevant, split from eval_ground_truth"
    ).fetchall()
    cutoffs = [k for (k,) in db_con.execute("select k from int_eval_cutoffs").fetchall()]
    return rankings, ground_truth, cutoffs


def test_demo_database_has_something_to_check(db_con, demo_metrics):
    rankings, ground_truth, cutoffs = demo_metrics
    assert cutoffs == [5, 10, 20, 50]
    assert {m for m, *_ in rankings} >= {"popularity", "als"}
    assert any(r for *_, r, _ in ground_truth) and not all(r for *_, r, _ in ground_truth)
    assert {s for *_, s in ground_truth} == {"tune", "test"}


def test_user_metrics_match_an_independent_implementation(db_con, demo_metrics):
    expected, _ = reference_user_metrics(*demo_metrics)
    actual = user_metrics(db_con)
    assert len(actual) == len(expected)
    assert_close(actual, expected)


def test_mean_metrics_match_an_independent_implementation(db_con, demo_metrics):
    per_user, split_of = reference_user_metrics(*demo_metrics)
    expected = reference_means(per_user, split_of)
    actual = mean_metrics(db_con)
    assert set(actual) == set(expected)
    for key, (value, n_users) in expected.items():
        assert actual[key][1] == n_users, key
        assert actual[key][0] == pytest.approx(value, abs=TOL), key


def test_user_metrics_splits_come_from_the_ground_truth(db_con, demo_metrics):
    _, split_of = reference_user_metrics(*demo_metrics)
    rows = db_con.execute("select distinct user_id, split from eval_user_metrics").fetchall()
    assert rows and all(split_of[user] == split for user, split in rows)
