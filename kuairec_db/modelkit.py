"""Ranking helpers shared by the Python models that score (user, video) pairs with a function.

A model gives ``score_users(users) -> array (len(users), n_items)``: the score of every video
for a batch of user rows. ``write_rankings`` turns it into the two contract outputs, batch by
batch so that no users x items matrix is ever held whole:

- ``recommendations``: every big-matrix user's top-N over the catalogue without the videos it
  has in training (the stored entries of the training matrix, whatever their value);
- ``eval_rankings``: every small-matrix user's top-N among its candidates (``eval_candidates``).

The top-N is exact and deterministic: the N highest scores, ties going to the smaller item
index, which is the smaller ``video_id`` (``int_item_index`` numbers videos in id order), the
same rule the SQL ranking templates apply. A score of ``-inf`` means "not scored" and ranks
last; such rows are written only when a user has fewer than N scored videos to rank.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp

from kuairec_db.hooks import ModelContext

log = logging.getLogger(__name__)

ScoreUsers = Callable[[np.ndarray], np.ndarray]

BATCH_USERS = 1024


def top_n_allowed(
    scores: np.ndarray, n: int, allowed: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n best allowed entries of each row, ties to the smaller column.

    Parameters
    ----------
    scores : (rows, cols) float array; ``-inf`` ranks last, NaN is not accepted.
    n : how many entries to keep per row (fewer where a row allows fewer).
    allowed : (rows, cols) bool array; entries that are False are never chosen.

    Returns
    -------
    rows, cols, values : row-major order, the same length.
    """
    scores = np.asarray(scores)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    n = min(n, scores.shape[1])
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), scores[:0, 0]
    # Negated with disallowed entries as NaN: NaN sorts after every number, so position n - 1
    # holds the n-th best allowed score (NaN for a row with fewer than n allowed entries).
    kth = -np.partition(np.where(allowed, -scores, np.nan), n - 1, axis=1)[:, n - 1 : n]
    above = allowed & (scores > kth)
    tied = allowed & (scores == kth)
    room = n - above.sum(axis=1, keepdims=True)
    take = above | tied
    # only rows with more ties at the n-th score than room left need the smaller columns
    crowded = np.flatnonzero(tied.sum(axis=1, keepdims=True) > room)
    if len(crowded):
        sub = tied[crowded]
        take[crowded] = above[crowded] | (sub & (np.cumsum(sub, axis=1) <= room[crowded]))
    few = np.flatnonzero(allowed.sum(axis=1) < n)
    if len(few):
        take[few] = allowed[few]
    rows, cols = np.nonzero(take)
    return rows, cols, scores[rows, cols]


def structure_mask(matrix: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """Dense bool (len(rows), n_cols): True where the matrix stores an entry (even a zero)."""
    sub = matrix[rows]
    mask = np.zeros(sub.shape, dtype=bool)
    mask[np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr)), sub.indices] = True
    return mask


Triple = tuple[np.ndarray, np.ndarray, np.ndarray]


def rank_users(
    score_users: ScoreUsers,
    seen: sp.csr_matrix,
    candidates: sp.csr_matrix,
    top_n: int,
    batch_users: int = BATCH_USERS,
    catalogue: bool = True,
    workers: int = 1,
) -> tuple[Triple, Triple]:
    """Both rankings from one pass of scoring over the users.

    The users with candidates are scored first, in batches of their own, so that their scores
    (a BLAS product can round differently with the shape of its batch) are the same bits
    whether or not the catalogue top-N is wanted.

    Parameters
    ----------
    score_users : users -> (len(users), n_items) scores.
    seen : users x items; every row gets its top-N over the items it does not store.
    candidates : users x items; every row with entries gets its top-N among them.
    catalogue : False skips the catalogue top-N and scores only users with candidates.
    workers : batches ranked at once (threads).

    Returns
    -------
    (user, item, score) of the catalogue top-N and (user, item, score) of the candidate top-N.
    """
    seen = sp.csr_matrix(seen)
    candidates = sp.csr_matrix(candidates)
    has_candidates = np.diff(candidates.indptr) > 0
    groups = [np.flatnonzero(has_candidates)]
    if catalogue:
        groups.append(np.flatnonzero(~has_candidates))
    batches = [
        users[start : start + batch_users]
        for users in groups
        for start in range(0, len(users), batch_users)
    ]

    def rank_batch(batch: np.ndarray) -> tuple[Triple | None, Triple | None]:
        scores = np.asarray(score_users(batch))
        rec = evaluated = None
        if catalogue:
            rows, cols, values = top_n_allowed(scores, top_n, ~structure_mask(seen, batch))
            rec = (batch[rows], cols, values.astype(np.float64))
        if has_candidates[batch[0]]:
            rows, cols, values = top_n_allowed(scores, top_n, structure_mask(candidates, batch))
            evaluated = (batch[rows], cols, values.astype(np.float64))
        return rec, evaluated

    # numpy releases the GIL in the heavy steps, so batches rank side by side; the batches
    # themselves (and so every score's bits) are the same whatever the number of workers
    with ThreadPoolExecutor(max(1, workers)) as pool:
        ranked = list(pool.map(rank_batch, batches))
    recs = [rec for rec, _ in ranked if rec is not None]
    evals = [evaluated for _, evaluated in ranked if evaluated is not None]
    return _concatenate(recs), _concatenate(evals)


def _concatenate(parts: list[Triple]) -> Triple:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    users, items, scores = zip(*parts)
    return np.concatenate(users), np.concatenate(items), np.concatenate(scores)


def write_rankings(
    ctx: ModelContext,
    score_users: ScoreUsers,
    train: sp.csr_matrix,
    batch_users: int = BATCH_USERS,
) -> None:
    """Score every user once; write ``recommendations`` and ``eval_rankings``.

    While tuning (``ctx.wants_recommendations`` false) only the small-matrix users are scored.

    Adds ``score_seconds`` (scoring and ranking) and ``write_seconds`` to ``ctx.timings``.
    """
    started = time.perf_counter()
    candidates = ctx.eval_candidates()
    catalogue = ctx.wants_recommendations
    recs, evals = rank_users(
        score_users, train, candidates, ctx.top_n, batch_users, catalogue, workers=ctx.threads
    )
    ranked = time.perf_counter()
    ctx.timings["score_seconds"] = ranked - started
    if catalogue:
        ctx.write_recommendation_scores(*recs)
    ctx.write_eval_scores(*evals)
    ctx.timings["write_seconds"] = time.perf_counter() - ranked


def binary(matrix: sp.csr_matrix, dtype=np.float32) -> sp.csr_matrix:
    """The same structure with every stored value set to 1."""
    out = sp.csr_matrix(matrix, dtype=dtype, copy=True)
    out.data[:] = 1
    return out
