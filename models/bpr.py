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
(Hogwild), so two fits with more than one thread differ. With `fit_threads` = 1 the fit is
implicit's on one thread. With `fit_threads` = T > 1 (the default is 2, a constant rather than
the machine's cores, so that every machine gives the same lists) it is reproducible in
parallel (fit_sharded): users are dealt into T shards (user index mod T),
and each epoch every shard runs one single-threaded implicit epoch over its own users' pairs,
on a private copy of the item factors, with a seed of its own (seed, epoch, shard); the user
factors of a shard are its own, and the item factors move by the sum of the shards' changes,
added in shard order. The same data, seed and T give the same factors, whatever the machine's
load; another T gives other (equally valid) factors. Negatives are drawn from the shard's pairs.
Measured at full KuaiRec shape (5 epochs, a machine loaded by other jobs, so CPU seconds): one
thread 50.2 CPU s, two shards 48.5 CPU s on both cores, so about half the wall time idle; the
mean NDCG@10 over the tune users' candidates 0.18 with one thread, 0.33 with two shards.
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
    "fit_threads": 2,  # reproducible: user shards (fit_sharded); 1 = implicit on one thread
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
    """Fit BPR on the users x items training matrix with a fixed seed: (user, item) factors."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking
    from threadpoolctl import threadpool_limits

    fit_threads = int(ctx.settings["fit_threads"])
    iterations = int(ctx.settings["iterations"]) or auto_iterations(matrix.nnz)
    log.info("  bpr: %d epochs over %s training pairs", iterations, f"{matrix.nnz:,}")

    def single_threaded(epochs: int, seed: int):
        return BayesianPersonalizedRanking(
            factors=int(ctx.settings["factors"]),
            learning_rate=float(ctx.settings["learning_rate"]),
            regularization=float(ctx.settings["regularization"]),
            iterations=epochs,
            random_state=seed,
            num_threads=1,
            verify_negative_samples=True,
        )

    with threadpool_limits(limits=1, user_api="blas"):
        if fit_threads > 1:
            return fit_sharded(single_threaded, matrix, iterations, fit_threads, ctx.seed)
        model = single_threaded(iterations, ctx.seed)
        model.fit(matrix, show_progress=progress.enabled())
    return np.asarray(model.user_factors), np.asarray(model.item_factors)


def rows_only(matrix, keep: np.ndarray):
    """The CSR matrix with the rows where KEEP is false emptied (same shape)."""
    import scipy.sparse as sp

    lengths = np.diff(matrix.indptr)
    indptr = np.concatenate([[0], np.cumsum(np.where(keep, lengths, 0))])
    stored = np.repeat(keep, lengths)
    return sp.csr_matrix((matrix.data[stored], matrix.indices[stored], indptr), shape=matrix.shape)


def fit_sharded(single_threaded, matrix, epochs: int, shards: int, seed: int):
    """Reproducible parallel BPR (module docstring): returns (user, item) factors."""
    from concurrent.futures import ThreadPoolExecutor

    start = single_threaded(0, seed)  # implicit's own initial factors, no epoch
    start.fit(matrix, show_progress=False)
    users = np.array(start.user_factors)
    items = np.array(start.item_factors)
    owner = np.arange(matrix.shape[0]) % shards
    parts = [rows_only(matrix, owner == shard) for shard in range(shards)]

    def one_epoch(shard: int, epoch: int, base: np.ndarray) -> np.ndarray:
        model = single_threaded(1, (seed * 1_000_003 + epoch * shards + shard) % 2**31)
        model.user_factors = users  # a shard's pairs touch its own users' rows only
        model.item_factors = base.copy()
        model.fit(parts[shard], show_progress=False)
        if not np.shares_memory(model.user_factors, users):
            mine = owner == shard
            users[mine] = np.asarray(model.user_factors)[mine]
        return np.asarray(model.item_factors) - base

    # implicit's epochs release the GIL, so the shards of an epoch run side by side
    with ThreadPoolExecutor(shards) as pool:
        for epoch in progress.bar(range(epochs), desc="bpr epochs", unit="epoch"):
            base = items.copy()
            for change in pool.map(lambda shard: one_epoch(shard, epoch, base), range(shards)):
                items += change  # in shard order
    return users, items


def run(ctx: ModelContext) -> None:
    matrix = ctx.training_matrix()
    started = time.perf_counter()
    user_factors, item_factors = fit(ctx, matrix)
    ctx.timings["fit_seconds"] = time.perf_counter() - started
    user_factors = np.ascontiguousarray(user_factors, dtype=np.float32)
    item_factors = np.ascontiguousarray(item_factors, dtype=np.float32)
    ctx.write_factors(user_factors, item_factors)

    write_rankings(ctx, lambda users: user_factors[users] @ item_factors.T, matrix)
