"""itemknn: item-item nearest neighbours with implicit (CosineRecommender or BM25Recommender).

Input: the users x videos matrix X of int_train_interactions.confidence.
Fit: a video x video similarity S keeping, for each video i, its K most similar videos
(row i of S; S is not symmetric and includes i itself):
- weighting = "cosine": S[i, j] = x_i . x_j / (|x_i| |x_j|), x_i the column of video i;
- weighting = "bm25": S[i, j] = w_i . w_j, where w_i is column i of X reweighted by Okapi BM25
  with videos as documents and users as terms: w_ui = x_ui (K1 + 1) / (K1 (1 - B + B d_i / d)
  + x_ui) ln(n_videos / (1 + videos of user u)), d_i the sum of column i, d its mean.
Score: x_uj = sum over the user's training videos i of X[u, i] S[i, j], i.e. X S; a video that
is no neighbour of any of the user's videos scores 0. This is exactly what implicit's
``recommend`` ranks (tests/test_python_models.py checks it), computed here as one sparse
product per batch of users, which also ranks the evaluation candidates in one pass.
Output: the top-N unseen videos of every big-matrix user and the top-N candidates of every
small-matrix user, and S itself (model_video_neighbours: video, neighbour, similarity), from
which ``rescore`` (exposure-study) scores again without refitting; no factors.

Cost at full KuaiRec shape (synthetic demo at scale 1.0, 10.3M training pairs, 2 cores):
cosine with K = 200 fits in 20 to 46 s (implicit's all_pairs_knn on every thread; the range is
the load from other jobs) and scores every user in 5 to 12 s; the similarity holds K entries per
video (2.1M).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings

import numpy as np

from kuairec_db.errors import UserError
from kuairec_db.modelapi import ModelContext, write_rankings
from kuairec_db.validate import Setting

log = logging.getLogger(__name__)

# Chosen on the tune users of the synthetic demo at full KuaiRec shape (scale 1.0), NDCG@10:
# cosine 0.605 / 0.828 / 0.907 / 0.910 for K = 50 / 100 / 200 / 400; bm25 with K = 100 at best
# 0.841 (K1 = 1.2, B = 0.9) and erratic in K1, B and K (0.43 to 0.84). K grows with the
# catalogue: on the 0.1-scale demo (1,073 videos) cosine is best at K = 100 (0.757, K = 200:
# 0.657), bm25 at K1 = 100, B = 0.8 (0.769). K1 and B are implicit's defaults, used by bm25 only.
DEFAULTS = {"weighting": "cosine", "K": 200, "K1": 1.2, "B": 0.75}
# The type and range of each setting, checked before the build starts.
SETTING_TYPES = {
    "weighting": Setting(str, words=("cosine", "bm25")),
    "K": Setting(int, 1),
    "K1": Setting(float, 0),
    "B": Setting(float, 0, 1),
}


def fit(ctx: ModelContext, matrix):
    """Fit the similarity of the chosen weighting on the users x items matrix."""
    from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
    from implicit.utils import ParameterWarning

    weighting = str(ctx.settings["weighting"]).lower()
    neighbours = int(ctx.settings["K"])
    if weighting == "bm25":
        model = BM25Recommender(
            K=neighbours,
            K1=float(ctx.settings["K1"]),
            B=float(ctx.settings["B"]),
            num_threads=ctx.threads,
        )
    elif weighting == "cosine":
        model = CosineRecommender(K=neighbours, num_threads=ctx.threads)
    else:
        raise UserError(f"itemknn.weighting must be 'bm25' or 'cosine', not {weighting!r}")
    with warnings.catch_warnings():
        # implicit reweights into a COO matrix and then warns about converting its own output.
        warnings.simplefilter("ignore", ParameterWarning)
        model.fit(matrix, show_progress=sys.stderr.isatty())
    return model


def run(ctx: ModelContext) -> None:
    matrix = ctx.training_matrix()
    started = time.perf_counter()
    model = fit(ctx, matrix)
    ctx.timings["fit_seconds"] = time.perf_counter() - started
    similarity = model.similarity.tocsr()
    log.debug("itemknn: similarity with %d stored entries", similarity.nnz)
    _write(ctx, matrix, similarity)
    ctx.write_video_neighbours(similarity)


def rescore(ctx: ModelContext) -> None:
    """The scores of ``run`` from the stored S (the same doubles: X S sums each score over the
    user's training videos in the same order, whatever the order of S's entries)."""
    _write(ctx, ctx.training_matrix(), ctx.video_neighbours())


def _write(ctx: ModelContext, matrix, similarity) -> None:
    def score_users(users: np.ndarray) -> np.ndarray:
        return (matrix[users] @ similarity).toarray()

    write_rankings(ctx, score_users, matrix)
