"""What a model author uses: the model contract, :class:`ModelContext` and the rank-and-write
helpers. The runner (``kuairec_db/runner.py``) finds the models, loads them and calls them.

**Files.** Every ``models/NAME.sql`` and ``models/NAME.py`` is a model named NAME, except a
file whose name starts with ``_`` (``_shared.py``, ``_draft.sql``): the runner skips those, so a
helper module or a model in progress can sit beside the others. A file in the user's models
folder (``--models-dir``, default ``./models``) replaces a shipped model of the same name.

**A SQL model** is one SELECT giving either ``video_id, score`` (one score per video for every
user) or ``user_id, video_id, score``. In the second form every row feeds both rankings, so the
rows must hold, for every big-matrix user, the top-N unseen videos over the whole catalogue (and
every video tied with the N-th) and, for every small-matrix user, the scores of its candidates
(``int_ground_truth``); pairs left out are never ranked. It reads the build's variables with
``getvariable('top_n')``, ``getvariable('model_seed')`` and the others of ``kuairec_db/params.py``.

**A Python model** defines ``DEFAULTS`` (its settings), ``SETTING_TYPES`` (the type and range of
each, a :class:`Setting`; checked before the build starts) and ``run(ctx: ModelContext) ->
None``. It writes scores with ``ctx.write_recommendation_scores`` and ``ctx.write_eval_scores``
(or all at once with :func:`write_rankings`) and, if it has them, factors with
``ctx.write_factors``; where they go is the context's sink (:class:`ScoreSink`): the contract
tables ``recommendations`` and ``eval_rankings`` in a build. Optional: ``SEARCH_SPACE`` (for
tune), ``USES_OTHER_MODELS = True`` (it reads other models' outputs and runs after them),
``SQL_FILES`` (SQL it runs, so editing one reruns it), ``RUNS_BY_DEFAULT = False``,
``SCORES_EVERY_CANDIDATE = False`` (it only re-ranks other models' lists: exposure-study
leaves it out without refitting it), and ``rescore(ctx)``: the same scores as ``run`` from what
``run`` stored per video (``ctx.write_video_scores``, ``ctx.write_video_neighbours``; read back
with ``ctx.video_scores()``, ``ctx.video_neighbours()``) or per candidate
(``write_rankings(..., store_candidate_scores=True)``; ``ctx.candidate_scores()``), which
exposure-study calls instead of refitting (it refits when the database holds none of it:
:class:`NotStored`).

**Directives.** A model that needs more DuckDB memory than the build's default
(:data:`PIPELINE_MEMORY_LIMIT`) says so: a SQL model in a line ``-- memory_limit: 3GB``, a Python
model by ``MEMORY_LIMIT = "3GB"``; it gets it while it runs. A model that is opt-in (left out
of a build without ``--models``) says ``-- runs_by_default: false`` or ``RUNS_BY_DEFAULT =
False``. Directives are read strictly: a near miss is refused.

**Ranking.** :func:`write_rankings` turns ``score_users(users) -> array (len(users), n_items)``
(the score of every video for a batch of user rows) into both outputs, batch by batch so that no
users x items matrix is ever held whole:

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
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from kuairec_db.params import PIPELINE_MEMORY_LIMIT
from kuairec_db.stages import ranking_sql
from kuairec_db.validate import Setting

__all__ = [
    "PIPELINE_MEMORY_LIMIT",
    "ContractSink",
    "ModelContext",
    "ScoreSink",
    "Setting",
    "binary",
    "rank_users",
    "structure_mask",
    "top_n_allowed",
    "write_rankings",
]

log = logging.getLogger(__name__)

# The temp table (user_id, video_id, score) a context fills before handing it to its sink.
SCORES_TABLE = "model_user_scores"
BATCH_USERS = 1024


def insert_ranked(con: duckdb.DuckDBPyConnection, table: str, template: str) -> int:
    """Rank model_user_scores (or model_item_scores) into TABLE with sql/ranking/TEMPLATE.sql;
    returns the rows the model now has there."""
    con.execute(f"insert into {table} {ranking_sql(template)}")
    return con.execute(
        f"select count(*) from {table} where model = getvariable('model_name')"
    ).fetchall()[0][0]


class ScoreSink(Protocol):
    """Where a context's outputs go. ``write_scores`` is called with the scores in the temp
    table model_user_scores (user_id, video_id, score) and the output they are for
    (``recommendations`` or ``eval_rankings``), and returns the rows it wrote."""

    def write_scores(self, con: duckdb.DuckDBPyConnection, output: str) -> int: ...

    def write_factors(
        self, con: duckdb.DuckDBPyConnection, user_factors: np.ndarray, item_factors: np.ndarray
    ) -> None: ...

    def write_video_rows(self, con: duckdb.DuckDBPyConnection, table: str, rows) -> None:
        """ROWS (a DataFrame by item index, and user index for model_candidate_scores) into
        VIDEO_TABLES[TABLE]'s table."""
        ...


# What a model may store per video (or per candidate pair) so that exposure-study can score it
# again without refitting (its ``rescore``): the table, and the SELECT that turns the rows of
# indices (registered as video_rows) into the table's rows.
VIDEO_TABLES = {
    "model_candidate_scores": """
        select getvariable('model_name'), u.user_id, m.video_id, r.score
        from video_rows as r
        inner join int_user_index as u on r.user_index = u.user_index
        inner join int_item_index as m on r.item_index = m.item_index
        order by u.user_id, m.video_id
    """,
    "model_video_scores": """
        select getvariable('model_name'), m.video_id, r.score
        from video_rows as r
        inner join int_item_index as m on r.item_index = m.item_index
        order by m.video_id
    """,
    "model_video_neighbours": """
        select getvariable('model_name'), m.video_id, n.video_id, r.similarity
        from video_rows as r
        inner join int_item_index as m on r.item_index = m.item_index
        inner join int_item_index as n on r.neighbour_index = n.item_index
        order by m.video_id, n.video_id
    """,
}


class NotStored(LookupError):
    """The database holds none of what a model's ``rescore`` reads (a build before the model
    stored it): exposure-study refits the model instead."""


class ContractSink:
    """The build's sink: each user's top-N into the contract tables (``recommendations``,
    ``eval_rankings``, the factor tables), through the ranking templates of sql/ranking/."""

    TEMPLATES = {
        "recommendations": "recommend_from_user_scores",
        "eval_rankings": "evaluate_from_user_scores",
    }

    def write_scores(self, con: duckdb.DuckDBPyConnection, output: str) -> int:
        return insert_ranked(con, output, self.TEMPLATES[output])

    def write_factors(
        self, con: duckdb.DuckDBPyConnection, user_factors: np.ndarray, item_factors: np.ndarray
    ) -> None:
        """Row i of user_factors belongs to user_index i; likewise for items."""
        for table, key, index_table, index_col, factors in (
            ("model_user_factors", "user_id", "int_user_index", "user_index", user_factors),
            ("model_item_factors", "video_id", "int_item_index", "item_index", item_factors),
        ):
            factors = np.ascontiguousarray(factors, dtype=np.float32)
            frame = pd.DataFrame(
                {"idx": np.arange(len(factors), dtype=np.int32), "factors": list(factors)}
            )
            con.register("model_factor_rows", frame)
            try:
                con.execute(
                    f"""
                    insert into {table}
                    select getvariable('model_name'), m.{key}, f.factors::float[]
                    from model_factor_rows as f
                    inner join {index_table} as m on f.idx = m.{index_col}
                    order by m.{key}
                    """
                )
            finally:
                con.unregister("model_factor_rows")

    def write_video_rows(self, con: duckdb.DuckDBPyConnection, table: str, rows) -> None:
        con.register("video_rows", rows)
        try:
            con.execute(f"insert into {table} {VIDEO_TABLES[table]}")
        finally:
            con.unregister("video_rows")


@dataclass
class ModelContext:
    """What a Python model sees: the connection, its settings, and helpers to read and write."""

    con: duckdb.DuckDBPyConnection
    name: str
    settings: dict[str, Any]
    top_n: int
    threads: int
    seed: int
    timings: dict[str, float] = field(default_factory=dict)
    # What the model chose itself (an "auto" setting): build_info model.NAME.chosen.KEY.
    chosen: dict[str, str | float] = field(default_factory=dict)
    # False while tuning: only eval_rankings matter, so a model may skip its recommendations.
    wants_recommendations: bool = True
    sink: ScoreSink = field(default_factory=ContractSink)  # where its outputs go

    def training_matrix(self) -> sp.csr_matrix:
        """Users x items CSR of int_train_interactions.confidence (float32), in index order."""
        n_users, n_items = self.shape()
        rows, cols, vals = (
            self.con.execute(
                """
            select u.user_index, i.item_index, t.confidence::float
            from int_train_interactions as t
            inner join int_user_index as u on t.user_id = u.user_id
            inner join int_item_index as i on t.video_id = i.video_id
            """
            )
            .fetchnumpy()
            .values()
        )
        return sp.csr_matrix(
            (np.asarray(vals, dtype=np.float32), (np.asarray(rows), np.asarray(cols))),
            shape=(n_users, n_items),
        )

    def shape(self) -> tuple[int, int]:
        return (
            self.con.execute("select count(*) from int_user_index").fetchall()[0][0],
            self.con.execute("select count(*) from int_item_index").fetchall()[0][0],
        )

    def eval_candidates(self) -> sp.csr_matrix:
        """Small-matrix users x items, 1 where the pair is a candidate (has ground truth)."""
        n_users, n_items = self.shape()
        rows, cols = (
            self.con.execute(
                """
            select u.user_index, i.item_index
            from int_ground_truth as g
            inner join int_user_index as u on g.user_id = u.user_id
            inner join int_item_index as i on g.video_id = i.video_id
            """
            )
            .fetchnumpy()
            .values()
        )
        data = np.ones(len(rows), dtype=np.float32)
        return sp.csr_matrix((data, (np.asarray(rows), np.asarray(cols))), shape=(n_users, n_items))

    def _write_scores(self, user_index, item_index, score) -> None:
        frame = pd.DataFrame(
            {
                "user_index": np.asarray(user_index, dtype=np.int32),
                "item_index": np.asarray(item_index, dtype=np.int32),
                "score": np.asarray(score, dtype=np.float64),
            }
        )
        self.con.register("model_index_scores", frame)
        try:
            self.con.execute(
                f"""
                create or replace temp table {SCORES_TABLE} as
                select u.user_id, i.video_id, s.score
                from model_index_scores as s
                inner join int_user_index as u on s.user_index = u.user_index
                inner join int_item_index as i on s.item_index = i.item_index
                """
            )
        finally:
            self.con.unregister("model_index_scores")

    def write_recommendation_scores(self, user_index, item_index, score) -> int:
        """Scores (by index) of at least the top-N unseen videos per user -> recommendations."""
        if not self.wants_recommendations:
            return 0
        self._write_scores(user_index, item_index, score)
        return self.sink.write_scores(self.con, "recommendations")

    def write_eval_scores(self, user_index, item_index, score) -> int:
        """Scores (by index) of at least the top-N candidates per small-matrix user."""
        self._write_scores(user_index, item_index, score)
        return self.sink.write_scores(self.con, "eval_rankings")

    def write_factors(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        """Row i of user_factors belongs to user_index i; likewise for items."""
        self.sink.write_factors(self.con, user_factors, item_factors)

    def write_video_scores(self, score: np.ndarray) -> None:
        """score[i]: the score of item index i for every user (a model whose score does not
        depend on the user), as double -> model_video_scores."""
        rows = pd.DataFrame(
            {
                "item_index": np.arange(len(score), dtype=np.int32),
                "score": np.asarray(score, dtype=np.float64),
            }
        )
        self.sink.write_video_rows(self.con, "model_video_scores", rows)

    def write_video_neighbours(self, similarity: sp.spmatrix) -> None:
        """Every stored entry (i, j) of an items x items matrix, as double ->
        model_video_neighbours (video i, neighbour j)."""
        entries = sp.coo_matrix(similarity)
        rows = pd.DataFrame(
            {
                "item_index": entries.row.astype(np.int32),
                "neighbour_index": entries.col.astype(np.int32),
                "similarity": entries.data.astype(np.float64),
            }
        )
        self.sink.write_video_rows(self.con, "model_video_neighbours", rows)

    def write_candidate_scores(self, user_index, item_index, score) -> None:
        """Every small-matrix candidate's score (by index), as double -> model_candidate_scores
        (write_rankings(..., store_candidate_scores=True) calls it)."""
        rows = pd.DataFrame(
            {
                "user_index": np.asarray(user_index, dtype=np.int32),
                "item_index": np.asarray(item_index, dtype=np.int32),
                "score": np.asarray(score, dtype=np.float64),
            }
        )
        self.sink.write_video_rows(self.con, "model_candidate_scores", rows)

    def candidate_scores(self) -> Triple:
        """What write_candidate_scores stored for this model: (user index, item index, score);
        NotStored when it stored nothing."""
        user_index, item_index, score = self._stored(
            "select u.user_index, i.item_index, s.score from model_candidate_scores as s "
            "inner join int_user_index as u on s.user_id = u.user_id "
            "inner join int_item_index as i on s.video_id = i.video_id where s.model = ?",
        )
        return user_index.astype(np.int64), item_index.astype(np.int64), score

    def video_scores(self) -> np.ndarray:
        """What write_video_scores stored for this model, by item index (NaN where none);
        NotStored when it stored nothing."""
        _, n_items = self.shape()
        index, score = self._stored(
            "select i.item_index, s.score from model_video_scores as s "
            "inner join int_item_index as i on s.video_id = i.video_id where s.model = ?",
        )
        out = np.full(n_items, np.nan)
        out[index] = score
        return out

    def video_neighbours(self) -> sp.csr_matrix:
        """What write_video_neighbours stored for this model, as an items x items CSR of
        doubles; NotStored when it stored nothing."""
        _, n_items = self.shape()
        row, col, value = self._stored(
            "select i.item_index, n.item_index, s.similarity from model_video_neighbours as s "
            "inner join int_item_index as i on s.video_id = i.video_id "
            "inner join int_item_index as n on s.neighbour_id = n.video_id where s.model = ?",
        )
        return sp.csr_matrix(
            (np.asarray(value, dtype=np.float64), (np.asarray(row), np.asarray(col))),
            shape=(n_items, n_items),
        )

    def _stored(self, sql: str) -> list[np.ndarray]:
        try:
            columns = list(self.con.execute(sql, [self.name]).fetchnumpy().values())
        except duckdb.CatalogException:  # a database built before the table existed
            raise NotStored(
                f"{self.name}: nothing stored (the build predates its rescore)"
            ) from None
        if not len(columns[0]):
            raise NotStored(f"{self.name}: nothing stored (the build predates its rescore)")
        return [np.asarray(c) for c in columns]


ScoreUsers = Callable[[np.ndarray], np.ndarray]


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
    # themselves are the same whatever the number of workers, and each batch's product runs on
    # one BLAS thread (a multi-threaded product splits its sums by the thread count, which
    # changes the last bits of the scores), so every score's bits are too
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(1, workers)) as pool:
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
    store_candidate_scores: bool = False,
) -> None:
    """Score every user once; write ``recommendations`` and ``eval_rankings``.

    While tuning (``ctx.wants_recommendations`` false) only the small-matrix users are scored.
    STORE_CANDIDATE_SCORES: every candidate's score too (``ctx.write_candidate_scores``), the
    same bits as the ranked ones, for a ``rescore`` that reads them back
    (``ctx.candidate_scores()``).

    Adds ``score_seconds`` (scoring and ranking) and ``write_seconds`` to ``ctx.timings``.
    """
    started = time.perf_counter()
    candidates = ctx.eval_candidates()
    catalogue = ctx.wants_recommendations
    kept: list[Triple] = []
    scorer = score_users
    if store_candidate_scores:

        def scorer(users: np.ndarray) -> np.ndarray:
            scores = np.asarray(score_users(users))
            sub = candidates[users]
            rows = np.repeat(np.arange(len(users)), np.diff(sub.indptr))
            cols = sub.indices.astype(np.int64)
            if len(rows):
                kept.append((users[rows], cols, scores[rows, cols].astype(np.float64)))
            return scores

    recs, evals = rank_users(
        scorer, train, candidates, ctx.top_n, batch_users, catalogue, workers=ctx.threads
    )
    ranked = time.perf_counter()
    ctx.timings["score_seconds"] = ranked - started
    if catalogue:
        ctx.write_recommendation_scores(*recs)
    ctx.write_eval_scores(*evals)
    if store_candidate_scores:
        ctx.write_candidate_scores(*_concatenate(kept))  # its SELECT orders the rows
    ctx.timings["write_seconds"] = time.perf_counter() - ranked


def binary(matrix: sp.csr_matrix, dtype=np.float32) -> sp.csr_matrix:
    """The same structure with every stored value set to 1."""
    out = sp.csr_matrix(matrix, dtype=dtype, copy=True)
    out.data[:] = 1
    return out
