"""als: implicit-feedback matrix factorisation (Hu, Koren and Volinsky 2008) with implicit.

Input: int_train_interactions.confidence per (user, video) training pair,
    confidence = 1 + confidence_alpha * ln(1 + sum of the pair's watch ratios capped at
    watch_ratio_cap); unobserved pairs have preference 0 and confidence 1.
Output: user and item factors (model_user_factors, model_item_factors), the top-N unseen
videos of every big-matrix user, and the top-N candidates of every small-matrix user, scored by
the dot product of the two factor vectors.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from kuairec_db import progress
from kuairec_db.modelapi import ModelContext, write_rankings
from kuairec_db.validate import Setting

log = logging.getLogger(__name__)

# The seed notebook's settings.
DEFAULTS = {"factors": 128, "regularization": 0.15, "iterations": 15}
# The type and range of each setting, checked before the build starts.
SETTING_TYPES = {
    "factors": Setting(int, 1, 4096),
    "regularization": Setting(float, 0),
    "iterations": Setting(int, 1, 1000),
}


def fit(ctx: ModelContext, matrix):
    """Fit ALS on the users x items confidence matrix with a fixed seed and BLAS threads."""
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    # implicit parallelises over users itself; a multi-threaded BLAS on top only contends.
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=int(ctx.settings["factors"]),
            regularization=float(ctx.settings["regularization"]),
            iterations=int(ctx.settings["iterations"]),
            random_state=ctx.seed,
            num_threads=ctx.threads,
            calculate_training_loss=False,
        )
        model.fit(matrix, show_progress=progress.enabled())
    return model


def run(ctx: ModelContext) -> None:
    matrix = ctx.training_matrix()
    started = time.perf_counter()
    model = fit(ctx, matrix)
    ctx.timings["fit_seconds"] = time.perf_counter() - started
    user_factors = np.asarray(model.user_factors)
    item_factors = np.asarray(model.item_factors)
    ctx.write_factors(user_factors, item_factors)

    # every user scored once, by the dot product; exact top-N with ties to the smaller video_id
    write_rankings(ctx, lambda users: user_factors[users] @ item_factors.T, matrix)
