"""video_quality: how good each video is for the label, estimated from a biased log.

The training log is what the feed chose to show, and the test (the fully observed matrix) counts
every user once. The model estimates, for every video, the outcome an average user would have,
correcting for whom the feed showed the video to.

Outcome of a training pair (user u, video v), setting `outcome`, with t = the relevance threshold
of the duration of the view (int_train_duration_thresholds: the rule of the evaluated label,
debiased or ratio), each averaged over the views of the pair:

    ratio      y_uv = watch_ratio / t - 1              (default; 0 at the threshold)
    log_ratio  y_uv = ln(1 + watch_ratio) - ln(1 + t)
    engaged    y_uv = 1 if watch_ratio > t else 0      (the share of engaged views)

Relative to the threshold of its length, so a view is compared with views of similar length, as
the label does. The continuous outcomes keep how far above or below the threshold a view was,
which the engaged share throws away; ratio keeps the long tail of re-plays as well.

Exposure (inverse-propensity weighting): under independent exposure the chance that the feed
showed v to u is estimated from how often videos were shown and how much users watched,

    p_uv = min(1, n_u * n_v / N)       n_u = training videos of u, n_v = training users of v,
                                       N = all training pairs
    w_uv = 1 / max(p_uv, clip)         (clip: the smallest propensity trusted)

Within one video the weight is proportional to 1 / n_u: each user counts alike instead of each
view, as in the test, so heavy users no longer dominate the estimate of a video. clip = 1 turns
the correction off (all weights 1); a small clip corrects fully but lets a few light users carry
a video. The weights are rescaled per video to sum to its effective number of views
n_eff_v = (sum_u w_uv)^2 / sum_u w_uv^2 (Kish; n_eff_v = n_v for equal weights), so uneven
weights count as fewer views.

Effects of `engaged`: a logistic model, fitted by weighted ridge maximum likelihood,

    logit P(engaged | u, v) = mu + b_u + b_v
    maximise sum w_uv [y ln p + (1 - y) ln(1 - p)]
             - (user_prior * f / 2) sum b_u^2 - (prior_views * f / 2) sum b_v^2

with f = p0 (1 - p0), p0 = the weighted global engaged share: each prior weighs as much as that
many views at the global rate. `iterations` rounds of one Newton step per user and per video
effect (each a sum over its pairs), then the intercept mu. b_u takes out whom the video was shown
to (a video shown mostly to users who engage with everything is not better for that); logistic,
because the label is a high quantile, so users who rarely engage sit near zero where a linear
model sees no difference between videos. prior_views shrinks b_v towards 0, i.e. the video
towards the global rate, so a video seen by three users cannot top the list.

Score of v = sigmoid(mu + b_v) for every user: the engaged share of an average user (b_u moves
all the scores of a user alike and changes no ranking). Standard error of b_v: 1 / sqrt(its
weighted curvature + prior_views * f). Videos without training views score sigmoid(mu).

Effects of `ratio` and `log_ratio`: the same additive model on the scale of the outcome, fitted by
weighted ridge least squares (alternating exact solves for b_u, then b_v, then mu),

    y_uv = mu + b_u + b_v
    minimise sum w_uv (y - mu - b_u - b_v)^2 + user_prior sum b_u^2 + prior_views sum b_v^2

so b_v = sum_u w_uv (y - mu - b_u) / (sum_u w_uv + prior_views): the prior is prior_views views
at the mean. Score of v = mu + b_v; standard error of b_v: s / sqrt(sum_u w_uv + prior_views),
s = the weighted residual standard deviation. The ratio outcome is heavy-tailed (a few users
re-playing a video twenty times), so it needs the larger prior: its default 300 is what keeps a
video three users loved off the top of the list (tests/test_video_quality.py).

Transfer (setting `transfer`): what the log says of a video only partly carries over to the
fully observed matrix. The feed placed the video somewhere, after something, for someone; that
context is in its logged effect and not in a test where every user sees every video. Its length
is in both alike (the label compares a view with views of similar length, but coarsely, in
buckets). So the video effect is split into its length part and the rest,

    L_v = a_bucket(v) + c ln(length_v)        fitted to b_v by least squares within the label's
                                              length buckets, weights n_eff_v (one slope c)
    score_v = mu + L_v + transfer (b_v - L_v)       (through sigmoid for `engaged`)

transfer = 1 is the effect as fitted, 0 keeps the length part only. "auto" (the default) takes
the transfer in 0, 0.1, .. 1 whose scores give the highest NDCG@10 over the TUNE users'
candidates (int_ground_truth, split 'tune'; ties to the larger transfer); with no tune user who
has a relevant video it is 1. outcome "auto" chooses the outcome alike, between ratio and
engaged (two fits, about twice the time). What was chosen is logged and recorded in build_info
(model.video_quality.chosen.outcome, .transfer, .tune_ndcg_at_10). Videos without training views
score mu (sigmoid(mu)).

Output: every user's top-N by that score, and the score of every video (model_video_scores),
from which ``rescore`` (exposure-study) ranks again without refitting.

Defaults chosen on the tune users of the calibrated demo at scale 1.0 (README, video_quality).
"""

from __future__ import annotations

import json
import logging
import time
from typing import NamedTuple

import numpy as np

from kuairec_db.errors import UserError
from kuairec_db.modelapi import ModelContext, write_rankings
from kuairec_db.validate import Setting

log = logging.getLogger(__name__)

OUTCOMES = ("engaged", "log_ratio", "ratio")
AUTO_OUTCOMES = ("ratio", "engaged")  # what outcome "auto" chooses among, in this order on ties
TRANSFERS = tuple(i / 10 for i in range(11))  # what transfer "auto" chooses among
CHOICE_K = 10  # the choice maximises NDCG@CHOICE_K on the tune users
DEFAULTS = {
    "outcome": "ratio",
    "transfer": "auto",
    "clip": 0.01,
    "prior_views": 300.0,
    "user_prior": 5.0,
    "iterations": 15,
}
SETTING_TYPES = {
    "outcome": Setting(str, words=(*OUTCOMES, "auto")),
    "transfer": Setting(float, 0, 1, words=("auto",)),
    "clip": Setting(float, 0, 1, low_open=True),  # 1 turns the exposure correction off
    "prior_views": Setting(float, 0, low_open=True),
    "user_prior": Setting(float, 0, low_open=True),
    "iterations": Setting(int, 1, 1000),
}

SEARCH_SPACE = {
    "outcome": list(OUTCOMES),
    "clip": [0.001, 0.01, 0.05, 0.2, 1.0],
    "prior_views": [5.0, 20.0, 50.0, 100.0, 300.0, 1000.0],
    "user_prior": [1.0, 5.0, 20.0],
}

# Each outcome of a training pair (the views of the pair, relative to the threshold of the
# length of the view); PAIRS_SQL computes the chosen one only.
OUTCOME_SQL = {
    "engaged": "avg((train_events.watch_ratio > thresholds.relevance_threshold)::integer)",
    "log_ratio": "coalesce(exact_avg(ln(1 + train_events.watch_ratio) "
    "- ln(1 + thresholds.relevance_threshold)), 0.0)",
    "ratio": "coalesce(exact_avg(train_events.watch_ratio "
    "/ nullif(thresholds.relevance_threshold, 0) - 1), 0.0)",
}

# One row per training pair with its row and column positions and its outcomes ({outcomes}:
# OUTCOME_SQL expressions, each "as" its name).
PAIRS_SQL = """
with

train_events as (
    select * from int_train_events
),

thresholds as (
    select * from int_train_duration_thresholds
),

pairs as (
    select
        train_events.user_id,
        train_events.video_id,
        {outcomes}
    from train_events
    left join thresholds on train_events.video_duration_ms = thresholds.video_duration_ms
    group by all
)

select
    users.user_index,
    items.item_index,
    pairs.* exclude (user_id, video_id)
from pairs
inner join int_user_index as users on pairs.user_id = users.user_id
inner join int_item_index as items on pairs.video_id = items.video_id
order by users.user_index, items.item_index
"""


class VideoEffects(NamedTuple):
    """Per item index: the estimated outcome, the video effect, its standard error, exposure."""

    score: np.ndarray  # sigmoid(mu + b_v) (engaged) or mu + b_v: the outcome of an average user
    effect: np.ndarray  # b_v, on the logit scale (engaged) or that of the outcome
    se: np.ndarray  # standard error of b_v
    n_users: np.ndarray  # training users of the video (n_v)
    n_eff: np.ndarray  # effective views after weighting
    mu: float


def exposure_weights(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, clip: float
) -> tuple[np.ndarray, np.ndarray]:
    """IPS weights of the pairs, rescaled per video to sum to its effective views (docstring).

    Returns the weights and n_eff per item.
    """
    per_user = np.bincount(users, minlength=n_users).astype(np.float64)
    per_item = np.bincount(items, minlength=n_items).astype(np.float64)
    propensity = np.minimum(1.0, per_user[users] * per_item[items] / max(len(users), 1))
    raw = 1.0 / np.maximum(propensity, clip)
    sums = np.bincount(items, raw, minlength=n_items)
    squares = np.bincount(items, raw * raw, minlength=n_items)
    n_eff = np.divide(sums * sums, squares, out=np.zeros(n_items), where=squares > 0)
    scale = np.divide(n_eff, sums, out=np.zeros(n_items), where=sums > 0)
    return raw * scale[items], n_eff


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def fit_effects(
    users: np.ndarray,
    items: np.ndarray,
    outcome: np.ndarray,
    n_users: int,
    n_items: int,
    settings: dict,
) -> VideoEffects:
    """User and video effects of the model of settings["outcome"] (module docstring)."""
    clip = float(settings["clip"])
    if not 0 < clip <= 1:
        raise UserError(f"video_quality.clip must be in (0, 1], not {clip!r}")
    weights, n_eff = exposure_weights(users, items, n_users, n_items, clip)
    if settings.get("outcome", DEFAULTS["outcome"]) != "engaged":
        return _fit_linear(users, items, outcome, n_users, n_items, settings, weights, n_eff)
    total = weights.sum()
    rate = float(np.clip(weights @ outcome / total, 1e-6, 1 - 1e-6)) if total > 0 else 0.5
    fisher = rate * (1 - rate)  # information of one view at the global rate
    item_penalty = float(settings["prior_views"]) * fisher
    user_penalty = float(settings["user_prior"]) * fisher
    mu = float(np.log(rate / (1 - rate)))
    user_effect = np.zeros(n_users)
    item_effect = np.zeros(n_items)
    for _ in range(int(settings["iterations"])):
        for effect, index, size, penalty in (
            (user_effect, users, n_users, user_penalty),
            (item_effect, items, n_items, item_penalty),
        ):
            p = _sigmoid(mu + user_effect[users] + item_effect[items])
            gradient = np.bincount(index, weights * (outcome - p), minlength=size)
            curvature = np.bincount(index, weights * p * (1 - p), minlength=size)
            effect += (gradient - penalty * effect) / (curvature + penalty)
        p = _sigmoid(mu + user_effect[users] + item_effect[items])
        mu += float(weights @ (outcome - p) / max(weights @ (p * (1 - p)), 1e-12))
    p = _sigmoid(mu + user_effect[users] + item_effect[items])
    curvature = np.bincount(items, weights * p * (1 - p), minlength=n_items)
    return VideoEffects(
        score=_sigmoid(mu + item_effect),
        effect=item_effect,
        se=1.0 / np.sqrt(curvature + item_penalty),
        n_users=np.bincount(items, minlength=n_items),
        n_eff=n_eff,
        mu=mu,
    )


def _fit_linear(
    users: np.ndarray,
    items: np.ndarray,
    outcome: np.ndarray,
    n_users: int,
    n_items: int,
    settings: dict,
    weights: np.ndarray,
    n_eff: np.ndarray,
) -> VideoEffects:
    """Weighted ridge fit of y = mu + b_u + b_v (outcomes log_ratio and ratio), by alternating
    exact block solves; the priors count as views at the mean (b = 0)."""
    total = weights.sum()
    mu = float(weights @ outcome / total) if total > 0 else 0.0
    item_penalty = float(settings["prior_views"])
    user_penalty = float(settings["user_prior"])
    user_effect = np.zeros(n_users)
    item_effect = np.zeros(n_items)
    user_weight = np.bincount(users, weights, minlength=n_users)
    item_weight = np.bincount(items, weights, minlength=n_items)
    # Each effect read per row once an update (the same values as indexing each time): by
    # repeat where the rows are in user order, as PAIRS_SQL gives them.
    user_rows = np.bincount(users, minlength=n_users)
    in_user_order = bool(np.all(users[1:] >= users[:-1]))
    item_of_row = item_effect[items]
    for _ in range(int(settings["iterations"])):
        residual = outcome - mu - item_of_row
        user_effect = np.bincount(users, weights * residual, minlength=n_users) / (
            user_weight + user_penalty
        )
        user_of_row = np.repeat(user_effect, user_rows) if in_user_order else user_effect[users]
        residual = outcome - mu - user_of_row
        item_effect = np.bincount(items, weights * residual, minlength=n_items) / (
            item_weight + item_penalty
        )
        item_of_row = item_effect[items]
        if total > 0:
            mu = float(weights @ (outcome - user_of_row - item_of_row) / total)
    residual = outcome - mu - user_effect[users] - item_effect[items]
    variance = float(weights @ (residual * residual) / total) if total > 0 else 1.0
    return VideoEffects(
        score=mu + item_effect,
        effect=item_effect,
        se=np.sqrt(variance / (item_weight + item_penalty)),
        n_users=np.bincount(items, minlength=n_items),
        n_eff=n_eff,
        mu=mu,
    )


# Per item index: the video's length (the median of its training views, feat_video_popularity)
# and its bucket of the label (int_label_buckets); NULL for a video without training views.
LENGTH_SQL = """
select
    items.item_index,
    ln(popularity.video_duration_ms / 1000.0) as log_length_s,
    buckets.duration_bucket
from int_item_index as items
left join feat_video_popularity as popularity on items.video_id = popularity.video_id
left join int_label_buckets as buckets
    on popularity.video_duration_ms >= buckets.from_duration_ms
    and (popularity.video_duration_ms < buckets.to_duration_ms or buckets.to_duration_ms is null)
order by items.item_index
"""

# The tune users' candidates (the pairs a choice is scored on), by item index.
TUNE_PAIRS_SQL = """
select g.user_id, items.item_index, g.is_relevant
from int_ground_truth as g
inner join int_item_index as items on g.video_id = items.video_id
where g.split = 'tune'
order by g.user_id, items.item_index
"""

# What the estimate reads, as row counts and sums of row hashes, resolved by name as the queries
# above resolve them (a temp table that shadows one is what gets digested).
INPUTS_DIGEST_SQL = "select " + " || '/' || ".join(
    f"(select count(*) || ':' || coalesce(sum(hash(t)), 0) from {table} as t{where})"
    for table, where in (
        ("int_train_events", ""),
        ("int_train_duration_thresholds", ""),
        ("int_user_index", ""),
        ("int_item_index", ""),
        ("feat_video_popularity", ""),
        ("int_label_buckets", ""),
        ("int_ground_truth", " where split = 'tune'"),
    )
)


def length_part(effect: np.ndarray, n_eff: np.ndarray, log_length, bucket) -> np.ndarray:
    """L_v (module docstring): the fit of the video effect by a per-bucket intercept and one
    slope in ln(length), weighted by n_eff, within buckets; NaN lengths and buckets are a bucket
    of their own at the weighted mean length."""
    weights = np.where(n_eff > 0, n_eff, 0.0)
    length = np.asarray(log_length, dtype=np.float64)
    total = weights.sum()
    if total <= 0:
        return np.zeros_like(effect)
    known = np.isfinite(length)
    typical = (weights[known] @ length[known]) / max(weights[known].sum(), 1e-300)
    length = np.where(known, length, typical)
    groups = np.where(np.isfinite(bucket), bucket, -1)
    _, group = np.unique(groups, return_inverse=True)
    group_weight = np.bincount(group, weights)
    safe = np.where(group_weight > 0, group_weight, 1.0)
    mean_length = np.bincount(group, weights * length) / safe
    mean_effect = np.bincount(group, weights * effect) / safe
    centred = length - mean_length[group]
    spread = weights @ (centred * centred)
    covariance = weights @ (centred * (effect - mean_effect[group]))
    slope = float(covariance / spread) if spread > 0 else 0.0
    return mean_effect[group] + slope * centred


class Estimate(NamedTuple):
    """The fitted effects of the chosen outcome and the scores of the chosen transfer."""

    effects: VideoEffects
    score: np.ndarray  # per item index (module docstring)
    outcome: str
    transfer: float
    tune_ndcg: float | None  # NDCG@CHOICE_K of the choice on the tune users (None: not scored)
    tune_users: int


def transferred(effects: VideoEffects, length: np.ndarray, transfer: float, outcome: str):
    """score_v of the module docstring; transfer 1 gives mu + b_v exactly, 0 mu + L_v."""
    trained = effects.n_eff > 0
    if transfer == 1.0:
        linear = effects.effect
    else:  # transfer 0 is the length part exactly (one length: the same score for all)
        linear = length + transfer * (effects.effect - length)
    linear = effects.mu + np.where(trained, linear, 0.0)
    return _sigmoid(linear) if outcome == "engaged" else linear


class TuneCandidates:
    """The tune users' candidates as dense users x videos arrays, for NDCG@k of a score that is
    the same for every user (ranks by score, ties to the smaller item index, as the build)."""

    def __init__(self, users: np.ndarray, items: np.ndarray, relevant: np.ndarray, k: int):
        user_rows, user_of_pair = np.unique(users, return_inverse=True)
        self.columns, item_of_pair = np.unique(items, return_inverse=True)
        shape = (len(user_rows), len(self.columns))
        self.candidate = np.zeros(shape, dtype=bool)
        self.candidate[user_of_pair, item_of_pair] = True
        self.relevant = np.zeros(shape, dtype=bool)
        self.relevant[user_of_pair, item_of_pair] = relevant
        n_relevant = self.relevant.sum(axis=1)
        keep = n_relevant > 0  # users with a relevant candidate, as eval_user_metrics
        self.candidate, self.relevant = self.candidate[keep], self.relevant[keep]
        self.discounts = 1.0 / np.log2(np.arange(2, k + 2))
        self.ideal = np.cumsum(self.discounts)[np.minimum(n_relevant[keep], k) - 1]
        self.k = k
        self.n_users = int(keep.sum())

    def ndcg(self, score: np.ndarray) -> float:
        values = score[self.columns]
        order = np.lexsort((self.columns, -values))
        candidate = self.candidate[:, order]
        rank = np.cumsum(candidate, axis=1)  # 1-based rank of each candidate of the user
        hit = candidate & self.relevant[:, order] & (rank <= self.k)
        gains = np.where(hit, self.discounts[np.minimum(rank, self.k) - 1], 0.0).sum(axis=1)
        return float(np.mean(gains / self.ideal))


# The last estimate of this process, by its settings and the digest of its inputs: two_stage
# asks for the effects at the defaults right after video_quality fitted them in the same build
# (6 s at full scale). An estimate is deterministic, so a hit gives what a refit would.
_LAST_ESTIMATE: dict[str, Estimate] = {}


def estimate(ctx: ModelContext) -> Estimate:
    """The effects and scores of the training log with the settings of ctx, "auto" settings
    chosen on the tune users (two_stage uses the effects too)."""
    settings = {**DEFAULTS, **ctx.settings}
    name = str(settings["outcome"])
    if name != "auto" and name not in OUTCOME_SQL:
        raise UserError(f"video_quality.outcome must be one of {', '.join(OUTCOMES)}, not {name!r}")
    digest = ctx.con.execute(INPUTS_DIGEST_SQL).fetchall()[0][0]
    key = json.dumps(settings, sort_keys=True, default=str) + digest
    if key in _LAST_ESTIMATE:
        return _LAST_ESTIMATE[key]
    outcomes = AUTO_OUTCOMES if name == "auto" else (name,)
    auto_transfer = str(settings["transfer"]).strip().lower() == "auto"
    transfers = TRANSFERS if auto_transfer else (float(settings["transfer"]),)
    columns = ctx.con.execute(
        PAIRS_SQL.format(outcomes=", ".join(f"{OUTCOME_SQL[o]} as {o}" for o in outcomes))
    ).fetchnumpy()
    users = np.asarray(columns["user_index"]).astype(np.int64)
    items = np.asarray(columns["item_index"]).astype(np.int64)
    n_users, n_items = ctx.shape()
    lengths = ctx.con.execute(LENGTH_SQL).fetchnumpy()
    log_length = np.asarray(lengths["log_length_s"], dtype=np.float64)
    bucket = np.asarray(lengths["duration_bucket"], dtype=np.float64)
    tune = None
    if len(outcomes) * len(transfers) > 1:
        pairs = ctx.con.execute(TUNE_PAIRS_SQL).fetchnumpy()
        tune = TuneCandidates(
            np.asarray(pairs["user_id"]),
            np.asarray(pairs["item_index"]),
            np.asarray(pairs["is_relevant"], dtype=bool),
            CHOICE_K,
        )
        if tune.n_users == 0:  # nothing to choose on: the first outcome, the largest transfer
            outcomes, transfers, tune = outcomes[:1], transfers[-1:], None
            log.info(
                "  %s: no tune user has a relevant video: outcome %s, transfer %g",
                ctx.name,
                outcomes[0],
                transfers[0],
            )
    best = None
    for outcome in outcomes:
        effects = fit_effects(
            users,
            items,
            np.asarray(columns[outcome]).astype(np.float64),
            n_users,
            n_items,
            {**settings, "outcome": outcome},
        )
        length = length_part(effects.effect, effects.n_eff, log_length, bucket)
        for transfer in transfers[::-1]:  # ties to the first outcome and the larger transfer
            score = transferred(effects, length, transfer, outcome)
            value = tune.ndcg(score) if tune is not None else None
            if best is None or (value is not None and value > best.tune_ndcg):
                tune_users = tune.n_users if tune is not None else 0
                best = Estimate(effects, score, outcome, transfer, value, tune_users)
    for array in (*best.effects[:5], best.score):
        array.flags.writeable = False  # shared by every caller with the same key
    _LAST_ESTIMATE.clear()
    _LAST_ESTIMATE[key] = best
    return best


def run(ctx: ModelContext) -> None:
    started = time.perf_counter()
    chosen = estimate(ctx)
    ctx.timings["fit_seconds"] = time.perf_counter() - started
    ctx.chosen.update(outcome=chosen.outcome, transfer=f"{chosen.transfer:g}")
    if chosen.tune_ndcg is not None:
        ctx.chosen["tune_ndcg_at_10"] = f"{chosen.tune_ndcg:.4f}"
        log.info(
            "  %s: chose outcome %s, transfer %g: NDCG@%d %.4f on %d tune users",
            ctx.name,
            chosen.outcome,
            chosen.transfer,
            CHOICE_K,
            chosen.tune_ndcg,
            chosen.tune_users,
        )
    _write(ctx, chosen.score)
    ctx.write_video_scores(chosen.score)


def rescore(ctx: ModelContext) -> None:
    """The scores of ``run`` from the stored per-video scores (model_video_scores)."""
    _write(ctx, ctx.video_scores())


def _write(ctx: ModelContext, score: np.ndarray) -> None:
    def score_users(batch: np.ndarray) -> np.ndarray:
        return np.broadcast_to(score, (len(batch), len(score)))

    write_rankings(ctx, score_users, ctx.training_matrix())
