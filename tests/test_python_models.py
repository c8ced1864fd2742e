"""The Python recommenders bpr, itemknn and ease, run through the real hook interface.

Each toy case builds a small DuckDB with the tables a ModelContext reads (int_user_index,
int_item_index, int_train_interactions, int_ground_truth) and the contract tables, then calls
``kuairec_db.hooks.run_model`` exactly as the build does and reads the rows it wrote:

- a checkerboard whose right answer is known: two groups of users who each watched only their
  group's videos, every user missing one video of its own group; that video must come first,
  above every video of the other group, in ``recommendations`` and in ``eval_rankings``;
- ease against two independent dense numpy computations (Steck's formula with a plain matrix
  inverse, and one ridge regression per video, which is the problem the formula solves);
- itemknn's scores of evaluation candidates against implicit's own ``recommend(items=...)``;
- the shared top-N helper against a plain sort; determinism of every model (two runs, the same
  rows); and, on the demo database, every model above the random ranking on NDCG@10.
"""

from __future__ import annotations

import warnings

import duckdb
import numpy as np
import pytest
import scipy.sparse as sp

from kuairec_db import hooks
from kuairec_db.modelkit import rank_users, top_n_allowed
from kuairec_db.stages import CONTRACT_TABLES

PYTHON_MODELS = ("bpr", "itemknn", "ease")

# Settings for toy matrices: tiny factor models, enough epochs to separate two groups.
TOY_SETTINGS = {
    "bpr": {"factors": 8, "learning_rate": 0.05, "iterations": 200},
    "itemknn": {"K": 50},
    "ease": {"l2": 1.0},
}


# ---------------------------------------------------------------------------------------------
# Helpers


def toy_db(
    train: list[tuple[int, int, float]],
    truth: list[tuple[int, int, bool]],
    videos: list[int],
    top_n: int,
) -> duckdb.DuckDBPyConnection:
    """In-memory database holding what a ModelContext reads and the empty contract tables.

    train: (user_id, video_id, confidence); truth: (user_id, video_id, is_relevant) pairs of
    the small matrix; videos: the catalogue. Users are the users of ``train``.
    """
    con = duckdb.connect(config={"threads": "1"})
    con.execute("set variable top_n = ?", [top_n])
    con.execute(
        """
        create table int_train_interactions (
            user_id integer, video_id integer, confidence double
        )
        """
    )
    con.executemany("insert into int_train_interactions values (?, ?, ?)", train)
    con.execute(
        "create table int_ground_truth (user_id integer, video_id integer, is_relevant boolean, "
        "split varchar)"
    )
    con.executemany(
        "insert into int_ground_truth values (?, ?, ?, 'test')", [tuple(row) for row in truth]
    )
    con.execute("create table videos (video_id integer)")
    con.executemany("insert into videos values (?)", [(v,) for v in videos])
    con.execute(
        """
        create table int_item_index as
        select video_id, (row_number() over (order by video_id) - 1)::integer as item_index
        from videos
        """
    )
    con.execute(
        """
        create table int_user_index as
        select
            user_id,
            (row_number() over (order by user_id) - 1)::integer as user_index,
            count(*) as n_train_videos
        from int_train_interactions
        group by user_id
        """
    )
    for table, columns in CONTRACT_TABLES.items():
        con.execute(f"create table {table} ({columns})")
    return con


def run(con, name: str, settings: dict | None = None, threads: int = 2):
    """hooks.run_model as the build calls it, with the toy settings and the db's top_n."""
    model = hooks.discover()[name]
    top_n = con.execute("select getvariable('top_n')").fetchone()[0]
    merged = {**hooks.model_defaults(model), **TOY_SETTINGS[name], **(settings or {})}
    return hooks.run_model(con, model, merged, top_n, threads, 42)


def ranked(con, table: str, name: str) -> dict[int, list[int]]:
    """user_id -> video ids in rank order."""
    lists: dict[int, list[int]] = {}
    rows = con.execute(
        f"select user_id, video_id from {table} where model = ? order by user_id, rank", [name]
    ).fetchall()
    for user, video in rows:
        lists.setdefault(user, []).append(video)
    return lists


def all_rows(con, name: str) -> dict[str, list[tuple]]:
    return {
        table: con.execute(f"select * from {table} where model = ? order by all", [name]).fetchall()
        for table in CONTRACT_TABLES
    }


def checkerboard():
    """Two groups of 12 users and 8 videos each. User u of a group watched all its group's
    videos except video number u % 8 of the group (its held-out video). Ids are not
    positions: users 1000 + ..., videos 500 + 7 * k."""
    group_videos = {0: [500 + 7 * k for k in range(8)], 1: [500 + 7 * k for k in range(8, 16)]}
    train, truth, held_out, group_of = [], [], {}, {}
    for group in (0, 1):
        for u in range(12):
            user = 1000 + 31 * (group * 12 + u)
            own = group_videos[group]
            held_out[user] = own[u % 8]
            group_of[user] = group
            for video in own:
                if video != held_out[user]:
                    train.append((user, video, 1.0 + (u + video) % 3))
            # candidates: the held-out video and every video of the other group
            truth.append((user, held_out[user], True))
            for video in group_videos[1 - group]:
                truth.append((user, video, False))
    videos = group_videos[0] + group_videos[1]
    return train, truth, videos, held_out, group_of, group_videos


def random_case(seed: int, n_users: int = 40, n_items: int = 25, density: float = 0.3):
    rng = np.random.default_rng(seed)
    seen = rng.random((n_users, n_items)) < density
    confidence = np.round(1 + 3 * rng.random((n_users, n_items)), 3)
    users = [2000 + 3 * u for u in range(n_users)]
    videos = [90 + 11 * i for i in range(n_items)]
    train = [
        (users[u], videos[i], float(confidence[u, i]))
        for u in range(n_users)
        for i in range(n_items)
        if seen[u, i]
    ]
    # every second user is a small-matrix user whose candidates are its unseen videos
    truth = [
        (users[u], videos[i], bool((u + i) % 4 == 0))
        for u in range(0, n_users, 2)
        for i in range(n_items)
        if not seen[u, i]
    ]
    return train, truth, videos, users, seen, confidence


# ---------------------------------------------------------------------------------------------
# The checkerboard


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("bpr", {}),
        ("itemknn", {"weighting": "bm25"}),
        ("itemknn", {"weighting": "cosine"}),
        ("ease", {}),
        ("ease", {"binary": False}),
        ("ease", {"dtype": "float64"}),
    ],
)
def test_checkerboard_recommends_the_held_out_video_first(name, settings):
    train, truth, videos, held_out, group_of, group_videos = checkerboard()
    con = toy_db(train, truth, videos, top_n=10)
    run(con, name, settings)
    for table in ("recommendations", "eval_rankings"):
        lists = ranked(con, table, name)
        assert set(lists) == set(held_out), table
        for user, videos_ranked in lists.items():
            other = set(group_videos[1 - group_of[user]])
            assert videos_ranked[0] == held_out[user], (table, user, videos_ranked)
            # the held-out video is the user's only unseen video of its group
            assert set(videos_ranked[1:]) <= other
            assert len(videos_ranked) == 9  # 1 + 8 of the other group, below top_n = 10


def test_bpr_writes_factors_whose_dot_product_is_the_score():
    train, truth, videos, held_out, *_ = checkerboard()
    con = toy_db(train, truth, videos, top_n=10)
    run(con, "bpr")
    factors = con.execute(
        """
        select r.user_id, r.video_id, r.score, u.factors, i.factors
        from recommendations as r
        inner join model_user_factors as u on r.model = u.model and r.user_id = u.user_id
        inner join model_item_factors as i on r.model = i.model and r.video_id = i.video_id
        where r.model = 'bpr'
        """
    ).fetchall()
    assert len(factors) == 9 * len(held_out)
    for _user, _video, score, user_vector, item_vector in factors:
        assert len(user_vector) == len(item_vector) == 8 + 1  # factors + the bias column
        assert user_vector[-1] == 1.0
        assert np.dot(user_vector, item_vector) == pytest.approx(score, rel=1e-5, abs=1e-6)
    counts = con.execute(
        "select (select count(*) from model_user_factors where model = 'bpr'),"
        " (select count(*) from model_item_factors where model = 'bpr')"
    ).fetchone()
    assert counts == (len(held_out), len(videos))


def test_bpr_on_several_threads_is_reproducible_and_still_learns():
    """fit_threads = 2: user shards merged in shard order give the same rows on every run,
    and, like the one-thread fit, rank each user's held-out video above the other group's."""
    train, truth, videos, held_out, *_ = checkerboard()
    runs = []
    for _ in range(3):
        con = toy_db(train, truth, videos, top_n=10)
        run(con, "bpr", {"fit_threads": 2})
        runs.append(all_rows(con, "bpr"))
        first = {user: ids[0] for user, ids in ranked(con, "eval_rankings", "bpr").items()}
        assert first == held_out
    assert runs[0] == runs[1] == runs[2]
    assert runs[0]["recommendations"] and runs[0]["model_item_factors"]
    # another thread count shards the users otherwise: other factors, as documented
    con = toy_db(train, truth, videos, top_n=10)
    run(con, "bpr", {"fit_threads": 3})
    assert all_rows(con, "bpr")["model_user_factors"] != runs[0]["model_user_factors"]


# ---------------------------------------------------------------------------------------------
# EASE against independent dense computations


def ease_by_inverse(x: np.ndarray, l2: float) -> np.ndarray:
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    return np.eye(x.shape[1]) - p / np.diag(p)[None, :]


def ease_by_ridge(x: np.ndarray, l2: float) -> np.ndarray:
    """Column j: the ridge regression of video j on every other video, b_jj = 0."""
    n = x.shape[1]
    weights = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        a = x[:, others]
        weights[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(n - 1), a.T @ x[:, j])
    return weights


@pytest.mark.parametrize("binary", [True, False])
def test_ease_scores_equal_a_direct_dense_computation(binary):
    train, truth, videos, users, seen, confidence = random_case(seed=3)
    # the context reads confidence as float32
    x = np.where(seen, 1.0 if binary else confidence.astype(np.float32), 0.0).astype(np.float64)
    l2 = 2.5
    expected_weights = ease_by_ridge(x, l2)
    np.testing.assert_allclose(ease_by_inverse(x, l2), expected_weights, atol=1e-10)
    expected = x @ expected_weights

    con = toy_db(train, truth, videos, top_n=6)
    run(con, "ease", {"l2": l2, "binary": binary, "dtype": "float64"})
    user_pos = {u: k for k, u in enumerate(users)}
    video_pos = {v: k for k, v in enumerate(videos)}
    for user, videos_ranked in ranked(con, "recommendations", "ease").items():
        row = np.where(seen[user_pos[user]], -np.inf, expected[user_pos[user]])
        order = sorted(range(len(videos)), key=lambda i: (-row[i], videos[i]))[:6]
        assert videos_ranked == [videos[i] for i in order]
    written = con.execute("select user_id, video_id, score from eval_rankings").fetchall()
    assert written
    for user, video, score in written:
        assert score == pytest.approx(expected[user_pos[user], video_pos[video]], abs=1e-9)


def test_ease_float32_is_close_to_float64():
    train, truth, videos, *_ = random_case(seed=5, n_users=60, n_items=30)
    scores = {}
    for dtype in ("float32", "float64"):
        con = toy_db(train, truth, videos, top_n=30)
        run(con, "ease", {"l2": 10.0, "dtype": dtype})
        rows = con.execute("select user_id, video_id, score from eval_rankings").fetchall()
        scores[dtype] = {(u, v): s for u, v, s in rows}
    assert scores["float32"].keys() == scores["float64"].keys()
    for key, value in scores["float64"].items():
        assert scores["float32"][key] == pytest.approx(value, abs=1e-5)


def test_ease_max_items_ranks_unscored_videos_last():
    train, truth, videos, users, seen, _ = random_case(seed=9)
    n_keep = 10
    counts = seen.sum(axis=0)
    kept = set(np.argsort(-counts, kind="stable")[:n_keep].tolist())
    con = toy_db(train, truth, videos, top_n=len(videos))
    run(con, "ease", {"max_items": n_keep, "l2": 2.0})
    for table in ("recommendations", "eval_rankings"):
        for user, videos_ranked in ranked(con, table, "ease").items():
            in_kept = [videos.index(v) in kept for v in videos_ranked]
            # every scored (kept) video comes before every unscored one
            assert in_kept == sorted(in_kept, reverse=True), (table, user)
    unscored = con.execute(
        "select count(*) from recommendations where score = '-inf'::double"
    ).fetchone()[0]
    assert unscored > 0


# ---------------------------------------------------------------------------------------------
# itemknn: what implicit itself ranks


@pytest.mark.parametrize("weighting", ["bm25", "cosine"])
def test_itemknn_eval_scores_equal_implicit_recommend_on_the_candidates(weighting):
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

    train, truth, videos, users, seen, confidence = random_case(seed=11)
    con = toy_db(train, truth, videos, top_n=len(videos))
    settings = {"weighting": weighting, "K": 6, "K1": 100.0, "B": 0.8}
    run(con, "itemknn", settings)

    matrix = sp.csr_matrix(np.where(seen, confidence, 0.0).astype(np.float32))
    if weighting == "bm25":
        model = BM25Recommender(K=6, K1=100.0, B=0.8, num_threads=1)
    else:
        model = CosineRecommender(K=6, num_threads=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # implicit warns about converting its own COO matrix
        model.fit(matrix, show_progress=False)
    written = con.execute("select user_id, video_id, score from eval_rankings").fetchall()
    by_user: dict[int, dict[int, float]] = {}
    for user, video, score in written:
        by_user.setdefault(user, {})[video] = score
    assert len(by_user) == len(users) // 2
    for user, scores in by_user.items():
        u = users.index(user)
        candidates = np.flatnonzero(~seen[u])
        ids, values = model.recommend(u, matrix[u], N=len(candidates), items=candidates)
        # implicit gives unreached candidates the lowest float; they score 0 here
        expected = {videos[i]: max(float(s), 0.0) for i, s in zip(ids, values)}
        assert scores.keys() == expected.keys()
        for video, score in scores.items():
            assert score == pytest.approx(expected[video], rel=1e-6, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# The shared top-N helper, determinism


def test_top_n_allowed_matches_a_plain_sort_with_ties_to_the_smaller_column():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.1] = -np.inf
    allowed = rng.random(scores.shape) < 0.7
    allowed[0] = False
    allowed[1, :3] = True
    allowed[1, 3:] = False
    for n in (1, 5, 30, 40):
        rows, cols, values = top_n_allowed(scores, n, allowed)
        for r in range(scores.shape[0]):
            ok = np.flatnonzero(allowed[r])
            expected = sorted(ok, key=lambda c: (-scores[r, c], c))[:n]
            got = cols[rows == r]
            assert sorted(got.tolist()) == sorted(expected), (n, r)
            np.testing.assert_array_equal(values[rows == r], scores[r, got])
    with pytest.raises(ValueError):
        top_n_allowed(np.array([[np.nan, 1.0]]), 1, np.ones((1, 2), dtype=bool))


@pytest.mark.parametrize("name", PYTHON_MODELS)
def test_two_runs_write_identical_rows(name):
    train, truth, videos, *_ = random_case(seed=21, n_users=60, n_items=40)
    results = []
    for _ in range(2):
        con = toy_db(train, truth, videos, top_n=15)
        run(con, name, threads=2)
        results.append(all_rows(con, name))
        con.close()
    assert results[0]["recommendations"]
    assert results[0] == results[1]


@pytest.mark.parametrize("name", PYTHON_MODELS)
def test_tuning_run_writes_the_same_eval_rankings_and_no_recommendations(name):
    train, truth, videos, *_ = random_case(seed=23)
    rows = {}
    for recommendations in (True, False):
        con = toy_db(train, truth, videos, top_n=8)
        model = hooks.discover()[name]
        settings = {**hooks.model_defaults(model), **TOY_SETTINGS[name]}
        hooks.run_model(con, model, settings, 8, 2, 42, recommendations=recommendations)
        rows[recommendations] = all_rows(con, name)
    assert rows[True]["recommendations"] and not rows[False]["recommendations"]
    assert rows[True]["eval_rankings"] == rows[False]["eval_rankings"]


# ---------------------------------------------------------------------------------------------
# The demo database


def test_item_neighbour_models_beat_random_on_the_demo(db_con):
    """itemknn and EASE find the videos that are watched. BPR is left out: it learns what the
    feed showed each user (taste-driven exposure), which in the calibrated demo, as in KuaiRec,
    says nothing about watch time; its ranking is checked on the checkerboard above."""
    ndcg = dict(
        db_con.execute(
            "select model, value from eval_metrics "
            "where split = 'test' and k = 10 and metric = 'ndcg'"
        ).fetchall()
    )
    baseline = "random" if "random" in ndcg else "popularity"
    for name in ("itemknn", "ease"):
        assert ndcg[name] > ndcg[baseline], (name, ndcg)


def test_rank_users_gives_the_same_lists_with_any_number_of_workers():
    """Batches ranked side by side in threads: the same rows, in the same order, as one by one;
    and each user's list is its plain top-N."""
    rng = np.random.default_rng(5)
    n_users, n_items, top_n = 37, 60, 4
    scores = rng.integers(0, 6, size=(n_users, n_items)).astype(np.float32)  # many ties
    seen = sp.csr_matrix(rng.random((n_users, n_items)) < 0.3)
    candidates = sp.csr_matrix(
        (rng.random((n_users, n_items)) < 0.4) & (np.arange(n_users) % 3 == 0)[:, None]
    )

    def score_users(users):
        return scores[users]

    one = rank_users(score_users, seen, candidates, top_n, batch_users=5, workers=1)
    for workers in (2, 4):
        many = rank_users(score_users, seen, candidates, top_n, batch_users=5, workers=workers)
        for a, b in zip(one, many):
            for x, y in zip(a, b):
                assert np.array_equal(x, y)
    users, items, values = one[0]
    for user in range(n_users):
        allowed = [i for i in range(n_items) if not seen[user, i]]
        want = sorted(allowed, key=lambda i: (-scores[user, i], i))[:top_n]
        assert sorted(items[users == user].tolist()) == sorted(want)
