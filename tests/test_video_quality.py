"""video_quality on planted KuaiRec-format data whose right answer is known, built by the CLI.

- exposure against quality: the feed showed "bait" videos (poor) to users who engage with
  everything and "gems" (good) to users who engage with little. Naive popularity (by watch ratio
  or by engaged share) ranks the bait first; video_quality, with its user effects, ranks the
  gems first, as the fully observed test matrix does. A video seen by three users who loved it
  does not top the list (shrinkage towards the global rate).
- the clip choice: heavy users saw every video, light users a fifth; "niche" videos please heavy
  users and put off light ones, "broad" videos please everybody a little. Counted per view the
  niche videos look best; counted per user (the test's weighting, inverse propensity with the
  default clip) the broad ones are, as in the test matrix. clip = 1 (no correction) falls back
  to the per-view answer.
- the label: short videos watched several times over win under the ratio label, the good long
  videos under the debiased one; video_quality follows the label of the build.
- the outcome: both outcomes (engaged share, log ratio) pass the exposure and shrinkage cases;
  with six views a video, the continuous outcomes (log ratio, ratio) order the videos by their
  planted quality more closely than the binary engaged share.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.planted import write_kuairec

DURATION_MS = 10_000
BAIT = list(range(100, 110))
GEMS = list(range(200, 210))
NEUTRAL = list(range(300, 320))
FLUKE = 900


def _ratio(rng, log_ratio: float, noise: float = 0.5) -> float:
    return float(np.exp(log_ratio + rng.normal(0, noise)))


def exposure_world(folder):
    """Training users 0..299 (even: eager, odd: reluctant), test users 300..359 (alike)."""
    rng = np.random.default_rng(3)
    quality = {**dict.fromkeys(BAIT, -0.2), **dict.fromkeys(GEMS, 0.6), FLUKE: 0.0}
    quality |= {v: rng.normal(0, 0.1) for v in NEUTRAL}

    def eager(user: int) -> bool:
        return user % 2 == 0

    def base(user: int) -> float:
        return 1.2 if eager(user) else 0.0

    big = []
    for user in range(300):
        shown = list(NEUTRAL)
        # the feed shows bait to eager users and gems to reluctant ones, bait far more often
        shown += [v for v in BAIT if eager(user) or rng.random() < 0.05]
        shown += [v for v in GEMS if rng.random() < (0.03 if eager(user) else 0.8)]
        big += [(user, v, _ratio(rng, base(user) + quality[v], 0.8)) for v in shown]
    big += [(user, FLUKE, 20.0) for user in (1, 3, 5)]  # three users loved it
    small = []
    for user in range(300, 360):
        big += [(user, v, _ratio(rng, base(user) + quality[v], 0.8)) for v in NEUTRAL[:10]]
        for v in BAIT + GEMS + NEUTRAL[10:] + [FLUKE]:
            small.append((user, v, _ratio(rng, base(user) + quality[v], 0.8)))
    videos = BAIT + GEMS + NEUTRAL + [FLUKE]
    return write_kuairec(folder, big, small, dict.fromkeys(videos, DURATION_MS))


NICHE = list(range(100, 110))
BROAD = list(range(200, 210))
OTHERS = list(range(300, 320))


def activity_world(folder):
    """Training users 0..149 heavy (saw everything), 150..299 light (a fifth); test users
    300..359, half of each kind, see everything."""
    rng = np.random.default_rng(5)
    videos = NICHE + BROAD + OTHERS

    def effect(user: int, video: int) -> float:
        heavy = user < 150 or (user >= 300 and user % 2 == 0)
        if video in NICHE:
            return 1.1 if heavy else -1.5
        return 0.8 if video in BROAD else 0.0

    big = []
    for user in range(300):
        shown = videos if user < 150 else [v for v in videos if rng.random() < 0.2]
        big += [(user, v, _ratio(rng, effect(user, v))) for v in shown]
    small = []
    for user in range(300, 360):
        big += [(user, v, _ratio(rng, effect(user, v))) for v in OTHERS[:10]]
        small += [(user, v, _ratio(rng, effect(user, v))) for v in NICHE + BROAD + OTHERS[10:]]
    return write_kuairec(folder, big, small, dict.fromkeys(videos, DURATION_MS))


def build(tmp_path, data, *extra: str, models="popularity,popularity_engagement,video_quality"):
    db = tmp_path / "k.duckdb"
    result = run_cli("build", "--data", str(data), "--db", str(db), "--models", models, *extra)
    assert result.returncode == 0, result.stderr
    return duckdb.connect(str(db), read_only=True)


def top_list(con, model: str, k: int) -> list[int]:
    """The model's first K videos for a test user (the non-personal models share one order)."""
    rows = con.execute(
        "select video_id from eval_rankings where model = ? and user_id = 300 "
        "and rank <= ? order by rank",
        [model, k],
    ).fetchall()
    return [r[0] for r in rows]


def mean_rank(con, model: str, videos: list[int]) -> float:
    return con.execute(
        "select avg(rank) from eval_rankings where model = ? and user_id = 300 "
        "and list_contains(?, video_id)",
        [model, videos],
    ).fetchone()[0]


@pytest.fixture(scope="module", params=["engaged", "log_ratio", "ratio"])
def exposure_db(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exposure")
    outcome = f"video_quality.outcome={request.param}"
    con = build(folder, exposure_world(folder / "data"), "--set", outcome)
    yield con
    con.close()


def test_the_test_matrix_prefers_gems_to_bait(exposure_db):
    relevant_share = dict(
        exposure_db.execute(
            "select video_id in (select unnest(?)), avg(is_relevant::int) from eval_ground_truth "
            "where list_contains(?, video_id) group by all",
            [GEMS, BAIT + GEMS],
        ).fetchall()
    )
    assert relevant_share[True] > relevant_share[False] + 0.2


@pytest.mark.parametrize("naive", ["popularity", "popularity_engagement"])
def test_naive_popularity_falls_for_the_exposure_and_video_quality_does_not(exposure_db, naive):
    assert mean_rank(exposure_db, naive, BAIT) < mean_rank(exposure_db, naive, GEMS)
    assert mean_rank(exposure_db, "video_quality", GEMS) < mean_rank(
        exposure_db, "video_quality", NEUTRAL
    )
    assert mean_rank(exposure_db, "video_quality", NEUTRAL) < mean_rank(
        exposure_db, "video_quality", BAIT
    )
    ndcg = dict(
        exposure_db.execute(
            "select model, value from eval_metrics where split = 'all' and k = 10 "
            "and metric = 'ndcg'"
        ).fetchall()
    )
    assert ndcg["video_quality"] > ndcg[naive] + 0.2


def test_a_video_three_users_loved_does_not_top_the_list(exposure_db, tmp_path):
    assert top_list(exposure_db, "popularity", 1) == [FLUKE]  # a mean, hardly shrunk
    assert top_list(exposure_db, "video_quality", 1) != [FLUKE]
    data = exposure_db.execute("select value from build_info where key = 'data_location'")
    location = data.fetchone()[0]
    settings = exposure_db.execute(
        "select value from build_info where key = 'model.video_quality.settings'"
    ).fetchone()[0]
    outcome = json.loads(settings)["outcome"]
    unshrunk = build(
        tmp_path,
        location,
        "--set",
        "video_quality.prior_views=0.01",
        "--set",
        f"video_quality.outcome={outcome}",
    )
    assert top_list(unshrunk, "video_quality", 1) == [FLUKE]
    unshrunk.close()


@pytest.fixture(scope="module")
def activity_data(tmp_path_factory):
    return activity_world(tmp_path_factory.mktemp("activity") / "data")


def test_the_test_matrix_prefers_broad_videos_per_user(tmp_path, activity_data):
    con = build(tmp_path, activity_data, models="popularity_engagement,video_quality")
    share = dict(
        con.execute(
            "select video_id in (select unnest(?)), avg(is_relevant::int) from eval_ground_truth "
            "where list_contains(?, video_id) group by all",
            [BROAD, NICHE + BROAD],
        ).fetchall()
    )
    assert share[True] > share[False]
    # the default clip counts users alike: broad videos first
    assert mean_rank(con, "video_quality", BROAD) < mean_rank(con, "video_quality", NICHE)
    # naive engaged share counts views: heavy users' niche favourites first
    assert mean_rank(con, "popularity_engagement", NICHE) < mean_rank(
        con, "popularity_engagement", BROAD
    )
    con.close()


def test_clip_one_turns_the_correction_off(tmp_path, activity_data):
    con = build(tmp_path, activity_data, "--set", "video_quality.clip=1.0")
    assert mean_rank(con, "video_quality", NICHE) < mean_rank(con, "video_quality", BROAD)
    settings = con.execute(
        "select value from build_info where key = 'model.video_quality.settings'"
    ).fetchone()[0]
    assert '"clip": 1.0' in settings
    con.close()


def test_a_clip_outside_zero_to_one_is_one_line(tmp_path, activity_data):
    result = run_cli(
        "build", "--data", str(activity_data), "--db", str(tmp_path / "k.duckdb"),
        "--models", "video_quality", "--set", "video_quality.clip=0",
    )  # fmt: skip
    assert result.returncode != 0
    assert "video_quality.clip: expected a number above 0 and at most 1" in result.stderr
    assert "Traceback" not in result.stderr


SHORT = list(range(100, 110))  # 3 s, watched about three times over
LONG_GOOD = list(range(200, 205))  # 60 s, better than the other long videos
LONG_PLAIN = list(range(205, 210))


def duration_world(folder):
    rng = np.random.default_rng(9)
    level = {**dict.fromkeys(SHORT, 1.0), **dict.fromkeys(LONG_GOOD, 0.1)}
    level |= dict.fromkeys(LONG_PLAIN, -0.7)
    durations = {**dict.fromkeys(SHORT, 3_000), **dict.fromkeys(LONG_GOOD + LONG_PLAIN, 60_000)}
    videos = sorted(durations)
    big = [(u, v, _ratio(rng, level[v])) for u in range(200) for v in videos]
    small = [(u, v, _ratio(rng, level[v])) for u in range(200, 240) for v in videos]
    big += [(u, v, 1.0) for u in range(200, 240) for v in (100,)]  # so they are big-matrix users
    small = [row for row in small if row[1] != 100]
    return write_kuairec(folder, big, small, durations)


@pytest.mark.parametrize(
    "label, first",
    [
        (["--label", "debiased"], LONG_GOOD),
        (["--label", "ratio", "--label-threshold", "2.0"], SHORT),
    ],
)
def test_it_fits_the_label_the_build_evaluates(tmp_path, label, first):
    """Short videos are watched several times over, so the ratio label (watch_ratio > 2) likes
    them; the debiased label compares each view with views of the same length, where the good
    long videos stand out. video_quality follows the label of the build."""
    con = build(tmp_path, duration_world(tmp_path / "data"), *label)
    top = con.execute(
        "select video_id from eval_rankings where model = 'video_quality' and user_id = 200 "
        "order by rank limit 4"
    ).fetchall()
    assert {r[0] for r in top} <= set(first)
    con.close()


GRADED = list(range(100, 160))
FILLER = list(range(300, 310))


def sparse_world(folder):
    """60 videos of graded quality, each seen by about six of the 300 training users; test users
    300..359 see every one."""
    rng = np.random.default_rng(13)
    quality = dict(zip(GRADED, np.linspace(-1.0, 1.0, len(GRADED))))
    big = []
    for user in range(300):
        big += [(user, v, _ratio(rng, quality[v], 0.8)) for v in GRADED if rng.random() < 0.02]
        big.append((user, FILLER[user % 10], 1.0))
    small = []
    for user in range(300, 360):
        big += [(user, v, 1.0) for v in FILLER]
        small += [(user, v, _ratio(rng, quality[v], 0.8)) for v in GRADED]
    return write_kuairec(folder, big, small, dict.fromkeys(GRADED + FILLER, DURATION_MS))


def rank_correlation_with_quality(con) -> float:
    """Spearman correlation of video_quality's order with the planted quality (no ties)."""
    ranks = dict(
        con.execute(
            "select video_id, rank from eval_rankings where model = 'video_quality' "
            "and user_id = 300 and list_contains(?, video_id)",
            [GRADED],
        ).fetchall()
    )
    model_order = np.argsort(np.argsort([-ranks[v] for v in GRADED]))
    return float(np.corrcoef(model_order, np.arange(len(GRADED)))[0, 1])


def test_a_continuous_outcome_reads_more_from_few_views_than_the_engaged_share(tmp_path):
    data = sparse_world(tmp_path / "data")
    correlation = {}
    for outcome in ("engaged", "log_ratio", "ratio"):  # one database: each retrains the model
        con = build(tmp_path, data, "--set", f"video_quality.outcome={outcome}")
        correlation[outcome] = rank_correlation_with_quality(con)
        con.close()
    for continuous in ("log_ratio", "ratio"):  # measured: 0.80 engaged, 0.885 and 0.881
        assert correlation[continuous] > correlation["engaged"] + 0.03
        assert correlation[continuous] > 0.85


def test_an_unknown_outcome_is_one_line(tmp_path, activity_data):
    result = run_cli(
        "build", "--data", str(activity_data), "--db", str(tmp_path / "k.duckdb"),
        "--models", "video_quality", "--set", "video_quality.outcome=watch_time",
    )  # fmt: skip
    assert result.returncode != 0
    assert "video_quality.outcome: expected 'engaged' or 'log_ratio'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_estimate_is_reused_only_for_the_same_settings_and_inputs(tmp_path):
    """estimate() keeps its last result (two_stage asks for the defaults' effects right after
    video_quality fitted them): the same settings and tables give that result; a shadowed
    training log or other settings give a fresh fit, equal to one in a clean process state."""
    import shutil

    from kuairec_db import runner
    from kuairec_db.modelapi import ModelContext

    built = build(tmp_path, sparse_world(tmp_path / "data"))
    built.close()
    shutil.copy(tmp_path / "k.duckdb", tmp_path / "copy.duckdb")
    con = duckdb.connect(str(tmp_path / "copy.duckdb"))
    model = runner.discover()["video_quality"]
    module = runner.load_module(model)
    defaults = runner.model_defaults(model)

    def estimate(settings=None):
        return module.estimate(ModelContext(con, model.name, settings or defaults, 100, 1, 42))

    def fresh(settings=None):
        module._LAST_ESTIMATE.clear()
        return estimate(settings)

    first = fresh().effects
    assert estimate().effects is first
    con.execute(
        "create temp table int_train_events as "
        "select * from main.int_train_events where user_id % 7 <> 0"
    )
    shadowed = estimate().effects
    assert shadowed is not first
    assert not np.array_equal(shadowed.effect, first.effect)
    np.testing.assert_array_equal(shadowed.effect, fresh().effects.effect)
    con.execute("drop table temp.int_train_events")
    np.testing.assert_array_equal(estimate().effects.effect, first.effect)
    other = estimate({**defaults, "prior_views": 5.0}).effects
    assert not np.array_equal(other.effect, first.effect)
    refit = fresh({**defaults, "prior_views": 5.0}).effects
    np.testing.assert_array_equal(other.effect, refit.effect)
    with pytest.raises(ValueError):
        first.effect[0] = 0.0  # a shared result cannot be changed in place
    con.close()


# --- transfer: how much of a video's logged effect carries over to the test matrix ----------
def _video_quality_module():
    from kuairec_db import runner

    return runner.load_module(runner.discover()["video_quality"])


LENGTHS = list(range(400, 440))
FILLERS = list(range(500, 505))


def context_world(folder, transfers: bool):
    """40 videos from 3 to 60 s; a view plays about 7 s whatever the length, so within one of
    the label's length buckets a shorter video is more often relevant. The feed gave each video
    a context effect (sd 0.5) on top of that: with transfers=False it is in the log only (where
    the feed placed the video), with True it is the video's own and the test matrix has it too.
    Training users 0..199 saw every video; test users 200..299 see every one in the small
    matrix (and only fillers in the big one)."""
    rng = np.random.default_rng(21)
    seconds = np.exp(np.linspace(np.log(3.0), np.log(60.0), len(LENGTHS)))
    length_effect = dict(zip(LENGTHS, -np.log(seconds / 7.0)))
    context = dict(zip(LENGTHS, rng.normal(0.0, 0.5, len(LENGTHS))))
    big = [
        (u, v, _ratio(rng, length_effect[v] + context[v], 0.3)) for u in range(200) for v in LENGTHS
    ]
    big += [(u, v, 1.0) for u in range(200, 300) for v in FILLERS]
    test_context = context if transfers else dict.fromkeys(LENGTHS, 0.0)
    small = [
        (u, v, _ratio(rng, length_effect[v] + test_context[v], 0.3))
        for u in range(200, 300)
        for v in LENGTHS
    ]
    durations = {v: round(1000 * s) for v, s in zip(LENGTHS, seconds)}
    return write_kuairec(folder, big, small, {**durations, **dict.fromkeys(FILLERS, 7_000)})


def _info(con, key: str) -> str:
    return con.execute("select value from build_info where key = ?", [key]).fetchall()[0][0]


def _test_ndcg(con, model: str = "video_quality") -> float:
    return con.execute(
        "select value from eval_metrics where split = 'test' and k = 10 and metric = 'ndcg' "
        "and model = ?",
        [model],
    ).fetchall()[0][0]


def test_a_logged_effect_that_does_not_transfer_is_shrunk_to_the_length_part(tmp_path):
    """The log's context effect is not in the test matrix: trusting the log (transfer 1) ranks
    by it; the choice on the tune users keeps mostly the length part, and test users agree."""
    data = context_world(tmp_path / "data", transfers=False)
    auto = build(tmp_path, data)
    assert _info(auto, "model.video_quality.chosen.outcome") == "ratio"
    assert float(_info(auto, "model.video_quality.chosen.transfer")) <= 0.3
    assert 0 < float(_info(auto, "model.video_quality.chosen.tune_ndcg_at_10")) <= 1
    auto_ndcg, popularity_ndcg = _test_ndcg(auto), _test_ndcg(auto, "popularity")
    auto.close()
    trusting = build(tmp_path, data, "--set", "video_quality.transfer=1")  # retrains it alone
    assert auto_ndcg > _test_ndcg(trusting) + 0.1
    assert auto_ndcg > popularity_ndcg + 0.1
    trusting.close()


def test_a_logged_effect_that_transfers_is_kept(tmp_path):
    """The same world where the context is the video's own quality: the choice keeps much of
    it, and test users agree against the length part alone (transfer 0)."""
    data = context_world(tmp_path / "data", transfers=True)
    auto = build(tmp_path, data)
    assert float(_info(auto, "model.video_quality.chosen.transfer")) >= 0.4
    auto_ndcg = _test_ndcg(auto)
    auto.close()
    length_only = build(tmp_path, data, "--set", "video_quality.transfer=0")
    assert auto_ndcg > _test_ndcg(length_only) + 0.1
    length_only.close()


def test_length_part_is_the_within_bucket_fit_of_the_effect():
    module = _video_quality_module()
    # two buckets; effect = intercept of the bucket - 0.5 ln(length) exactly, one video unseen
    log_length = np.array([1.0, 2.0, 3.0, 1.5, 2.5, np.nan])
    bucket = np.array([1, 1, 1, 2, 2, np.nan])
    effect = np.array([0.5, 0.0, -0.5, 1.25, 0.75, 0.0])
    n_eff = np.array([3.0, 1.0, 2.0, 1.0, 4.0, 0.0])
    part = module.length_part(effect, n_eff, log_length, bucket)
    np.testing.assert_allclose(part[:5], effect[:5], atol=1e-12)
    # off the line: the bucket intercepts and the common slope of weighted least squares,
    # by hand: bucket 1 holds lengths 1, 2 (weights 1, 1), bucket 2 lengths 1, 3 (weights 1, 1)
    part = module.length_part(
        np.array([1.0, 0.0, 2.0, 0.0]),
        np.ones(4),
        np.array([1.0, 2.0, 1.0, 3.0]),
        np.array([1, 1, 2, 2]),
    )
    # centred lengths -0.5, 0.5, -1, 1; effects centred 0.5, -0.5, 1, -1: slope = -2.5 / 2.5
    np.testing.assert_allclose(part, [1.0, 0.0, 2.0, 0.0], atol=1e-12)
    part = module.length_part(
        np.array([0.0, 0.0, 2.0, 0.0]), np.ones(4), np.array([1.0, 2.0, 1.0, 3.0]), [1, 1, 2, 2]
    )
    # slope = (0 + 0 - 1 - 1) / 2.5 = -0.8; bucket means 0 and 1
    np.testing.assert_allclose(part, [0.4, -0.4, 1.8, 0.2], atol=1e-12)


def test_transfer_one_is_the_effect_as_fitted_and_zero_the_length_part():
    module = _video_quality_module()
    rng = np.random.default_rng(4)
    effect = rng.normal(size=50)
    n_eff = np.r_[rng.uniform(1, 9, 49), 0.0]
    effects = module.VideoEffects(0.3 + effect, effect, np.ones(50), n_eff, n_eff, 0.3)
    length = rng.normal(size=50)
    one = module.transferred(effects, length, 1.0, "ratio")
    assert np.array_equal(one[:49], 0.3 + effect[:49])  # bit for bit: the old scores
    zero = module.transferred(effects, length, 0.0, "ratio")
    np.testing.assert_allclose(zero[:49], 0.3 + length[:49], atol=1e-12)
    assert one[49] == zero[49] == 0.3  # no training views: mu
    engaged = module.transferred(effects, length, 0.4, "engaged")
    linear = module.transferred(effects, length, 0.4, "ratio")
    np.testing.assert_allclose(engaged, 1 / (1 + np.exp(-linear)), atol=1e-12)


def test_the_choice_scores_ndcg_as_the_hybrid_does():
    """TuneCandidates.ndcg against hybrid.ndcg_at (an independent implementation: per user,
    sorting) on random candidates with tied scores, and one case by hand."""
    from kuairec_db import runner

    module = _video_quality_module()
    hybrid = runner.load_module(runner.discover()["hybrid"])
    rng = np.random.default_rng(8)
    users, items, relevant = [], [], []
    for user in range(30):
        chosen = np.sort(rng.choice(40, size=rng.integers(1, 40), replace=False))
        users += [user] * len(chosen)
        items += chosen.tolist()
        relevant += (rng.random(len(chosen)) < rng.uniform(0, 0.6)).tolist()
    users, items, relevant = np.array(users), np.array(items), np.array(relevant)
    for k in (1, 3, 10):
        tune = module.TuneCandidates(users, items, relevant, k)
        for _ in range(5):
            score = rng.integers(0, 6, 40).astype(float)  # many ties: to the smaller index
            n_relevant = {u: int(relevant[users == u].sum()) for u in range(30)}
            expected = hybrid.ndcg_at(score[items], relevant, users, items, n_relevant, k)
            assert tune.ndcg(score) == pytest.approx(expected, abs=1e-12)
    # user 0: candidates 0, 1, 2, relevant 2; user 1: candidates 1, 2, relevant 1 and 2
    tune = module.TuneCandidates(
        np.array([0, 0, 0, 1, 1]), np.array([0, 1, 2, 1, 2]), np.array([0, 0, 1, 1, 1], bool), 2
    )
    score = np.array([3.0, 2.0, 1.0])  # user 0 ranks 0, 1 first: 0; user 1 gets both: 1
    assert tune.ndcg(score) == pytest.approx(0.5)
    score = np.array([1.0, 2.0, 2.0])  # user 0: 1 then 2 (tie to the smaller): 1 / log2(3)
    assert tune.ndcg(score) == pytest.approx((1 / np.log2(3) + 1.0) / 2)
