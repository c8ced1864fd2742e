"""The hybrid model: a blend of other models' lists fitted on the tune users' labels only.

- a toy database with a perfect input model and a random one: the learned weights favour the
  perfect model, and the hybrid ranks the test users' relevant videos first;
- it never recommends a training video, even when an input model does;
- on the demo database: no training video in its recommendations, the same rows when run
  again (in another process than the build), and the same rows when the TEST users' labels are
  changed (they take no part in the fit).
"""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from kuairec_db import hooks
from kuairec_db.errors import UserError
from kuairec_db.hooks import ModelContext, load_module
from kuairec_db.stages import CONTRACT_TABLES

TOP_N = 20
N_USERS = 60  # users 1 .. 30 tune, 31 .. 60 test
CANDIDATES = range(1, 41)  # every user's ground truth
TRAINING = range(41, 81)  # each user watched ten of these in training


def hybrid_model() -> hooks.Model:
    return hooks.discover()["hybrid"]


def _table(con: duckdb.DuckDBPyConnection, name: str, columns: str, rows: list[tuple]) -> None:
    """Table NAME (COLUMNS with their types) holding ROWS, inserted in one statement."""
    names = [c.split()[0] for c in columns.split(",")]
    frame = pd.DataFrame(rows, columns=names)
    con.execute(f"create table if not exists {name} ({columns})")
    con.register("toy_rows", frame)
    con.execute(f"insert into {name} select * from toy_rows")
    con.unregister("toy_rows")


def toy_db(seed: int = 0) -> duckdb.DuckDBPyConnection:
    """In-memory database with what the hybrid reads: two input models, 'perfect' (relevant
    candidates first) and 'noise' (a random order), with their eval_rankings and
    recommendations, the labels, the training pairs and uninformative features."""
    rng = np.random.default_rng(seed)
    con = duckdb.connect(config={"threads": "1"})
    con.execute("set variable top_n = ?", [TOP_N])
    for table, columns in CONTRACT_TABLES.items():
        con.execute(f"create table {table} ({columns})")
    users = list(range(1, N_USERS + 1))
    videos = list(CANDIDATES) + list(TRAINING)
    _table(
        con, "int_user_index", "user_id integer, user_index integer", [(u, u - 1) for u in users]
    )
    _table(
        con, "int_item_index", "video_id integer, item_index integer", [(v, v - 1) for v in videos]
    )
    train = [(u, int(v)) for u in users for v in rng.choice(list(TRAINING), 10, replace=False)]
    _table(con, "int_train_interactions", "user_id integer, video_id integer", train)
    truth = []
    for u in users:
        relevant = rng.random(len(CANDIDATES)) < 0.25
        relevant[rng.integers(len(CANDIDATES))] = True
        split = "tune" if u <= N_USERS // 2 else "test"
        truth += [(u, v, bool(r), split) for v, r in zip(CANDIDATES, relevant)]
    _table(
        con,
        "int_ground_truth",
        "user_id integer, video_id integer, is_relevant boolean, split varchar",
        truth,
    )
    labels = {(u, v): r for u, v, r, _ in truth}
    seen = set(train)
    rankings, recommendations = [], []
    for u in users:
        perfect = sorted(CANDIDATES, key=lambda v: (not labels[(u, v)], v))
        noise = [int(v) for v in rng.permutation(list(CANDIDATES))]
        unseen = [v for v in videos if (u, v) not in seen]
        perfect_recs = sorted(unseen, key=lambda v: (not labels.get((u, v), False), v))
        # The noise model wrongly recommends training videos: the hybrid must still skip them.
        noise_recs = [v for v in TRAINING if (u, v) in seen][:3]
        noise_recs += [int(v) for v in rng.permutation(unseen)]
        for rows, lists in (
            (rankings, {"perfect": perfect, "noise": noise}),
            (recommendations, {"perfect": perfect_recs, "noise": noise_recs}),
        ):
            for model, order in lists.items():
                rows += [
                    (model, u, r + 1, v, float(TOP_N - r)) for r, v in enumerate(order[:TOP_N])
                ]
    _table(con, "eval_rankings", CONTRACT_TABLES["eval_rankings"], rankings)
    _table(con, "recommendations", CONTRACT_TABLES["recommendations"], recommendations)
    con.execute(
        "create table feat_user_activity as select user_id, 10 as n_views from int_user_index"
    )
    con.execute(
        "create table feat_video_popularity as select video_id, 5 as n_users, "
        "1.0 as smoothed_watch_ratio from int_item_index"
    )
    con.execute(
        "create table feat_video_content as select video_id, 10000 as video_duration_ms, "
        "1 as first_level_category_id from int_item_index"
    )
    con.execute(
        "create table feat_user_category_affinity as select user_id, "
        "1 as first_level_category_id, 0.0 as log_lift from int_user_index"
    )
    return con


SETTINGS = {"inputs": "perfect,noise", "l2": "auto", "folds": 3}


def test_learned_weights_favour_the_perfect_model():
    con = toy_db()
    # A fixed penalty: with "auto" the cross-validation may keep the perfect input alone.
    ctx = ModelContext(con, "hybrid", {**SETTINGS, "l2": "0.1"}, TOP_N, 1, 42)
    blend = load_module(hybrid_model()).fit(ctx, ["perfect", "noise"])
    assert blend.source == "blend"
    weights = blend.named_weights()
    perfect = sum(abs(w) for f, w in weights.items() if f.endswith('__perfect"'))
    noise = sum(abs(w) for f, w in weights.items() if f.endswith('__noise"'))
    assert perfect > 5 * noise, weights
    assert blend.n_users == N_USERS // 2  # the tune users only


def _listnet_loss_and_gradient(w, x, relevant, groups, l2):
    """The ListNet top-one loss of the module docstring, one user at a time."""
    users = sorted(set(groups.tolist()))
    loss, gradient = 0.0, np.zeros_like(w)
    for user in users:
        rows = groups == user
        s = x[rows] @ w
        p = np.exp(s - s.max())
        p /= p.sum()
        target = relevant[rows] / relevant[rows].sum()
        loss += np.log(np.exp(s - s.max()).sum()) + s.max() - target @ s
        gradient += x[rows].T @ (p - target)
    n = len(users)
    return loss / n + 0.5 * l2 * (w @ w), gradient / n + l2 * w


@pytest.mark.parametrize("l2", [1.0, 0.01, 0.001])
def test_listnet_fit_reaches_the_minimum_an_independent_optimiser_finds(l2):
    """Newton's method, stopped when its decrement is below the loss's rounding, against scipy's
    BFGS on the loss written out per user; the returned point's gradient is ~0."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    sizes = rng.integers(5, 40, size=80)
    groups = np.repeat(np.arange(80), sizes)
    x = rng.normal(size=(len(groups), 6))
    signal = x @ np.array([1.5, -1.0, 0.5, 0.0, 0.0, 0.2])
    relevant = signal + rng.normal(size=len(groups)) > 1.0
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    relevant[starts] = True  # every user has a relevant row ...
    relevant[starts + 1] = False  # ... and a non-relevant one
    weights = load_module(hybrid_model()).fit_listnet(x, relevant, groups, l2)
    _, gradient = _listnet_loss_and_gradient(weights, x, relevant, groups, l2)
    assert np.max(np.abs(gradient)) < 1e-8
    found = minimize(
        _listnet_loss_and_gradient,
        np.zeros(6),
        args=(x, relevant, groups, l2),
        jac=True,
        method="BFGS",
        options={"gtol": 1e-10},
    )
    np.testing.assert_allclose(weights, found.x, atol=1e-6)


def test_hybrid_ranks_test_users_like_the_perfect_model_and_skips_training_videos():
    con = toy_db()
    hooks.run_model(con, hybrid_model(), dict(SETTINGS), TOP_N, 1, 42)
    # Every test user's relevant candidates come first (at most TOP_N of them).
    wrong = con.execute(
        """
        with ranked as (
            select r.user_id, r.rank, g.is_relevant,
                count(*) filter (where g2.is_relevant) as n_relevant
            from eval_rankings as r
            inner join int_ground_truth as g using (user_id, video_id)
            inner join int_ground_truth as g2 on g2.user_id = r.user_id
            where r.model = 'hybrid' and g.split = 'test'
            group by all
        )
        select * from ranked where is_relevant <> (rank <= n_relevant)
        """
    ).fetchall()
    assert wrong == []
    seen = con.execute(
        "select count(*) from recommendations as r inner join int_train_interactions as t "
        "using (user_id, video_id) where r.model = 'hybrid'"
    ).fetchone()[0]
    assert seen == 0
    n_recs = con.execute(
        "select count(*), count(distinct user_id) from recommendations where model = 'hybrid'"
    ).fetchone()
    assert n_recs == (N_USERS * TOP_N, N_USERS)


def test_fit_refuses_when_no_tune_user_can_be_learned_from():
    con = toy_db()
    con.execute("update int_ground_truth set is_relevant = false where split = 'tune'")
    with pytest.raises(UserError, match="nothing to fit"):
        hooks.run_model(con, hybrid_model(), dict(SETTINGS), TOP_N, 1, 42)


# ---------------------------------------------------------------------------------------------
# On the demo database (the build ran every model in models/, the hybrid last)


def _rows(con, table: str) -> list[tuple]:
    return con.execute(
        f"select * exclude (model) from {table} where model = 'hybrid' order by all"
    ).fetchall()


def test_hybrid_recommends_no_training_video(db_con):
    n, seen = db_con.execute(
        """
        select count(*), count(t.user_id)
        from recommendations as r
        left join int_train_interactions as t
            on r.user_id = t.user_id and r.video_id = t.video_id
        where r.model = 'hybrid'
        """
    ).fetchone()
    assert n > 0 and seen == 0


@pytest.fixture(scope="module")
def demo_copy(tmp_path_factory, built_db):
    path = tmp_path_factory.mktemp("hybrid") / "copy.duckdb"
    shutil.copyfile(built_db, path)
    return path


def _rerun(path, settings: dict) -> duckdb.DuckDBPyConnection:
    from kuairec_db.build import BuildParams

    con = duckdb.connect(str(path))
    info = dict(con.execute("select key, value from build_info").fetchall())
    for name, value in BuildParams(top_n=int(info["param.top_n"])).sql_variables().items():
        con.execute(f"set variable {name} = ?", [value])
    hooks.run_model(con, hybrid_model(), settings, int(info["param.top_n"]), 2, 42)
    return con


def test_hybrid_is_deterministic_and_ignores_test_labels(demo_copy, built_db):
    import json

    first = duckdb.connect(str(built_db), read_only=True)
    settings = json.loads(
        first.execute(
            "select value from build_info where key = 'model.hybrid.settings'"
        ).fetchone()[0]
    )
    built = {t: _rows(first, t) for t in ("eval_rankings", "recommendations")}
    first.close()
    assert built["eval_rankings"] and built["recommendations"]

    con = _rerun(demo_copy, settings)  # another process than the build, other threads
    assert {t: _rows(con, t) for t in built} == built
    # Turn every test user's label upside down: the blend is fitted on tune users only.
    con.execute("update int_ground_truth set is_relevant = not is_relevant where split = 'test'")
    con.close()
    con = _rerun(demo_copy, settings)
    assert {t: _rows(con, t) for t in built} == built
    con.close()


def test_the_cross_validated_choice_is_in_build_info(db_con):
    """What hybrid chose on the tune users, and its cross-validated NDCG@10, are queryable
    beside two_stage's held-out NDCG@10 (the two_stage-or-hybrid decision)."""
    info = dict(
        db_con.execute(
            "select key, value from build_info where key like 'model.hybrid.chosen.%'"
        ).fetchall()
    )
    inputs = {r[0] for r in db_con.execute("select distinct model from recommendations").fetchall()}
    source = info["model.hybrid.chosen.source"]
    assert source == "blend" or source in inputs - {"hybrid"}
    assert ("model.hybrid.chosen.l2" in info) == (source == "blend")
    assert 0 < float(info["model.hybrid.chosen.cv_ndcg_at_10"]) <= 1
