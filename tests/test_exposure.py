"""exposure-study: sampling, metrics on sparse sets, Kendall's tau, the temporal split, safety.

One study runs on a copy of the demo database (every model) and most tests read its tables;
the SQL of the tau and of the sparse ranking is also checked on literal rows.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy.stats import kendalltau

from kuairec_db import stages
from kuairec_db.build import acquire_lock
from kuairec_db.exposure import EXPOSURE_DIR
from tests.conftest import run_cli

DENSITIES = "0.1,0.5,1.0"
REPEATS = 3
STUDY_ARGS = ("--densities", DENSITIES, "--k", "5,10", "--seed", "7", "--repeats", str(REPEATS))


@pytest.fixture(scope="module")
def study_db(built_db, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("study") / "kuairec.duckdb"
    shutil.copyfile(built_db, db)
    result = run_cli("exposure-study", "--db", str(db), *STUDY_ARGS)
    assert result.returncode == 0, result.stderr
    assert "exposure study written" in result.stdout
    return db


@pytest.fixture()
def con(study_db):
    con = duckdb.connect(str(study_db), read_only=True)
    yield con
    con.close()


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Samples


def test_every_sample_hits_its_density_within_one_percent(con):
    rows = con.execute(
        "select strategy, density, n_pairs, n_sampled from eval_exposure_samples"
    ).fetchall()
    strategies = {r[0] for r in rows}
    assert strategies == {"uniform", "positivity", "popularity", "fully_observed"}
    assert len(rows) == (3 * 3 + 1) * REPEATS
    seeds = con.execute("select distinct repeat, seed from eval_exposure_samples order by 1")
    assert seeds.fetchall() == [(r, 7 + r - 1) for r in range(1, REPEATS + 1)]
    for strategy, density, n_pairs, n_sampled in rows:
        assert abs(n_sampled - density * n_pairs) <= max(1.0, 0.01 * density * n_pairs), (
            strategy,
            density,
        )


def _literal_sets(con, strategies, densities, pairs) -> None:
    """exposure_pairs (user_id, video_id, is_relevant, n_video_users) from PAIRS, the sets of
    STRATEGIES x DENSITIES, the candidate lists and the variables the cuts read."""
    from kuairec_db import exposure

    con.execute(f"set variable exposure_strategies = {list(strategies)}")
    con.execute(f"set variable exposure_densities = {list(densities)}")
    con.execute(
        "create table exposure_pairs (user_id integer, video_id integer, is_relevant boolean, "
        "n_video_users integer, popularity_percentile double)"
    )
    con.executemany(
        "insert into exposure_pairs values (?, ?, ?, ?, ?)",
        [(u, v, r, n, n / 10) for u, v, r, n in pairs],
    )
    exposure.run_sql(con, "exposure_sample_sets")
    exposure.run_sql(con, "exposure_user_candidates")
    con.execute(
        "create table exposure_full_ranks as select 'm' as model, user_id, video_id, "
        "1 as full_rank from exposure_pairs limit 0"
    )
    exposure.prepare_lists(con)


def _sets_from_cuts(con) -> dict[tuple[str, int], set[tuple[int, int]]]:
    """(strategy, n_sampled) -> the set's (user_id, video_id) pairs, from exposure_first_sets."""
    rows = con.execute(
        """
        with pairs as (
            select
                f.strategy, f.user_id,
                unnest(f.first_set_sizes) as first_set_size, unnest(u.video_ids) as video_id
            from exposure_first_sets as f
            inner join exposure_user_candidates as u on f.user_id = u.user_id
        )
        select pairs.strategy, s.n_sampled, pairs.user_id, pairs.video_id
        from pairs
        inner join exposure_sample_sets as s
            on pairs.strategy = s.strategy and s.n_sampled >= pairs.first_set_size
        """
    ).fetchall()
    sets: dict = {}
    for strategy, n, user, video in rows:
        sets.setdefault((strategy, n), set()).add((user, video))
    return sets


def test_samples_are_efraimidis_spirakis_on_md5_draws():
    """Each set is the first n pairs by the keys computed here in Python (u from md5,
    ln(u) / w), largest first: exposure_sample_keys, _thresholds and _first_sets."""
    from kuairec_db import exposure

    con = duckdb.connect()
    stages.create_macros(con)
    con.execute("set variable exposure_seed = 3")
    con.execute("set variable exposure_positivity_weight = 5.0")
    con.execute("set variable exposure_popularity_exponent = 1.0")
    pairs = [(u, v, (u * v) % 3 == 0, (v * 7) % 11) for u in range(1, 6) for v in range(1, 9)]
    strategies = ("uniform", "positivity", "popularity")
    _literal_sets(con, strategies, [0.001, 0.05, 0.3, 0.5, 0.975], pairs)  # 0.001: no pair
    for name in exposure.SAMPLING_FILES[:3]:
        exposure.run_sql(con, name)
    sets = _sets_from_cuts(con)
    for strategy in strategies:
        keys = []
        for user, video, relevant, n_users in pairs:
            digest = hashlib.md5(f"3:{user}:{video}".encode()).hexdigest()
            draw = (int(digest[:13], 16) + 0.5) / 2**52
            weight = {"uniform": 1.0, "positivity": 5.0 if relevant else 1.0}.get(
                strategy, n_users + 1.0
            )
            keys.append((-math.log(draw) / weight, user, video))
        expected = [(u, v) for _, u, v in sorted(keys)]
        for n in (2, 12, 20, 39):  # round(d * 40)
            assert sets[strategy, n] == set(expected[:n]), (strategy, n)
        assert (strategy, 0) not in sets
    exposure.run_sql(con, "exposure_set_users")
    exposure.check_set_sizes(con)  # the empty set included


def test_a_cut_inside_tied_keys_follows_user_then_video_order():
    """Keys planted with many ties, so that most sets end inside a run of equal keys: the set
    is still the first n pairs in (key desc, user_id, video_id) order, and every set has its
    size exactly."""
    from kuairec_db import exposure

    rng = np.random.default_rng(11)
    con = duckdb.connect()
    stages.create_macros(con)
    pairs = [(u, v, bool(rng.random() < 0.3), 1) for u in (4, 1, 3, 2) for v in range(1, 26)]
    _literal_sets(con, ["uniform", "popularity"], [0.13, 0.37, 0.5, 0.81, 1.0], pairs)
    keys = {
        (s, u, v): float(rng.integers(0, 4 if s == "uniform" else 2))
        for s in ("uniform", "popularity")
        for u, v, _, _ in pairs
    }
    con.execute(
        "create table exposure_sample_keys (strategy varchar, user_id integer, "
        "sample_keys double[])"
    )
    con.executemany(
        "insert into exposure_sample_keys values (?, ?, ?)",
        [
            (s, u, [keys[s, u, v] for v in range(1, 26)])
            for s in ("uniform", "popularity")
            for u in (1, 2, 3, 4)
        ],
    )
    for name in exposure.SAMPLING_FILES[1:4]:
        exposure.run_sql(con, name)
    exposure.check_set_sizes(con)
    sets = _sets_from_cuts(con)
    shared = con.execute(
        "select count(*) from exposure_sample_thresholds where n_above <> n_sampled - 1"
    ).fetchone()[0]
    assert shared >= 6  # the cuts fell inside ties, so the tie rule was used
    for strategy in ("uniform", "popularity"):
        order = sorted(((u, v) for u, v, _, _ in pairs), key=lambda p: (-keys[strategy, *p], p))
        for n in (13, 37, 50, 81, 100):
            assert sets[strategy, n] == set(order[:n]), (strategy, n)


def test_positivity_exposes_more_relevant_and_popularity_more_popular_videos(con):
    share = dict(
        (
            (s, d),
            (rel, pop),
        )
        for s, d, rel, pop in con.execute(
            "select strategy, density, relevant_share, mean_popularity_percentile "
            "from eval_exposure_samples"
        ).fetchall()
    )
    for density in (0.1, 0.5):
        uniform_rel, uniform_pop = share[("uniform", density)]
        assert share[("positivity", density)][0] > 1.4 * uniform_rel
        assert share[("popularity", density)][1] > uniform_pop + 0.03
    # at density 1 every strategy holds every pair
    assert share[("positivity", 1.0)] == pytest.approx(share[("fully_observed", 1.0)])


# ---------------------------------------------------------------------------------------------
# Metrics and tau


def test_fully_observed_values_equal_eval_metrics(con):
    rows = con.execute(
        """
        select s.model, s.k, s.metric, s.value, m.value
        from eval_exposure_study as s
        inner join eval_metrics as m
            on s.model = m.model and s.k = m.k and s.metric = m.metric and m.split = 'test'
        where s.strategy = 'fully_observed'
        """
    ).fetchall()
    models = con.execute(
        "select model from eval_exposure_models where in_study and rank_agreement = 1"
    ).fetchall()
    assert len(models) >= 2
    assert len(rows) == len(models) * 2 * 6  # k 5 and 10, six metrics
    for model, k, metric, value, expected in rows:
        assert value == pytest.approx(expected, abs=1e-9), (model, k, metric)


def test_tau_is_one_at_full_density(con):
    taus = con.execute(
        "select distinct kendall_tau from eval_exposure_study where density = 1.0"
    ).fetchall()
    assert taus == [(1.0,)]
    # uniform at density 1 is the full matrix: the same values, model by model
    diff = con.execute(
        """
        select max(abs(value - full_value)) from eval_exposure_study
        where strategy = 'uniform' and density = 1.0
        """
    ).fetchone()[0]
    assert diff < 1e-12


def test_kendall_tau_matches_scipy(con):
    groups: dict[tuple, list[tuple[float, float]]] = {}
    for repeat, strategy, density, k, metric, value, full, tau in con.execute(
        "select repeat, strategy, density, k, metric, value, full_value, kendall_tau "
        "from eval_exposure_repeats"
    ).fetchall():
        key = (repeat, strategy, density, k, metric, tau)
        groups.setdefault(key, []).append((value, full))
    assert len({key[:5] for key in groups}) == len(groups)  # one tau per set, k and metric
    checked = 0
    for (*_, tau), pairs in groups.items():
        sparse = [round(v, 9) for v, _ in pairs]
        full = [round(f, 9) for _, f in pairs]
        expected = kendalltau(sparse, full).statistic
        if math.isnan(expected):
            assert tau is None
        else:
            assert tau == pytest.approx(expected, abs=1e-12)
            checked += 1
    assert checked > 10


def _tau_sql(rows: list[tuple[str, float, float]]) -> float | None:
    """exposure_repeat_study.sql on literal per-model means: (model, sparse value, full value)."""
    con = duckdb.connect()
    stages.create_macros(con)
    con.execute(
        "create table exposure_user_metrics (strategy varchar, density double, model varchar, "
        "user_id integer, k integer, metric varchar, value double)"
    )
    for model, sparse, full in rows:
        con.execute(
            "insert into exposure_user_metrics values "
            "('uniform', 0.5, ?, 1, 10, 'ndcg', ?), ('fully_observed', 1.0, ?, 1, 10, 'ndcg', ?)",
            [model, sparse, model, full],
        )
    body = stages.select_body((EXPOSURE_DIR / "exposure_repeat_study.sql").read_text())
    return con.execute(
        f"select distinct kendall_tau from ({body}) where strategy = 'uniform'"
    ).fetchone()[0]


@pytest.mark.parametrize(
    "sparse, full",
    [
        ([0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]),  # same order: 1
        ([0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]),  # reversed: -1
        ([0.1, 0.3, 0.2, 0.4, 0.5], [0.1, 0.2, 0.3, 0.4, 0.5]),  # one swap
        ([0.1, 0.1, 0.3, 0.2], [0.1, 0.2, 0.3, 0.4]),  # a tie on one side (tau-b)
        ([0.2, 0.2, 0.5, 0.1, 0.7], [0.3, 0.1, 0.1, 0.2, 0.9]),  # ties on both sides
    ],
)
def test_tau_sql_on_literal_values(sparse, full):
    rows = [(f"m{i}", s, f) for i, (s, f) in enumerate(zip(sparse, full))]
    assert _tau_sql(rows) == pytest.approx(kendalltau(sparse, full).statistic, abs=1e-12)


def test_tau_sql_is_null_when_one_side_ties_everything():
    assert _tau_sql([("a", 0.5, 0.1), ("b", 0.5, 0.2)]) is None


def _rank_sparse_sets(con) -> None:
    """The study's sets, lists, cuts and top lists over literal exposure_pairs,
    exposure_full_ranks and exposure_sample_keys."""
    from kuairec_db import exposure

    exposure.run_sql(con, "exposure_sample_sets")
    exposure.run_sql(con, "exposure_user_candidates")
    exposure.prepare_lists(con)
    for name in exposure.SAMPLING_FILES[1:]:
        exposure.run_sql(con, name)
    exposure.check_set_sizes(con)


def test_sparse_ranking_is_the_full_ranking_restricted_to_the_sample():
    """exposure_user_metrics on one user: 6 candidates, full ranks 1..6, a sample of 3."""
    con = duckdb.connect()
    stages.create_macros(con)
    con.execute("set variable exposure_k = [2]")
    con.execute("set variable exposure_strategies = ['uniform']")
    con.execute("set variable exposure_densities = [0.5]")
    con.execute(
        "create table exposure_pairs as select 1 as user_id, v as video_id, "
        "v in (2, 5) as is_relevant, 0 as n_video_users, 0.0 as popularity_percentile "
        "from range(1, 7) as t(v)"
    )
    # the model ranks video v at rank v; the sample holds videos 3, 5, 6 (positions 1..3)
    con.execute(
        "create table exposure_full_ranks as select 'm' as model, user_id, video_id, "
        "video_id::integer as full_rank from exposure_pairs"
    )
    con.execute(  # sample order 3, 5, 6, 1, 2, 4: videos 1 .. 6 get keys -4, -5, -1, -6, -2, -3
        "create table exposure_sample_keys as select 'uniform' as strategy, 1 as user_id, "
        "[-4.0, -5.0, -1.0, -6.0, -2.0, -3.0] as sample_keys"
    )
    con.execute("set variable exposure_rank_depth = 1")  # the second pass finds the rest
    _rank_sparse_sets(con)
    values = dict(
        con.execute(
            "select metric, value from exposure_user_metrics where strategy = 'uniform'"
        ).fetchall()
    )
    # sampled in model order: 3 (no), 5 (yes), 6 (no); R = 1; top 2 = [3, 5]
    assert values["precision"] == pytest.approx(0.5)
    assert values["recall"] == pytest.approx(1.0)
    assert values["ndcg"] == pytest.approx(1 / math.log2(3))
    assert values["mrr"] == pytest.approx(0.5)
    full = dict(
        con.execute(
            "select metric, value from exposure_user_metrics where strategy = 'fully_observed'"
        ).fetchall()
    )
    # all six: top 2 = [1, 2], one hit at rank 2 of R = 2
    assert full["recall"] == pytest.approx(0.5)
    assert full["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def _sparse_metrics_in_python(ranks, positions, relevant, n_sampled, k):
    """Per (set, model, user): the metrics of the model's full ranking restricted to the sample,
    written out directly (no two passes, no SQL)."""
    out = {}
    for (model, user), order in ranks.items():
        for (strategy, density), n in n_sampled.items():
            if strategy == "fully_observed":
                sample = set(order)
            else:
                sample = {v for v in order if positions[strategy][user, v] <= n}
            labels = [relevant[user, v] for v in order if v in sample]
            n_relevant = sum(labels)
            if not n_relevant:
                continue
            top = labels[:k]
            hits = [i + 1 for i, r in enumerate(top) if r]
            ideal = sum(1 / math.log2(i + 2) for i in range(min(n_relevant, k)))
            out[strategy, density, model, user] = {
                "precision": len(hits) / k,
                "recall": len(hits) / n_relevant,
                "ndcg": sum(1 / math.log2(i + 1) for i in hits) / ideal,
                "map": sum((j + 1) / i for j, i in enumerate(hits)) / min(n_relevant, k),
                "hit_rate": float(bool(hits)),
                "mrr": 1 / hits[0] if hits else 0.0,
            }
    return out


@pytest.mark.parametrize("depth", [1, 3, 1000])
def test_two_pass_sparse_metrics_equal_a_direct_computation_at_any_depth(depth):
    """exposure_list_keys + exposure_user_metrics on random ranks and samples: whatever the
    depth of the first pass (1 and 3 leave most lists to the second), the metrics are those of
    the full ranking restricted to each sample, computed here in Python."""
    rng = np.random.default_rng(5)
    users, videos, models = range(1, 7), range(1, 16), ("a", "b", "c")
    relevant = {(u, v): bool(rng.random() < 0.3) for u in users for v in videos}
    ranks = {(m, u): [int(v) for v in rng.permutation(list(videos))] for m in models for u in users}
    strategies = ("uniform", "popularity")
    # sample keys with ties (a fifth of the distinct values), so that cuts fall inside them;
    # the sample order is key desc, then (user, video)
    keys = {
        (s, u, v): float(rng.integers(0, 18)) for s in strategies for u in users for v in videos
    }
    positions = {}
    for strategy in strategies:
        order = sorted(
            ((u, v) for u in users for v in videos), key=lambda p: (-keys[strategy, *p], p)
        )
        positions[strategy] = {(u, v): i + 1 for i, (u, v) in enumerate(order)}
    con = duckdb.connect()
    stages.create_macros(con)
    con.execute("set variable exposure_k = [3]")
    con.execute(f"set variable exposure_strategies = {list(strategies)}")
    con.execute("set variable exposure_densities = [0.2, 0.6]")
    con.execute(f"set variable exposure_rank_depth = {depth}")
    con.execute(
        "create table exposure_pairs (user_id integer, video_id integer, is_relevant boolean, "
        "n_video_users integer, popularity_percentile double)"
    )
    con.executemany(
        "insert into exposure_pairs values (?, ?, ?, 0, 0.0)",
        [(u, v, r) for (u, v), r in relevant.items()],
    )
    con.execute(
        "create table exposure_full_ranks (model varchar, user_id integer, video_id integer, "
        "full_rank integer)"
    )
    con.executemany(
        "insert into exposure_full_ranks values (?, ?, ?, ?)",
        [(m, u, v, i + 1) for (m, u), order in ranks.items() for i, v in enumerate(order)],
    )
    con.execute(
        "create table exposure_sample_keys "
        "(strategy varchar, user_id integer, sample_keys double[])"
    )
    con.executemany(
        "insert into exposure_sample_keys values (?, ?, ?)",
        [(s, u, [keys[s, u, v] for v in videos]) for s in strategies for u in users],
    )
    _rank_sparse_sets(con)
    n_sampled = dict(
        ((s, d), n)
        for s, d, n in con.execute(
            "select strategy, density, n_sampled from exposure_sample_sets"
        ).fetchall()
    )
    expected = _sparse_metrics_in_python(ranks, positions, relevant, n_sampled, 3)
    got: dict = {}
    for strategy, density, model, user, metric, value in con.execute(
        "select strategy, density, model, user_id, metric, value from exposure_user_metrics"
    ).fetchall():
        got.setdefault((strategy, density, model, user), {})[metric] = value
    assert set(got) == set(expected)
    for key, metrics in expected.items():
        assert got[key] == pytest.approx(metrics, abs=1e-12), key
    incomplete = con.execute(
        "select count(*) filter (where not is_complete) from exposure_list_keys"
    ).fetchone()[0]
    assert (incomplete > 0) == (depth < 1000)


# ---------------------------------------------------------------------------------------------
# Models, temporal split, info


def test_models_are_scored_on_every_candidate_and_reproduce_the_build(con):
    rows = con.execute(
        "select model, in_study, scored_by, scored_share, rank_agreement, note "
        "from eval_exposure_models"
    ).fetchall()
    in_db = {r[0] for r in con.execute("select distinct model from eval_rankings").fetchall()}
    assert {r[0] for r in rows} == in_db
    for model, in_study, scored_by, share, agreement, why in rows:
        if in_study:
            assert share >= 0.99 and agreement > 0.99, model
        else:
            assert why.startswith("left out"), model
    studied = {r[0] for r in rows if r[1]}
    assert {"popularity", "als"} <= studied
    rerankers = {r[0]: r for r in rows if r[0] in ("hybrid", "two_stage")}
    assert set(rerankers) == {"hybrid", "two_stage"}
    for model, in_study, scored_by, share, agreement, why in rerankers.values():
        # said by the model (SCORES_EVERY_CANDIDATE = False): left out without a refit
        assert not in_study and scored_by is None and "SCORES_EVERY_CANDIDATE" in why, model


def test_rescore_from_what_the_build_stored_gives_the_refits_scores(con, built_db, tmp_path):
    """itemknn, video_quality and ease are scored from their stored neighbours, video scores
    and candidate scores (rescore), and that gives exactly the doubles a refit gives; without
    the stored rows (a build before them) the study refits."""
    from kuairec_db import exposure, runner

    scored_by = dict(con.execute("select model, scored_by from eval_exposure_models").fetchall())
    assert scored_by["itemknn"].startswith("re-scored from what the build stored")
    assert scored_by["video_quality"].startswith("re-scored from what the build stored")
    assert scored_by["ease"].startswith("re-scored from what the build stored")
    db = tmp_path / "copy.duckdb"
    shutil.copyfile(built_db, db)
    study = duckdb.connect(str(db))
    info = dict(study.execute("select key, value from build_info").fetchall())
    stages.create_macros(study)
    exposure.set_build_variables(study, info)
    study.execute(
        "create temp table exposure_pairs as select user_id, video_id from eval_ground_truth "
        "where split = 'test'"
    )
    study.execute(
        "create temp table exposure_scores "
        "(model varchar, user_id integer, video_id integer, score double)"
    )
    models = runner.discover()
    for name in ("itemknn", "video_quality", "ease"):
        study.execute("set variable model_name = ?", [name])
        for how in ("rescore", "refit"):
            said = exposure._score_captured(study, models[name], info, 2, rescore=how == "rescore")
            assert said.startswith("re-scored" if how == "rescore" else "refitted")
            study.execute(
                f"create temp table scores_{how} as select * from exposure_scores; "
                "delete from exposure_scores"
            )
        differ = study.execute(
            "select count(*) from (select * from scores_rescore except all "
            "select * from scores_refit) union all select count(*) from (select * from "
            "scores_refit except all select * from scores_rescore)"
        ).fetchall()
        n = study.execute("select count(score) from scores_rescore").fetchone()[0]
        assert differ == [(0,), (0,)] and n > 0, name
        study.execute("drop table scores_rescore; drop table scores_refit")
    study.execute("set variable model_name = 'itemknn'")
    study.execute("delete from model_video_neighbours where model = 'itemknn'")
    said = exposure._score_python_model(study, models["itemknn"], info, 2)
    assert said.startswith("refitted")
    study.execute("drop table model_video_neighbours")  # a build from before the table
    said = exposure._score_python_model(study, models["itemknn"], info, 2)
    assert said.startswith("refitted")
    study.execute("set variable model_name = 'ease'")
    study.execute("drop table model_candidate_scores")
    said = exposure._score_python_model(study, models["ease"], info, 2)
    assert said.startswith("refitted")
    study.close()


def test_the_study_summarises_its_repeats(con):
    """Means, t-intervals, tau and the top-model changes, recomputed from the repeats."""
    from scipy.stats import t

    repeats: dict[tuple, list[tuple]] = {}
    for row in con.execute(
        "select strategy, density, model, k, metric, value, model_rank, full_model_rank, "
        "kendall_tau from eval_exposure_repeats"
    ).fetchall():
        repeats.setdefault(row[:5], []).append(row[5:])
    rows = con.execute(
        "select strategy, density, model, k, metric, value, ci_low, ci_high, n_repeats, "
        "top_share, kendall_tau, top_model_changed, full_ci_low, full_ci_high, full_value "
        "from eval_exposure_study"
    ).fetchall()
    assert len(rows) == len(repeats)
    quantile = t.ppf(0.975, REPEATS - 1)
    changed: dict[tuple, set] = {}
    for strategy, density, model, k, metric, value, low, high, n, top, tau, moved, *full in rows:
        values = np.array([r[0] for r in repeats[strategy, density, model, k, metric]])
        assert n == REPEATS == len(values)
        assert value == pytest.approx(values.mean(), abs=1e-12)
        assert top == pytest.approx(
            np.mean([r[1] == 1 for r in repeats[strategy, density, model, k, metric]])
        )
        taus = [r[3] for r in repeats[strategy, density, model, k, metric]]
        if None not in taus:
            assert tau == pytest.approx(np.mean(taus), abs=1e-12)
        full_low, full_high, full_value = full
        assert full_low <= full_value <= full_high
        if strategy == "fully_observed":
            assert (low, high) == (full_low, full_high)
            continue
        half = quantile * values.std(ddof=1) / math.sqrt(REPEATS)
        assert low == pytest.approx(value - half, abs=1e-9)
        assert high == pytest.approx(value + half, abs=1e-9)
        changed.setdefault((strategy, density, k, metric), set()).add(moved)
    # top_model_changed: share of repeats where no fully observed best model is first
    tops: dict[tuple, dict[int, bool]] = {}
    for strategy, density, k, metric, repeat, model_rank, full_rank in con.execute(
        "select strategy, density, k, metric, repeat, model_rank, full_model_rank "
        "from eval_exposure_repeats"
    ).fetchall():
        kept = tops.setdefault((strategy, density, k, metric), {}).get(repeat, False)
        tops[strategy, density, k, metric][repeat] = kept or (model_rank == full_rank == 1)
    for key, moved in changed.items():
        expected = np.mean([not kept for kept in tops[key].values()])
        (share,) = moved  # one value per set, k and metric
        assert abs(share - expected) < 1e-9, key


def test_temporal_split_beside_fully_observed(con):
    rows = con.execute(
        "select t.model, t.value, t.n_users, t.full_value, m.value, t.kendall_tau "
        "from eval_temporal_split as t inner join eval_metrics as m on t.model = m.model "
        "and t.k = m.k and t.metric = m.metric and m.split = 'test' "
        "where t.k = 10 and t.metric = 'ndcg'"
    ).fetchall()
    assert {r[0] for r in rows} == {"popularity", "als"}
    for model, value, n_users, full, expected, tau in rows:
        assert 0 <= value <= 1 and n_users > 0
        low, high, full_low, full_high, full_users = con.execute(
            "select ci_low, ci_high, full_ci_low, full_ci_high, full_n_users "
            "from eval_temporal_split where model = ? and k = 10 and metric = 'ndcg'",
            [model],
        ).fetchone()
        assert low <= value <= high and full_low <= full <= full_high
        assert full_users < n_users  # fully observed test users against the big matrix's
        assert full == pytest.approx(expected)
    # Kendall's tau-b over every k and metric, by hand from the two orders of the models
    by_set: dict[tuple, list[tuple[float, float, float | None]]] = {}
    for k, metric, value, full, tau in con.execute(
        "select k, metric, value, full_value, kendall_tau from eval_temporal_split"
    ).fetchall():
        by_set.setdefault((k, metric), []).append((value, full, tau))
    assert len(by_set) > 1
    checked = 0
    for key, values in by_set.items():
        concordant = discordant = sparse_pairs = full_pairs = 0
        for i, (v1, f1, _) in enumerate(values):
            for v2, f2, _ in values[i + 1 :]:
                s, f = float(np.sign(v1 - v2)), float(np.sign(f1 - f2))
                concordant += s * f > 0
                discordant += s * f < 0
                sparse_pairs += s != 0
                full_pairs += f != 0
        expected_tau = (
            (concordant - discordant) / math.sqrt(sparse_pairs * full_pairs)
            if sparse_pairs and full_pairs
            else None
        )
        for *_, tau in values:
            if expected_tau is None:
                assert tau is None, key
            else:
                assert tau == pytest.approx(expected_tau, abs=1e-12), key
        checked += expected_tau is not None
    assert checked > 0
    info = dict(con.execute("select key, value from eval_exposure_info").fetchall())
    assert info["seed"] == "7" and info["densities"] == "0.1,0.5,1"
    assert info["temporal.cutoff_at"].startswith("2020-")
    assert int(info["temporal.n_test_pairs"]) > 0
    assert (
        info["build_finished_at"]
        == con.execute("select value from build_info where key = 'finished_at'").fetchone()[0]
    )
    comment = con.execute(
        "select comment from duckdb_tables() where table_name = 'eval_exposure_study'"
    ).fetchone()[0]
    assert "Kendall" in comment


def test_same_seed_gives_identical_tables(study_db, tmp_path):
    db = tmp_path / "again.duckdb"
    shutil.copyfile(study_db, db)
    result = run_cli("exposure-study", "--db", str(db), *STUDY_ARGS, "--no-temporal")
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    con.execute(f"attach '{study_db}' as first (read_only)")
    for table in ("eval_exposure_study", "eval_exposure_samples"):
        n = con.execute(f"select count(*) from {table}").fetchone()[0]
        assert n == con.execute(f"select count(*) from first.{table}").fetchone()[0], table
        for a, b in ((table, f"first.{table}"), (f"first.{table}", table)):
            differ = con.execute(f"select count(*) from (from {a} except all from {b})").fetchone()
            assert n > 0 and differ[0] == 0, (a, b)
    # --no-temporal drops the previous run's temporal table rather than keeping a stale one
    tables = {
        r[0]
        for r in con.execute(
            "select table_name from duckdb_tables() where database_name = current_database()"
        ).fetchall()
    }
    assert "eval_temporal_split" not in tables
    con.close()
    assert not list(tmp_path.glob(".again.duckdb.building-*"))


def test_other_seed_gives_other_samples(study_db, tmp_path):
    """--seed 8: every sparse sample differs from the seed-7 study's, and repeat r draws with
    seed 8 + r - 1, so its repeat 1 is the seed-7 study's repeat 2."""
    db = tmp_path / "seed.duckdb"
    shutil.copyfile(study_db, db)
    args = ("--densities", "0.1,0.5", "--k", "5,10", "--repeats", "2", "--models", "popularity")
    result = run_cli("exposure-study", "--db", str(db), *args, "--seed", "8", "--no-temporal")
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    con.execute(f"attach '{study_db}' as first (read_only)")
    query = (
        "select repeat, seed, strategy, density, n_sampled, relevant_share, "
        "mean_popularity_percentile from {} where strategy <> 'fully_observed' "
        "and density < 1 order by all"
    )
    other = con.execute(query.format("eval_exposure_samples")).fetchall()
    first = con.execute(query.format("first.eval_exposure_samples")).fetchall()
    models = con.execute("select distinct model from eval_exposure_study").fetchall()
    con.close()
    assert models == [("popularity",)]
    assert len(other) == 2 * 3 * 2 and len(first) == REPEATS * 3 * 2
    assert {(r[0], r[1]) for r in other} == {(1, 8), (2, 9)}
    first_by_set = {(r[0], r[2], r[3]): r[4:] for r in first}
    for repeat, _seed, strategy, density, *sample in other:
        assert tuple(sample) != first_by_set[repeat, strategy, density], (repeat, strategy)
        assert tuple(sample) == first_by_set[repeat + 1, strategy, density], (repeat, strategy)


# ---------------------------------------------------------------------------------------------
# Safety and errors


def test_refuses_while_a_build_holds_the_lock(built_db, tmp_path):
    db = tmp_path / "locked.duckdb"
    shutil.copyfile(built_db, db)
    before = _md5(db)
    lock = acquire_lock(db)
    try:
        result = run_cli("exposure-study", "--db", str(db), "--no-temporal")
    finally:
        lock.close()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "busy" in lines[0]
    assert _md5(db) == before


def test_missing_database_is_one_line(tmp_path):
    result = run_cli("exposure-study", "--db", str(tmp_path / "none.duckdb"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no database here" in result.stderr


def test_database_without_eval_tables_is_one_line(tmp_path):
    db = tmp_path / "empty.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table t (x integer)")
    con.close()
    result = run_cli("exposure-study", "--db", str(db))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "not a kuairec_db database" in result.stderr


@pytest.mark.parametrize(
    "args, text",
    [
        (("--densities", "0,0.5"), "--densities"),
        (("--densities", "1.5"), "--densities"),
        (("--strategies", "uniform,exposed"), "--strategies"),
        (("--k", "0"), "--k"),
        (("--repeats", "0"), "--repeats"),
        (("--models", "nosuchmodel"), "--models"),
    ],
)
def test_bad_options_are_one_line(built_db, tmp_path, args, text):
    db = tmp_path / "bad.duckdb"
    shutil.copyfile(built_db, db)
    before = _md5(db)
    result = run_cli("exposure-study", "--db", str(db), "--no-temporal", *args)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and text in result.stderr
    assert _md5(db) == before


def test_help():
    result = run_cli("exposure-study", "--help")
    assert result.returncode == 0
    assert "Kendall" in result.stdout and "examples:" in result.stdout


def test_sampling_runs_on_with_the_fallback_limit_when_the_default_runs_out():
    """A repeat that runs out of memory at the default limit (4MB here stands for it) is run
    again under SAMPLING_FALLBACK_LIMIT; with --memory-limit given it fails instead."""
    from kuairec_db import exposure

    con = duckdb.connect()
    stages.create_macros(con)
    variables = {
        "exposure_strategies": ["uniform", "positivity", "popularity"],
        "exposure_densities": [0.1, 0.5],
        "exposure_k": [10],
        "exposure_rank_depth": 400,
        "exposure_seed": 1,
        "exposure_positivity_weight": 5.0,
        "exposure_popularity_exponent": 1.0,
    }
    for name, value in variables.items():
        con.execute(f"set variable {name} = ?", [value])
    con.execute(
        "create temp table exposure_pairs as select u as user_id, v as video_id, "
        "(u * v) % 7 = 0 as is_relevant, v % 50 as n_video_users, "
        "(v % 50) / 50 as popularity_percentile "
        "from range(300) as a (u), range(400) as b (v)"
    )
    con.execute(
        "create temp table exposure_full_ranks as select m as model, user_id, video_id, "
        "row_number() over (partition by m, user_id order by hash(m, user_id, video_id))::integer "
        "as full_rank from exposure_pairs, (values ('a'), ('b'), ('c')) as t (m)"
    )
    exposure.run_sql(con, "exposure_sample_sets")
    exposure.run_sql(con, "exposure_user_candidates")
    exposure.prepare_lists(con)
    con.execute("set memory_limit = '4MB'")
    with pytest.raises(duckdb.OutOfMemoryException):
        exposure._sample_and_rank(con, exposure.StudyParams(memory_limit="4MB"), False)
    assert exposure._sample_and_rank(con, exposure.StudyParams(), False) is True
    limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    assert limit == "2.7 GiB"  # SAMPLING_FALLBACK_LIMIT, 3GB
    n_users = con.execute("select count(distinct user_id) from exposure_user_metrics").fetchone()
    assert n_users == (300,)
