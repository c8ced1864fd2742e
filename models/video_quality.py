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

Output: every user's top-N by that score, and the score of every video (model_video_scores),
from which ``rescore`` (exposure-study) ranks again without refitting.

Defaults chosen on the tune users of the calibrated demo at scale 1.0 (README, video_quality).
"""

from __future__ import annotations

import json
import time
from typing import NamedTuple

import numpy as np

from kuairec_db.errors import UserError
from kuairec_db.modelapi import ModelContext, write_rankings
from kuairec_db.validate import Setting

OUTCOMES = ("engaged", "log_ratio", "ratio")
DEFAULTS = {
    "outcome": "ratio",
    "clip": 0.01,
    "prior_views": 300.0,
    "user_prior": 5.0,
    "iterations": 15,
}
SETTING_TYPES = {
    "outcome": Setting(str, words=OUTCOMES),
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

# One row per training pair with its outcome ({outcome}: an OUTCOME_SQL expression) and its row
# and column positions.
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
        {outcome} as outcome
    from train_events
    left join thresholds on train_events.video_duration_ms = thresholds.video_duration_ms
    group by all
)

select
    users.user_index,
    items.item_index,
    pairs.outcome
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


# What PAIRS_SQL reads, as row counts and sums of row hashes, resolved by name as PAIRS_SQL
# resolves them (a temp table that shadows one is what gets digested).
INPUTS_DIGEST_SQL = """
select
    (select count(*) || ':' || coalesce(sum(hash(t)), 0) from int_train_events as t)
    || '/' || (select count(*) || ':' || coalesce(sum(hash(t)), 0)
        from int_train_duration_thresholds as t)
    || '/' || (select count(*) || ':' || coalesce(sum(hash(t)), 0) from int_user_index as t)
    || '/' || (select count(*) || ':' || coalesce(sum(hash(t)), 0) from int_item_index as t)
"""

# The last estimate of this process, by its settings and the digest of its inputs: two_stage
# asks for the effects at the defaults right after video_quality fitted them in the same build
# (6 s at full scale). An estimate is deterministic, so a hit gives what a refit would.
_LAST_ESTIMATE: dict[str, VideoEffects] = {}


def estimate(ctx: ModelContext) -> VideoEffects:
    """The video effects of the training log with the settings of ctx (two_stage uses it too)."""
    name = ctx.settings.get("outcome", DEFAULTS["outcome"])
    if name not in OUTCOME_SQL:
        raise UserError(f"video_quality.outcome must be one of {', '.join(OUTCOMES)}, not {name!r}")
    digest = ctx.con.execute(INPUTS_DIGEST_SQL).fetchall()[0][0]
    key = json.dumps({**DEFAULTS, **ctx.settings}, sort_keys=True, default=str) + digest
    if key in _LAST_ESTIMATE:
        return _LAST_ESTIMATE[key]
    columns = ctx.con.execute(PAIRS_SQL.format(outcome=OUTCOME_SQL[name])).fetchnumpy()
    users, items = np.asarray(columns["user_index"]), np.asarray(columns["item_index"])
    outcome = np.asarray(columns["outcome"])
    n_users, n_items = ctx.shape()
    effects = fit_effects(
        users.astype(np.int64),
        items.astype(np.int64),
        outcome.astype(np.float64),
        n_users,
        n_items,
        ctx.settings,
    )
    for array in (effects.score, effects.effect, effects.se, effects.n_users, effects.n_eff):
        array.flags.writeable = False  # shared by every caller with the same key
    _LAST_ESTIMATE.clear()
    _LAST_ESTIMATE[key] = effects
    return effects


def run(ctx: ModelContext) -> None:
    started = time.perf_counter()
    effects = estimate(ctx)
    ctx.timings["fit_seconds"] = time.perf_counter() - started
    _write(ctx, effects.score)
    ctx.write_video_scores(effects.score)


def rescore(ctx: ModelContext) -> None:
    """The scores of ``run`` from the stored per-video scores (model_video_scores)."""
    _write(ctx, ctx.video_scores())


def _write(ctx: ModelContext, score: np.ndarray) -> None:
    def score_users(batch: np.ndarray) -> np.ndarray:
        return np.broadcast_to(score, (len(batch), len(score)))

    write_rankings(ctx, score_users, ctx.training_matrix())
