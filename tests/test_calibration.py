"""Calibration of the intervals and tests themselves, on a planted world with no difference.

Many datasets are drawn with numpy and fed to the project's own SQL (int_resampling_weights,
eval_resampled_sums, eval_intervals, eval_metrics_ci, eval_paired) in one in-memory DuckDB: no
build. Each dataset is one cutoff k = 1 .. N_DATASETS of the same N_USERS users, so the
datasets share the 1,000 resampling weights and signs of those users (as every series of a real
build does) but have independent values. Four models draw each user's value from the same
distribution, so every true difference is 0 and each model's true mean is TRUE_MEAN.

Tolerances: with N_DATASETS = 400 and a true rate of 5%, the number of datasets whose 95%
interval misses the truth is Binomial(400, 0.05): mean 20, sd 4.4. The test accepts the
central 99.9% of that law, [LOW, HIGH] = [7, 36] (scipy.stats.binom.ppf(0.0005 / 0.9995)):
a correct method fails by chance once in a thousand runs (the data are seeded, so a run is
reproducible). An interval too narrow by half would miss about 33% of the time (about 130
datasets): far outside, which the test checks as well. Measured with this seed: 21 and 20
misses of the mean's and the difference's intervals (140 and 128 at half width), 21 p-values
at most 0.05, and among the 6 pairs of 4 models some p at most 0.05 in 75 datasets unadjusted,
17 with Holm.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from scipy.stats import binom

from kuairec_db.stages import SQL_DIR, create_macros, select_body

N_DATASETS = 400
N_USERS = 200
MODELS = ("a", "b", "c", "d")
RATE = 0.05
LOW, HIGH = (int(binom.ppf(q, N_DATASETS, RATE)) for q in (0.0005, 0.9995))
# A user's value: hit with probability p_u ~ Beta(2, 5) (shared by the models, so the pairs
# are correlated as real models are), then graded: a hit scores 1 / log2(1 + rank), rank
# uniform on 1 .. 5. E[value] = E[p] * mean of 1 / log2(1 + r).
TRUE_MEAN = 2 / 7 * float(np.mean(1 / np.log2(1 + np.arange(1, 6))))


def _body(folder: str, name: str) -> str:
    return select_body((SQL_DIR / folder / f"{name}.sql").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def planted() -> duckdb.DuckDBPyConnection:
    rng = np.random.default_rng(20261201)
    p = rng.beta(2, 5, size=(N_DATASETS, 1, N_USERS))
    hits = rng.random((N_DATASETS, len(MODELS), N_USERS)) < p
    ranks = rng.integers(1, 6, size=hits.shape)
    values = np.where(hits, 1 / np.log2(1 + ranks), 0.0)
    k, m, u = np.meshgrid(
        np.arange(1, N_DATASETS + 1),
        np.arange(len(MODELS)),
        np.arange(1, N_USERS + 1),
        indexing="ij",
    )
    frame = {
        "model": np.array(MODELS)[m.ravel()],
        "user_id": u.ravel().astype(np.int32),
        "k": k.ravel().astype(np.int32),
        "value": values.ravel(),
    }
    con = duckdb.connect(config={"threads": "2"})
    create_macros(con)
    import pandas as pd

    con.register("planted_frame", pd.DataFrame(frame))
    con.execute(
        "create table eval_user_metrics as select model, 'test' as split, user_id, k, "
        "'ndcg' as metric, value from planted_frame"
    )
    con.execute(
        "create table int_ground_truth as select distinct user_id, 1 as video_id "
        "from eval_user_metrics"
    )
    con.execute("create table int_user_index (user_id integer)")
    con.execute(
        "create table int_resampling_weights as " + _body("intermediate", "int_resampling_weights")
    )
    con.execute(
        "create view eval_user_values as select 'eval_metrics' as relation, model, split, "
        "'all' as segment_kind, 'all' as segment, k, metric, user_id, value "
        "from eval_user_metrics"
    )
    for name in ("eval_resampled_sums", "eval_intervals", "eval_metrics_ci", "eval_paired"):
        con.execute(f"create view {name} as {_body('eval', name)}")
    con.execute(
        "create table paired as select * from eval_paired "
        "where split = 'test' and model_a <> model_b"
    )
    con.execute("create table metrics_ci as select * from eval_metrics_ci where split = 'test'")
    yield con
    con.close()


def test_the_tolerance_is_the_binomial_one():
    assert (LOW, HIGH) == (7, 36)


def test_95_percent_intervals_of_a_mean_miss_the_truth_5_percent_of_the_time(planted):
    misses, narrow = planted.execute(
        "select count(*) filter (where ci_low > ? or ci_high < ?), "
        "count(*) filter (where value - (value - ci_low) / 2 > ? "
        "    or value + (ci_high - value) / 2 < ?) "
        "from metrics_ci where model = 'a'",
        [TRUE_MEAN] * 4,
    ).fetchone()
    assert LOW <= misses <= HIGH, misses
    assert narrow > HIGH, narrow  # half as wide: the test would catch it


def test_95_percent_intervals_of_a_zero_difference_exclude_it_5_percent_of_the_time(planted):
    misses, narrow, n = planted.execute(
        "select count(*) filter (where ci_low > 0 or ci_high < 0), "
        "count(*) filter (where mean_diff - (mean_diff - ci_low) / 2 > 0 "
        "    or mean_diff + (ci_high - mean_diff) / 2 < 0), count(*) "
        "from paired where model_a = 'a' and model_b = 'b'"
    ).fetchone()
    assert n == N_DATASETS
    assert LOW <= misses <= HIGH, misses
    assert narrow > HIGH, narrow


def test_sign_flip_p_values_reject_a_true_null_5_percent_of_the_time(planted):
    (rejections,) = planted.execute(
        "select count(*) filter (where p_value <= 0.05) from paired "
        "where model_a = 'a' and model_b = 'b'"
    ).fetchone()
    assert LOW <= rejections <= HIGH, rejections


def test_holm_keeps_the_family_wise_error_rate_near_5_percent(planted):
    # a family: the 6 pairs of the 4 models on one dataset (one split, k and metric)
    raw, holm, pairs = planted.execute(
        """
        select count(*) filter (where any_raw), count(*) filter (where any_holm), min(n)
        from (
            select k, bool_or(p_value <= 0.05) as any_raw, bool_or(p_value_holm <= 0.05)
                as any_holm, count(*) as n
            from paired where model_a < model_b group by k
        )
        """
    ).fetchone()
    assert pairs == 6
    assert holm <= HIGH, holm  # at most 5% (Holm is conservative when tests correlate)
    assert raw > HIGH, raw  # unadjusted, some pair of six "differs" far more often
    holm_is_stricter = planted.execute(
        "select bool_and(p_value_holm >= p_value - 1e-12) from paired"
    ).fetchone()[0]
    assert holm_is_stricter
