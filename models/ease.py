"""ease: Embarrassingly Shallow Autoencoder (Steck 2019), a closed-form item-item linear model.

Input: the users x videos training matrix X from int_train_interactions: the pair's confidence
(the default) or, with `binary` true as in the paper, 1 for every training pair.
Fit: with G = X^T X + l2 I and P = G^-1,
    B = I - P diag(1 / diag(P)),  i.e. B[i, j] = -P[i, j] / P[j, j] and B[j, j] = 0,
the minimiser of |X - X B|^2 + l2 |B|^2 subject to diag(B) = 0 (each column of B is the ridge
regression of one video on all the others). P comes from a Cholesky factorisation, in place.
Score: x_uj = (X B)[u, j], a sum over the user's training videos i of X[u, i] B[i, j].
Output: the top-N unseen videos of every big-matrix user and the top-N candidates of every
small-matrix user; no factors. Every candidate's score goes to model_candidate_scores (4.7M
rows at full scale), from which ``rescore`` (exposure-study) ranks again without refitting.

`max_items` > 0 fits on the max_items videos with the most training users only (ties to the
smaller video_id); the other videos are not scored and rank last (score -inf, written only where
a list has nothing else left). 0 keeps the whole catalogue.

Cost at full KuaiRec shape (synthetic demo at scale 1.0: 7,176 users x 10,728 videos, 10.3M
training pairs), 2 cores shared with other jobs, float32:
- memory: X as a dense array (308 MB) and G, overwritten by P and then B (460 MB; float64
  would be 920 MB). The process grows by about 0.85 GB (1.31 GB peak against 0.47 GB before);
  a whole build's peak, 3.1 GB, is DuckDB's loading and stays the same with or without ease.
- time: 44.5 s in the least loaded build (63 to 79 s when other jobs held the cores): fit
  24.4 s (G = X^T X, 7,176 x 10,728^2 multiply-adds, about 8 s; the Cholesky inverse, about
  10,728^3 flops, about 10 s), then 18.8 s to score and rank all 7,176 users (X B in batches
  of dense GEMM, 1.65e12 flops) and 1 s to write.
- float64 (`dtype`): about 1.6x the CPU time and 0.7 GB more. float32 is accurate enough: for
  all 1,411 small-matrix users the top-100 candidates are the same set as in float64, in the
  same order for 98.7% of them and the same top 10 for 99.9% (swaps of near-equal scores).
- max_items = 3000: fit 7.8 s, and NDCG@10 (tune) 0.935 against 0.933 with every video.

Determinism: a multi-threaded BLAS or LAPACK call splits its sums by its thread count, so G and
P (and every score) changed in their last bits with --threads. The fit runs on `fit_threads`
BLAS threads (2, a constant rather than the machine's cores, so every machine gives the same
lists; 1 below MIN_ITEMS_FOR_THREADS videos) and scoring on one BLAS thread per batch.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp

from kuairec_db.errors import UserError
from kuairec_db.modelapi import ModelContext, binary, write_rankings
from kuairec_db.validate import Setting, max_threads

log = logging.getLogger(__name__)

# Chosen on the tune users of the synthetic demo at full KuaiRec shape, NDCG@10: confidence
# with l2 = 5,000 / 20,000 / 50,000 / 100,000 / 250,000 gives 0.588 / 0.871 / 0.910 / 0.933 /
# 0.933; binary with l2 = 500 / 3,000 / 10,000 gives 0.334 / 0.783 / 0.885. On the 0.1-scale
# demo confidence also wins, best near l2 = 2,000 (0.802; 0.5-0.6 at 100,000): l2 grows with
# the data, retune it on other data.
DEFAULTS = {"l2": 100_000.0, "binary": False, "max_items": 0, "dtype": "float32", "fit_threads": 2}
# The type and range of each setting, checked before the build starts.
SETTING_TYPES = {
    "l2": Setting(float, 0, low_open=True),
    "binary": Setting(bool),
    "max_items": Setting(int, 0),  # 0: every video
    "dtype": Setting(str, words=("float32", "float64")),
    "fit_threads": Setting(int, 1, max_threads()),
}

SYMMETRISE_BLOCK = 1024
MIN_ITEMS_FOR_THREADS = 3000


def inverse_spd_inplace(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite C-contiguous array, in its own buffer."""
    from scipy.linalg import lapack

    if not a.flags.c_contiguous or a.shape[0] != a.shape[1]:
        raise ValueError("needs a square C-contiguous array")
    potrf, potri = (
        (lapack.spotrf, lapack.spotri) if a.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    )
    # a.T is the same symmetric matrix in Fortran order, which LAPACK overwrites without a copy.
    # Its lower triangle is the upper triangle of the C-order view.
    factor, info = potrf(a.T, lower=True, clean=False, overwrite_a=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky factorisation failed (info {info})")
    inverse, info = potri(factor, lower=True, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse from the Cholesky factor failed (info {info})")
    if not np.shares_memory(inverse, a):
        a[...] = inverse.T
    n = a.shape[0]
    for start in range(0, n, SYMMETRISE_BLOCK):
        stop = min(start + SYMMETRISE_BLOCK, n)
        block = a[start:stop, start:stop]
        block[...] = np.triu(block) + np.triu(block, 1).T
        a[start:stop, :start] = a[:start, start:stop].T
    return a


def ease_weights(x: np.ndarray, l2: float) -> np.ndarray:
    """B of the module docstring from the dense users x items array x (its dtype throughout)."""
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += l2
    weights = inverse_spd_inplace(np.ascontiguousarray(gram))
    diagonal = np.diag(weights).copy()
    weights /= -diagonal  # column j divided by -P[j, j]
    np.fill_diagonal(weights, 0)
    return weights


def popular_items(matrix: sp.csr_matrix, n: int) -> np.ndarray:
    """Indices of the n items with the most stored users, ties to the smaller index, sorted."""
    counts = np.bincount(matrix.indices, minlength=matrix.shape[1])
    order = np.argsort(-counts, kind="stable")
    return np.sort(order[:n])


def run(ctx: ModelContext) -> None:
    from threadpoolctl import threadpool_limits

    l2 = float(ctx.settings["l2"])
    if not l2 > 0:
        raise UserError(f"ease.l2 must be above 0 (G + l2 I must be invertible), not {l2}")
    if ctx.settings["dtype"] not in ("float32", "float64"):
        raise UserError(f"ease.dtype must be float32 or float64, not {ctx.settings['dtype']!r}")
    dtype = np.dtype(ctx.settings["dtype"])
    matrix = ctx.training_matrix()
    weighted = binary(matrix, dtype) if ctx.settings["binary"] else matrix.astype(dtype)
    n_items = matrix.shape[1]
    max_items = int(ctx.settings["max_items"])
    items = popular_items(matrix, max_items) if 0 < max_items < n_items else np.arange(n_items)
    sub = sp.csr_matrix(weighted[:, items])

    # Below a few thousand videos one BLAS thread is faster: a multi-threaded LAPACK call on a
    # 1,000-video matrix can wait on busy cores for seconds to do milliseconds of work.
    blas_threads = int(ctx.settings["fit_threads"]) if len(items) >= MIN_ITEMS_FOR_THREADS else 1
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        started = time.perf_counter()
        weights = ease_weights(sub.toarray(), l2)
        ctx.timings["fit_seconds"] = time.perf_counter() - started

        def score_users(users: np.ndarray) -> np.ndarray:
            partial = sub[users].toarray() @ weights
            if len(items) == n_items:
                return partial
            scores = np.full((len(users), n_items), -np.inf, dtype=partial.dtype)
            scores[:, items] = partial
            return scores

        write_rankings(ctx, score_users, matrix, store_candidate_scores=True)


def rescore(ctx: ModelContext) -> None:
    """The candidates' scores of ``run`` as it stored them (model_candidate_scores): B is
    10,728 x 10,728 at full scale, the 4.7M candidate scores are smaller to keep."""
    ctx.write_eval_scores(*ctx.candidate_scores())
