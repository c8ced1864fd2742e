"""hybrid: a learned linear blend of the other models' rankings and SQL features.

Candidates: for each user, the union of the other models' lists (``eval_rankings`` for the
small-matrix users, ``recommendations`` for every big-matrix user), so the hybrid re-ranks what
the other models found and never recommends a video the user has in training.

Features of a (user, video) pair, built in SQL (FEATURES_SQL), for every input model m:
    listed_m = 1 if the video is in m's list, else 0 (the missing indicator)
    rr_m     = 1 / rank in m's list (0 when missing)
    depth_m  = 1 - (rank - 1) / top_n (0 when missing)
    scaled_m = (score - min) / (max - min) over m's list for the user (0 when missing)
and the SQL features:
    popularity  = ln(1 + training users of the video)          (feat_video_popularity)
    watch_ratio = the video's smoothed mean training watch_ratio  (feat_video_popularity)
    duration    = ln(1 + video length in seconds)                 (feat_video_content)
    affinity    = the user's log lift for the video's first-level category
                  (feat_user_category_affinity)
    activity    = percentile of the user's training views among all users, minus 1/2
                  (feat_user_activity); constant within a user, so it enters as products:
                  activity * depth_m and activity * popularity (how much to trust each model
                  and popularity depends on how much the user has watched).

Score: s(u, v) = sum_j w_j (x_j - mean_j) / sd_j, the features standardised over the fitting
rows. Fit (ListNet top-one, Cao et al. 2007): minimise over w

    (1 / U) sum over users u of [ ln sum_v exp s(u, v) - (1 / R_u) sum over relevant v of s(u, v) ]
    + (l2 / 2) |w|^2

over the TUNE users only (int_ground_truth.split = 'tune', the labels of eval_ground_truth)
that have both a relevant and a non-relevant video among their candidates; U = their number and
R_u = their relevant candidates. The loss is convex: Newton's method with a backtracking line
search finds the unique minimum, so the fit is deterministic (BLAS on one thread, rows in
(user_id, video_id) order). l2 = "auto" chooses by NDCG@10 in `folds`-fold cross-validation
over the tune users (folds from a permutation seeded with the build's seed) among the blend at
each l2 of L2_GRID and each input model alone (its own ranking, nothing fitted), ties to the
blend and the stronger penalty: the ListNet loss is not NDCG@10, and when one input already
ranks almost perfectly (on the full-size demo, ease: 0.93 on tune users against 0.92 for the
best blend) the hybrid keeps that input's ranking rather than do worse than it. The chosen
ranking is then applied to every small-matrix user (tune and test) and every big-matrix user.

The hybrid's metrics on TUNE users are in-sample (it was fitted on their labels): report its
TEST users only. The cross-validated NDCG@10 logged at build time is the honest tune estimate.
"""

from __future__ import annotations

import logging
import re
import time
from typing import NamedTuple

import numpy as np

from kuairec_db import progress, runner
from kuairec_db.errors import UserError
from kuairec_db.modelapi import ModelContext
from kuairec_db.validate import Setting

log = logging.getLogger(__name__)

USES_OTHER_MODELS = True
SCORES_EVERY_CANDIDATE = False  # it ranks the union of other models' top lists

# inputs: comma-separated model names ("" = every other model of the build);
# l2: a number, or "auto" to choose it by cross-validation over the tune users.
DEFAULTS = {"inputs": "", "l2": "auto", "folds": 5}
# The type and range of each setting, checked before the build starts.
SETTING_TYPES = {
    "inputs": Setting(str),
    "l2": Setting(float, 0, words=("auto",)),
    "folds": Setting(int, 2, 100),
}

L2_GRID = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)  # strongest first
CV_K = 10  # cross-validation chooses l2 by NDCG at this cutoff
NEWTON_MAX_STEPS = 100
NEWTON_TOLERANCE = 1e-9
# A Newton step whose decrement -gradient.step is below this share of the loss is taken whole
# and ends the fit: the loss cannot resolve it (a line search there halved the step ~30 times
# per step for 100 steps, 6 to 10 s of a 22 s fit), and one more Newton step from there leaves
# an error far below the loss's rounding.
NEWTON_DECREMENT_TOLERANCE = 1e-12

# The pairs and their features: {source} is eval_rankings or recommendations, {models} the
# input models as SQL literals, {per_model} one block of aggregates per input model.
FEATURES_SQL = """
with

ranked as (
    select model, user_id, video_id, rank, score
    from {source}
    where model in ({models})
),

score_ranges as (
    select
        model,
        user_id,
        min(score) filter (where isfinite(score)) as min_score,
        max(score) filter (where isfinite(score)) as max_score
    from ranked
    group by all
),

scaled as (
    select
        ranked.model,
        ranked.user_id,
        ranked.video_id,
        ranked.rank,
        case
            when isfinite(ranked.score) and score_ranges.max_score > score_ranges.min_score
                then (ranked.score - score_ranges.min_score)
                / (score_ranges.max_score - score_ranges.min_score)
            else 0
        end as scaled_score
    from ranked
    inner join score_ranges
        on ranked.model = score_ranges.model and ranked.user_id = score_ranges.user_id
),

pairs as (
    select
        user_id,
        video_id,
        {per_model}
    from scaled
    group by user_id, video_id
),

activity as (
    select
        user_id,
        percent_rank() over (order by n_views) - 0.5 as activity
    from feat_user_activity
),

final as (
    select
        pairs.*,
        coalesce(activity.activity, 0) as activity,
        ln(1 + coalesce(popularity.n_users, 0)) as popularity,
        coalesce(popularity.smoothed_watch_ratio, 0) as watch_ratio,
        coalesce(ln(1 + content.video_duration_ms / 1000), 0) as duration,
        coalesce(affinity.log_lift, 0) as affinity
    from pairs
    left join activity on pairs.user_id = activity.user_id
    left join feat_video_popularity as popularity on pairs.video_id = popularity.video_id
    left join feat_video_content as content on pairs.video_id = content.video_id
    left join feat_user_category_affinity as affinity
        on
            pairs.user_id = affinity.user_id
            and content.first_level_category_id = affinity.first_level_category_id
)

select * from final
"""

PER_MODEL_SQL = """
        count(*) filter (where model = {name})::double as "listed__{col}",
        coalesce(max(1 / rank) filter (where model = {name}), 0) as "rr__{col}",
        coalesce(max(1 - (rank - 1) / {top_n}) filter (where model = {name}), 0)
            as "depth__{col}",
        coalesce(max(scaled_score) filter (where model = {name}), 0) as "scaled__{col}"
"""

VIDEO_FEATURES = ("popularity", "watch_ratio", "duration", "affinity")


class Blend(NamedTuple):
    """A fitted blend: score = sum_j weights[j] * (x_j - means[j]) / sds[j].

    (A NamedTuple, not a dataclass: runner.load_module does not put model modules in
    sys.modules, which dataclasses need.)
    """

    features: list[str]  # SQL expressions over the columns of FEATURES_SQL
    weights: np.ndarray
    means: np.ndarray
    sds: np.ndarray
    l2: float | None  # None when one input model alone was chosen
    cv_ndcg: float | None  # mean NDCG@CV_K over held-out tune users (None: not cross-validated)
    n_users: int  # tune users the blend was fitted on
    source: str  # "blend", or the input model whose ranking won the cross-validation

    def score_sql(self) -> str:
        """The score as one SQL expression (constant terms dropped: they change no ranking)."""
        terms = [
            f"({float(w / sd)!r}) * ({feature})"
            for feature, w, sd in zip(self.features, self.weights, self.sds)
            if sd > 0 and w != 0
        ]
        return " + ".join(terms) or "0.0"

    def named_weights(self) -> dict[str, float]:
        return {f: float(w) for f, w in zip(self.features, self.weights)}


# ---------------------------------------------------------------------------------------------
# Features


def _column(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def features_sql(source: str, inputs: list[str], top_n: int) -> str:
    """The SELECT of every (user, video) pair of the inputs' lists in SOURCE with its features."""
    blocks = [
        PER_MODEL_SQL.format(name=_literal(name), col=_column(name), top_n=int(top_n)).strip()
        for name in inputs
    ]
    return FEATURES_SQL.format(
        source=source,
        models=", ".join(_literal(n) for n in inputs),
        per_model=",\n        ".join(blocks),
    )


def feature_expressions(inputs: list[str]) -> list[str]:
    """The model's features as SQL expressions over the columns of features_sql."""
    out = []
    for name in inputs:
        col = _column(name)
        out += [f'"{kind}__{col}"' for kind in ("listed", "rr", "depth", "scaled")]
    out += list(VIDEO_FEATURES)
    out += [f'activity * "depth__{_column(name)}"' for name in inputs]
    out.append("activity * popularity")
    return out


def input_models(ctx: ModelContext) -> list[str]:
    """The models to blend: the `inputs` setting, or every other model in eval_rankings."""
    present = [
        r[0]
        for r in ctx.con.execute(
            "select distinct model from eval_rankings where model <> ? order by model", [ctx.name]
        ).fetchall()
    ]
    wanted = [n.strip() for n in str(ctx.settings.get("inputs", "")).split(",") if n.strip()]
    if not wanted:
        # not another model fitted on the tune labels (two_stage), present on a rebuild
        models = runner.discover()
        wanted = [n for n in present if not (n in models and models[n].uses_other_models)]
    missing = [n for n in wanted if n not in present]
    if missing:
        raise UserError(
            f"{ctx.name}: input model(s) {', '.join(missing)} have no rankings in this build "
            f"(it has: {', '.join(present) or 'none'})"
        )
    if not wanted:
        raise UserError(f"{ctx.name}: blends other models, but this build runs no other model")
    if len({_column(n) for n in wanted}) != len(wanted):
        raise UserError(f"{ctx.name}: input model names clash as columns: {', '.join(wanted)}")
    return wanted


# ---------------------------------------------------------------------------------------------
# Fitting (numpy)


def _group_starts(groups: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal values in a sorted array."""
    return np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])


def _softmax(scores: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-group softmax of scores and each group's log-sum-exp."""
    sizes = np.diff(np.r_[starts, len(scores)])
    top = np.maximum.reduceat(scores, starts)
    exps = np.exp(scores - np.repeat(top, sizes))
    sums = np.add.reduceat(exps, starts)
    return exps / np.repeat(sums, sizes), np.log(sums) + top


def fit_listnet(
    x: np.ndarray,
    relevant: np.ndarray,
    groups: np.ndarray,
    l2: float,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Weights minimising the ListNet top-one loss + (l2 / 2) |w|^2 (module docstring).

    Parameters
    ----------
    x : (rows, features) standardised features, rows grouped by user (groups sorted).
    relevant : (rows,) bool labels.
    groups : (rows,) user of each row, sorted; users without a relevant or without a
        non-relevant row must already be left out.
    l2 : the ridge penalty, > 0.
    start : where Newton's method starts (default zeros); the minimum does not depend on it.
    """
    starts = _group_starts(groups)
    sizes = np.diff(np.r_[starts, len(groups)])
    n_users = len(starts)
    n_relevant = np.add.reduceat(relevant.astype(np.float64), starts)
    target = relevant / np.repeat(n_relevant, sizes)
    weights = np.zeros(x.shape[1]) if start is None else np.array(start, dtype=np.float64)

    def objective(w: np.ndarray) -> float:
        s = x @ w
        _, lse = _softmax(s, starts)
        return (lse.sum() - target @ s) / n_users + 0.5 * l2 * (w @ w)

    value = objective(weights)
    for _ in range(NEWTON_MAX_STEPS):
        scores = x @ weights
        p, _ = _softmax(scores, starts)
        gradient = x.T @ (p - target) / n_users + l2 * weights
        if np.max(np.abs(gradient)) < NEWTON_TOLERANCE:
            break
        per_user = np.add.reduceat(x * p[:, None], starts)  # sum_v p_uv x_uv per user
        hessian = ((x * p[:, None]).T @ x - per_user.T @ per_user) / n_users
        hessian[np.diag_indices_from(hessian)] += l2
        step = np.linalg.solve(hessian, -gradient)
        if -(gradient @ step) <= NEWTON_DECREMENT_TOLERANCE * max(1.0, abs(value)):
            weights = weights + step
            break
        rate = 1.0
        while rate > 1e-10:
            candidate = weights + rate * step
            new_value = objective(candidate)
            if new_value <= value + 1e-4 * rate * (gradient @ step):
                break
            rate *= 0.5
        else:
            break
        weights, value = candidate, new_value
    return weights


def ndcg_at(
    scores: np.ndarray,
    relevant: np.ndarray,
    groups: np.ndarray,
    videos: np.ndarray,
    n_relevant: dict[int, int],
    k: int,
) -> float:
    """Mean NDCG@k over the users of `n_relevant` with at least one relevant candidate.

    Ranks within each user by score (ties to the smaller video id, as the ranking templates);
    the ideal DCG counts all the user's relevant candidates, in the union of the lists or not.
    """
    discounts = 1 / np.log2(np.arange(2, k + 2))
    starts = _group_starts(groups) if len(groups) else np.zeros(0, dtype=int)
    bounds = dict(zip(groups[starts].tolist(), zip(starts, np.r_[starts[1:], len(groups)])))
    values = []
    for user, total in sorted(n_relevant.items()):
        if total <= 0:
            continue
        ideal = discounts[: min(total, k)].sum()
        if user not in bounds:
            values.append(0.0)
            continue
        lo, hi = bounds[user]
        order = np.lexsort((videos[lo:hi], -scores[lo:hi]))[:k]
        values.append(float(discounts[: len(order)] @ relevant[lo:hi][order]) / ideal)
    return float(np.mean(values)) if values else 0.0


def _fittable(relevant: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rows of users with at least one relevant and one non-relevant row."""
    starts = _group_starts(groups)
    sizes = np.diff(np.r_[starts, len(groups)])
    hits = np.add.reduceat(relevant.astype(np.int64), starts)
    keep = (hits > 0) & (hits < sizes)
    return np.repeat(keep, sizes)


def learn(
    x_raw: np.ndarray,
    relevant: np.ndarray,
    groups: np.ndarray,
    videos: np.ndarray,
    n_relevant: dict[int, int],
    features: list[str],
    l2_setting: str | float,
    folds: int,
    seed: int,
    alone: dict[str, int] | None = None,
) -> Blend:
    """Standardise, choose by cross-validation over users (unless l2 is given) and fit.

    x_raw, relevant, groups, videos: the tune users' candidate rows, sorted by (user, video);
    n_relevant: each tune user's relevant candidates (in the union of the lists or not);
    alone: input model -> the column of its depth feature. With l2 "auto" the candidates are
    the blend at every l2 of L2_GRID and each input model alone (its own order: the depth
    feature by itself, nothing fitted); the best mean NDCG@CV_K over held-out users wins,
    ties to the earlier candidate (the blend, then stronger penalties).
    """
    means = x_raw.mean(axis=0) if len(x_raw) else np.zeros(x_raw.shape[1])
    sds = x_raw.std(axis=0) if len(x_raw) else np.zeros(x_raw.shape[1])
    usable = sds > 1e-12
    x = np.zeros_like(x_raw)
    x[:, usable] = (x_raw[:, usable] - means[usable]) / sds[usable]
    sds = np.where(usable, sds, 0.0)
    keep = _fittable(relevant, groups) if len(groups) else np.zeros(0, dtype=bool)
    users = np.unique(groups[keep])
    if len(users) == 0:
        raise UserError(
            "hybrid: no tune user has both a relevant and a non-relevant candidate: "
            "nothing to fit the blend on"
        )

    if str(l2_setting).strip().lower() != "auto":
        l2 = float(l2_setting)
        if l2 <= 0:
            raise UserError(f"hybrid.l2 must be positive or 'auto', not {l2_setting!r}")
        weights = fit_listnet(x[keep], relevant[keep], groups[keep], l2)
        return Blend(features, weights, means, sds, l2, None, len(users), "blend")

    n_folds = min(int(folds), len(users))
    if n_folds < 2:
        weights = fit_listnet(x[keep], relevant[keep], groups[keep], 1.0)
        return Blend(features, weights, means, sds, 1.0, None, len(users), "blend")
    order = np.random.default_rng(seed).permutation(len(users))
    fold_of = dict(zip(users[order].tolist(), np.arange(len(users)) % n_folds))
    row_fold = np.array([fold_of.get(u, -1) for u in groups.tolist()])
    # Out-of-fold scores per l2; along the grid each fit starts where the previous (stronger)
    # penalty ended, which only saves Newton steps.
    scores = np.zeros((len(L2_GRID), len(groups)))
    for fold in progress.bar(range(n_folds), desc="hybrid: cross-validating", unit="fold"):
        train = keep & (row_fold != fold) & (row_fold >= 0)
        held = row_fold == fold
        w = None
        for i, l2_value in enumerate(L2_GRID):
            w = fit_listnet(x[train], relevant[train], groups[train], l2_value, w)
            scores[i, held] = x[held] @ w
    held_users = {u: n for u, n in n_relevant.items() if u in fold_of}
    candidates = [
        (ndcg_at(s, relevant, groups, videos, held_users, CV_K), "blend", l2_value, None)
        for s, l2_value in zip(scores, L2_GRID)
    ]
    for name, column in (alone or {}).items():
        value = ndcg_at(x_raw[:, column], relevant, groups, videos, held_users, CV_K)
        candidates.append((value, name, None, column))
    best = max(range(len(candidates)), key=lambda i: (candidates[i][0], -i))
    cv_ndcg, source, l2, column = candidates[best]
    if column is None:
        weights = fit_listnet(x[keep], relevant[keep], groups[keep], l2)
    else:
        weights = np.zeros(x.shape[1])
        weights[column] = 1.0
    return Blend(features, weights, means, sds, l2, cv_ndcg, len(users), source)


# ---------------------------------------------------------------------------------------------
# The model


def _tune_rows(ctx: ModelContext, inputs: list[str], features: list[str]):
    """The tune users' candidate rows (sorted by user, video) and their relevant counts."""
    columns = ", ".join(features)
    rows = ctx.con.execute(
        f"""
        select user_id, video_id, is_relevant, {columns}
        from (
            select f.*, g.is_relevant
            from ({features_sql("eval_rankings", inputs, ctx.top_n)}) as f
            inner join int_ground_truth as g
                on f.user_id = g.user_id and f.video_id = g.video_id
            where g.split = 'tune'
        )
        order by user_id, video_id
        """
    ).fetchnumpy()
    values = list(rows.values())
    groups = np.asarray(values[0], dtype=np.int64)
    videos = np.asarray(values[1], dtype=np.int64)
    relevant = np.asarray(values[2], dtype=bool)
    x = np.column_stack([np.asarray(v, dtype=np.float64) for v in values[3:]])
    x = x.reshape(len(groups), len(features))
    n_relevant = dict(
        ctx.con.execute(
            "select user_id, count(*) filter (where is_relevant) from int_ground_truth "
            "where split = 'tune' group by user_id"
        ).fetchall()
    )
    return x, relevant, groups, videos, n_relevant


def _scored(ctx: ModelContext, source: str, inputs: list[str], blend: Blend):
    """(user_index, item_index, score) of every pair of the inputs' lists in SOURCE."""
    result = ctx.con.execute(
        f"""
        select u.user_index, i.item_index, s.score
        from (
            select user_id, video_id, {blend.score_sql()} as score
            from ({features_sql(source, inputs, ctx.top_n)})
        ) as s
        inner join int_user_index as u on s.user_id = u.user_id
        inner join int_item_index as i on s.video_id = i.video_id
        """
    ).fetchnumpy()
    return tuple(np.asarray(v) for v in result.values())


def fit(ctx: ModelContext, inputs: list[str]) -> Blend:
    """The blend of INPUTS fitted on the tune users of ctx's database (module docstring)."""
    from threadpoolctl import threadpool_limits

    features = feature_expressions(inputs)
    x, relevant, groups, videos, n_relevant = _tune_rows(ctx, inputs, features)
    with threadpool_limits(limits=1, user_api="blas"):
        return learn(
            x,
            relevant,
            groups,
            videos,
            n_relevant,
            features,
            ctx.settings["l2"],
            int(ctx.settings["folds"]),
            ctx.seed,
            {name: features.index(f'"depth__{_column(name)}"') for name in inputs},
        )


def run(ctx: ModelContext) -> None:
    inputs = input_models(ctx)
    started = time.perf_counter()
    blend = fit(ctx, inputs)
    ctx.timings["fit_seconds"] = time.perf_counter() - started
    cv = f"{blend.cv_ndcg:.4f}" if blend.cv_ndcg is not None else "not cross-validated"
    chosen = f"the blend (l2 {blend.l2:g})" if blend.source == "blend" else f"{blend.source} alone"
    # in build_info (model.hybrid.chosen.*), beside two_stage's held-out NDCG@10
    ctx.chosen.update(source=blend.source, cv_ndcg_at_10=cv)
    if blend.l2 is not None:
        ctx.chosen["l2"] = f"{blend.l2:g}"
    log.info(
        "  %s: inputs %s; fitted on %d tune users; cross-validated NDCG@%d on tune users %s, "
        "chose %s; its tune-user metrics are IN-SAMPLE: report test users",
        ctx.name,
        ", ".join(inputs),
        blend.n_users,
        CV_K,
        cv,
        chosen,
    )
    if blend.source == "blend":
        top = sorted(blend.named_weights().items(), key=lambda kv: -abs(kv[1]))[:6]
        log.info("  %s: largest weights %s", ctx.name, ", ".join(f"{f} {w:+.3f}" for f, w in top))

    started = time.perf_counter()
    ctx.write_eval_scores(*_scored(ctx, "eval_rankings", inputs, blend))
    if ctx.wants_recommendations:
        ctx.write_recommendation_scores(*_scored(ctx, "recommendations", inputs, blend))
    ctx.timings["score_seconds"] = time.perf_counter() - started
