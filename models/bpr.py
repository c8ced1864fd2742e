"""bpr: Bayesian Personalized Ranking matrix factorisation (Rendle et al. 2009) with implicit.

Input: the (user, video) pairs of int_train_interactions, each one positive of equal weight
(implicit's BPR samples a stored pair uniformly and ignores its value, so confidence plays no
part; a user with more training videos simply gives more samples).
Fit: stochastic gradient ascent on sum over sampled (u, i, j) of ln sigmoid(x_ui - x_uj), with
i a training video of u, j a video u has not watched (checked, verify_negative_samples), and
x_ui = p_u . q_i + b_i, L2 penalty `regularization` on the vectors touched.
Output: user and item factors (model_user_factors, model_item_factors) as implicit stores
them, factors + 1 numbers each: the last number of a user vector is the constant 1 and the
last number of an item vector is the item's bias b_i, so the dot product of the two stored
vectors is exactly the score x_ui. Then the top-N unseen videos of every big-matrix user and
the top-N candidates of every small-matrix user, ranked by x_ui.

Settings: `iterations` is implicit's epochs; 0 (the default) takes about 50M sampled triples
(auto_iterations: 5 epochs at full KuaiRec shape, 100 on the 0.1-scale demo), because the
number of SGD steps per epoch grows with the number of training pairs.

Cost at full KuaiRec shape (synthetic demo at scale 1.0, 10.3M training pairs, 2 cores): 5
epochs, fit 30 to 51 s on one core (the range is the load from other jobs), 34 to 57 s in all;
factors and scores need little memory.

Determinism: implicit's BPR updates shared factors from several threads without locks
(Hogwild), so two fits with more than one thread differ. The fit therefore runs on one thread
(`fit_threads`, default 1); only scoring uses every thread.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from kuairec_db import progress
from kuairec_db.modelapi import ModelContext, write_rankings
from kuairec_db.validate import Setting, max_threads

log = logging.getLogger(__name__)

# Opt-in (--models bpr): on the calibrated demo it ranks below random, since it learns which
# videos the feed showed a user, and watch time carries no such taste (README, "The synthetic
# demo").
RUNS_BY_DEFAULT = False

# Chosen on the tune users of the synthetic demo at full KuaiRec shape (scale 1.0, seed 7):
# NDCG@10 0.828 after 3 or 6 epochs at learning_rate 0.05, 0.742 at 0.01, 0.786 at 0.1.
# iterations = 0 picks the number of epochs from the data (auto_iterations).
DEFAULTS = {
    "factors": 64,
    "learning_rate": 0.05,
    "regularization": 0.01,
    "iterations": 0,
    "fit_threads": 1,
}
# The type and range of each setting, checked before the build starts.
SETTING_TYPES = {
    "factors": Setting(int, 1, 4096),
    "learning_rate": Setting(float, 0, 10, low_open=True),
    "regularization": Setting(float, 0),
    "iterations": Setting(int, 0, 10_000),  # 0: auto_iterations
    "fit_threads": Setting(int, 1, max_threads()),
}

# An epoch samples as many (user, video, negative) triples as there are training pairs, and
# costs about 0.6 s per million pairs on one core (1 s on a busy machine). AUTO_SAMPLES triples
# are 5 epochs at full KuaiRec shape (10.3M pairs, under a minute) and would be 500 on the
# 0.1-scale demo (0.1M pairs), where MAX_AUTO_ITERATIONS caps them.
AUTO_SAMPLES = 50_000_000
MAX_AUTO_ITERATIONS = 100


def auto_iterations(n_pairs: int) -> int:
    """Epochs for about AUTO_SAMPLES sampled triples, between 1 and MAX_AUTO_ITERATIONS."""
    return int(min(MAX_AUTO_ITERATIONS, max(1, round(AUTO_SAMPLES / max(n_pairs, 1)))))


def fit(ctx: ModelContext, matrix):
    """Fit BPR on the users x items training matrix with a fixed seed."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    fit_threads = int(ctx.settings["fit_threads"])
    iterations = int(ctx.settings["iterations"]) or auto_iterations(matrix.nnz)
    log.info("  bpr: %d epochs over %s training pairs", iterations, f"{matrix.nnz:,}")
    if fit_threads != 1:
        log.warning("bpr: fitting on %d threads is not reproducible (Hogwild updates)", fit_threads)
    with threadpool_limits(limits=1, user_api="blas"):
        model = BayesianPersonalizedRanking(
            factors=int(ctx.settings["factors"]),
            learning_rate=float(ctx.settings["learning_rate"]),
            regularization=float(ctx.settings["regularization"]),
            iterations=iterations,
            random_state=ctx.seed,
            num_threads=fit_threads,
            verify_negative_samples=True,
        )
        model.fit(matrix, show_progress=progress.enabled())
    return model


def run(ctx: ModelContext) -> None:
    from threadpoolctl import threadpool_limits

    matrix = ctx.training_matrix()
    started = time.perf_counter()
    model = fit(ctx, matrix)
    ctx.timings["fit_seconds"] = time.perf_counter() - started
    user_factors = np.ascontiguousarray(model.user_factors, dtype=np.float32)
    item_factors = np.ascontiguousarray(model.item_factors, dtype=np.float32)
    ctx.write_factors(user_factors, item_factors)

    with threadpool_limits(limits=ctx.threads, user_api="blas"):
        write_rankings(ctx, lambda users: user_factors[users] @ item_factors.T, matrix)
