"""two_stage: candidates from the other models, re-ranked by LightGBM lambdarank.

Stage one, candidates: for each user the union of the top-N lists of the candidate models
(`inputs`; by default every model of the build that is not itself built on other models):
their eval_rankings for the small-matrix users, their recommendations for every big-matrix user,
so no video the user has in training is ever a candidate.

Stage two, features of a candidate pair, built in SQL: sql/two_stage/two_stage_features.sql
(the video effect of video_quality, estimated with its DEFAULTS, and its standard error,
popularity, duration, category affinity, user activity and segment, recency and share of the
views of the user in the category of the video), plus for every candidate model m

    rank__m   = rank in the list of m (missing when m did not list the video)
    scaled__m = (score - min) / (max - min) over the list of m for the user (missing alike)

LightGBM handles missing values itself (a candidate one model did not list goes its own way).

Fit: lambdarank (LambdaMART, NDCG@10 as the metric) on the TUNE users only
(int_ground_truth.split = tune, the label of eval_ground_truth), one query per user, users with
no relevant candidate left out. A seeded `holdout` share of the tune users is held out: the
boosting stops when NDCG@10 on them has not improved for `early_stopping` rounds, and the
model keeps its best round. With fewer than two tune users that have a relevant candidate there
is nothing to fit: it then ranks the candidates by the video effect alone (and says so).
Deterministic: the seed of the build, `deterministic = True`,
`force_row_wise`, a fixed thread count (`threads`, default 1 whatever the build uses: on a
busy 2-core machine two OpenMP threads made the fit 7 times slower, 59 s against 8.4 s at demo
scale 0.3, with the same trees) and rows in (user, video) order. The NDCG@10 on the held-out
tune users is logged and stored: it is the honest tune estimate; the tune-split metrics of
eval_metrics are partly in-sample.

Feature importances (total gain and number of splits per feature) go to
model_feature_importances, with the held-out NDCG@10 as the row `holdout_ndcg_at_10`.
"""

from __future__ import annotations

import logging
import re
import time
from typing import NamedTuple

import numpy as np
import pandas as pd

from kuairec_db import runner
from kuairec_db.errors import UserError
from kuairec_db.modelapi import ModelContext
from kuairec_db.stages import SQL_DIR
from kuairec_db.validate import Setting

log = logging.getLogger(__name__)

USES_OTHER_MODELS = True
SCORES_EVERY_CANDIDATE = False  # it ranks the union of other models' top lists

DEFAULTS = {
    "inputs": "",
    "num_leaves": 15,
    "learning_rate": 0.05,
    "max_rounds": 400,
    "min_data_in_leaf": 20,
    "holdout": 0.25,
    "early_stopping": 30,
    "threads": 1,
    "batch_users": 1500,  # big-matrix users whose candidates are scored at once
}
SETTING_TYPES = {
    "inputs": Setting(str),  # comma-separated first-stage models; empty = every one built
    "num_leaves": Setting(int, 2, 4096),
    "learning_rate": Setting(float, 0, 1, low_open=True),
    "max_rounds": Setting(int, 1, 100_000),
    "min_data_in_leaf": Setting(int, 1),
    "holdout": Setting(float, 0, 1, low_open=True, high_open=True),
    "early_stopping": Setting(int, 1),
    "threads": Setting(int, 1, 64),
    "batch_users": Setting(int, 1),
}

EVAL_AT = 10
FEATURES_FILE = SQL_DIR / "two_stage" / "two_stage_features.sql"
SQL_FILES = (FEATURES_FILE,)  # part of the fingerprint of the model: an edit reruns it
# What the features file reads, named here too for exposure-study, which scans model files.
READS = (
    "int_train_events",
    "feat_video_content",
    "feat_video_popularity",
    "feat_user_category_affinity",
    "feat_user_activity",
    "int_ground_truth",
)
IMPORTANCE_TABLE = "model_feature_importances"
IMPORTANCE_COLUMNS = "model varchar, feature varchar, gain double, n_splits bigint"


class Candidates(NamedTuple):
    """Candidate pairs sorted by (user, video) with their features (NaN = missing)."""

    users: np.ndarray
    videos: np.ndarray
    x: np.ndarray  # (pairs, features)
    features: list[str]
    relevant: np.ndarray | None  # the label, tune users only


def _column(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", name.lower())


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def input_models(ctx: ModelContext) -> list[str]:
    """The candidate models: the `inputs` setting, or every first-stage model in eval_rankings."""
    models = runner.discover()
    present = [
        r[0]
        for r in ctx.con.execute(
            "select distinct model from eval_rankings where model <> ? order by model", [ctx.name]
        ).fetchall()
    ]
    wanted = [n.strip() for n in str(ctx.settings.get("inputs", "")).split(",") if n.strip()]
    if not wanted:
        wanted = [n for n in present if n in models and not models[n].uses_other_models]
    missing = [n for n in wanted if n not in present]
    if missing:
        raise UserError(
            f"{ctx.name}: input model(s) {', '.join(missing)} have no rankings in this build "
            f"(it has: {', '.join(present) or 'none'})"
        )
    if not wanted:
        raise UserError(f"{ctx.name}: re-ranks other models, but this build runs no other model")
    return wanted


def video_effects(ctx: ModelContext) -> None:
    """Temp table two_stage_video_effects: the effects video_quality estimates (its defaults)."""
    model = runner.discover()["video_quality"]
    module = runner.load_module(model)
    sub = ModelContext(
        ctx.con, model.name, runner.model_defaults(model), ctx.top_n, ctx.threads, ctx.seed
    )
    effects = module.estimate(sub).effects
    frame = pd.DataFrame(
        {"item_index": np.arange(len(effects.effect)), "effect": effects.effect, "se": effects.se}
    )
    ctx.con.register("two_stage_effect_rows", frame)
    try:
        ctx.con.execute(
            """
            create or replace temp table two_stage_video_effects as
            select items.video_id, rows.effect, rows.se as effect_se
            from two_stage_effect_rows as rows
            inner join int_item_index as items on rows.item_index = items.item_index
            """
        )
    finally:
        ctx.con.unregister("two_stage_effect_rows")


def candidate_rows(
    ctx: ModelContext, source: str, inputs: list[str], tune_only: bool, users: str = ""
):
    """Feature frame of every candidate pair in SOURCE, sorted by (user, video); with
    tune_only, only tune users, with their label; USERS: a SQL condition on user_id (a batch).
    The SQL file gives the pair features; the
    rank and scaled score of each candidate model are laid out in numpy (a pivot of ten
    models in SQL took most of the time)."""
    tune_filter = (
        "and user_id in (select user_id from int_ground_truth where split = 'tune')"
        if tune_only
        else ""
    )
    ctx.con.execute(
        f"""
        create or replace temp table two_stage_lists as
        select model, user_id, video_id, rank, score
        from {source}
        where model in ({", ".join(_literal(n) for n in inputs)}) {tune_filter}
        {f"and {users}" if users else ""}
        """
    )
    label = ", coalesce(truth.is_relevant, false) as is_relevant" if tune_only else ""
    truth_join = (
        "left join int_ground_truth as truth "
        "on f.user_id = truth.user_id and f.video_id = truth.video_id"
        if tune_only
        else ""
    )
    features = FEATURES_FILE.read_text(encoding="utf-8").strip().rstrip(";")
    frame = ctx.con.execute(
        f"select f.*{label} from ({features}) as f {truth_join} order by f.user_id, f.video_id"
    ).fetchnumpy()
    users = np.asarray(frame.pop("user_id"), np.int64)
    videos = np.asarray(frame.pop("video_id"), np.int64)
    relevant = np.asarray(frame.pop("is_relevant"), bool) if tune_only else None
    lists = ctx.con.execute(
        f"""
        select
            user_id,
            video_id,
            list_position([{", ".join(_literal(n) for n in inputs)}], model) - 1 as model_code,
            rank::double as rank,
            case
                when hi > lo and isfinite(score) then (score - lo) / (hi - lo)
                else 0.5
            end as scaled
        from (
            select
                *,
                min(score) filter (where isfinite(score)) over per_list as lo,
                max(score) filter (where isfinite(score)) over per_list as hi
            from two_stage_lists
            window per_list as (partition by model, user_id)
        )
        """
    ).fetchnumpy()
    names = list(frame) + [f"{kind}__{_column(n)}" for n in inputs for kind in ("rank", "scaled")]
    x = np.full((len(users), len(names)), np.nan)
    for j, column in enumerate(frame.values()):
        x[:, j] = np.ma.filled(np.ma.asarray(column, dtype=np.float64), np.nan)
    width = int(max(videos.max(), np.max(lists["video_id"]))) + 1 if len(users) else 1
    position = np.searchsorted(
        users * width + videos,
        np.asarray(lists["user_id"], np.int64) * width + np.asarray(lists["video_id"]),
    )
    column = len(frame) + 2 * np.asarray(lists["model_code"], np.int64)
    x[position, column] = np.asarray(lists["rank"], np.float64)
    x[position, column + 1] = np.asarray(lists["scaled"], np.float64)
    return Candidates(users, videos, x, names, relevant)


def _groups(users: np.ndarray) -> np.ndarray:
    """Sizes of the runs of equal users (rows sorted by user)."""
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else []
    return np.diff(np.r_[starts, len(users)]).astype(int)


def fit(ctx: ModelContext, rows: Candidates):
    """LightGBM lambdarank on the tune users, early stopping on a seeded held-out share:
    (booster, held-out NDCG@10, users fitted on, users held out), or None when fewer than two
    tune users have a relevant candidate."""
    import lightgbm as lgb

    starts = np.flatnonzero(np.r_[True, rows.users[1:] != rows.users[:-1]])
    has_relevant = np.logical_or.reduceat(rows.relevant, starts)
    users = rows.users[starts][has_relevant]
    if len(users) < 2:
        return None
    order = np.random.default_rng(ctx.seed).permutation(len(users))
    n_held = min(max(1, round(float(ctx.settings["holdout"]) * len(users))), len(users) - 1)
    kept = np.isin(rows.users, users)
    is_held = np.isin(rows.users, users[order[:n_held]])

    def dataset(part: np.ndarray, reference=None):
        return lgb.Dataset(
            rows.x[part],
            label=rows.relevant[part].astype(int),
            group=_groups(rows.users[part]),
            feature_name=rows.features,
            reference=reference,
            free_raw_data=False,
        )

    train, valid = kept & ~is_held, is_held
    train_set = dataset(train)
    valid_set = dataset(valid, train_set)
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [EVAL_AT],
        "num_leaves": int(ctx.settings["num_leaves"]),
        "learning_rate": float(ctx.settings["learning_rate"]),
        "min_data_in_leaf": int(ctx.settings["min_data_in_leaf"]),
        "seed": int(ctx.seed),
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": int(ctx.settings["threads"]),
        "verbose": -1,
    }
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=int(ctx.settings["max_rounds"]),
        valid_sets=[valid_set],
        valid_names=["holdout"],
        callbacks=[lgb.early_stopping(int(ctx.settings["early_stopping"]), verbose=False)],
    )
    holdout = float(booster.best_score["holdout"][f"ndcg@{EVAL_AT}"])
    return booster, holdout, len(users) - n_held, n_held


def store_importances(ctx: ModelContext, booster, features: list[str], holdout: float) -> None:
    ctx.con.execute(f"create table if not exists {IMPORTANCE_TABLE} ({IMPORTANCE_COLUMNS})")
    ctx.con.execute(f"delete from {IMPORTANCE_TABLE} where model = ?", [ctx.name])
    gain = booster.feature_importance("gain", iteration=booster.best_iteration)
    splits = booster.feature_importance("split", iteration=booster.best_iteration)
    rows = [(ctx.name, f, float(g), int(s)) for f, g, s in zip(features, gain, splits)]
    rows.append((ctx.name, "holdout_ndcg_at_10", holdout, int(booster.best_iteration)))
    ctx.con.executemany(f"insert into {IMPORTANCE_TABLE} values (?, ?, ?, ?)", rows)


def _write(ctx: ModelContext, booster, rows: Candidates, target) -> None:
    if booster is None:  # nothing fitted: the video effect alone, unknown videos last
        effect = rows.x[:, rows.features.index("video_effect")]
        score = np.where(np.isnan(effect), np.nanmin(effect, initial=0.0) - 1.0, effect)
    else:
        score = booster.predict(
            rows.x,
            num_iteration=booster.best_iteration,
            num_threads=int(ctx.settings["threads"]),
        )
    scored = pd.DataFrame({"user_id": rows.users, "video_id": rows.videos, "score": score})
    ctx.con.register("two_stage_scored", scored)
    try:
        user_index, item_index, values = (
            np.asarray(v)
            for v in ctx.con.execute(
                """
                select users.user_index, items.item_index, s.score
                from two_stage_scored as s
                inner join int_user_index as users on s.user_id = users.user_id
                inner join int_item_index as items on s.video_id = items.video_id
                """
            )
            .fetchnumpy()
            .values()
        )
    finally:
        ctx.con.unregister("two_stage_scored")
    target(user_index, item_index, values)


def run(ctx: ModelContext) -> None:
    inputs = input_models(ctx)
    started = time.perf_counter()
    video_effects(ctx)
    tune = candidate_rows(ctx, "eval_rankings", inputs, tune_only=True)
    features = tune.features
    fitted = fit(ctx, tune)
    ctx.timings["fit_seconds"] = time.perf_counter() - started
    if fitted is None:
        booster = None
        log.warning(
            "  %s: fewer than two tune users have a relevant candidate, nothing to fit on: "
            "it ranks the candidates by the video_quality effect alone",
            ctx.name,
        )
    else:
        booster, holdout, n_fit, n_held = fitted
        store_importances(ctx, booster, features, holdout)
        top = sorted(
            zip(features, booster.feature_importance("gain", iteration=booster.best_iteration)),
            key=lambda kv: -kv[1],
        )[:5]
        log.info(
            "  %s: candidates from %s; fitted on %d tune users, stopped at round %d by %d "
            "held-out tune users, their NDCG@%d %.4f; largest gains %s",
            ctx.name,
            ", ".join(inputs),
            n_fit,
            booster.best_iteration,
            n_held,
            EVAL_AT,
            holdout,
            ", ".join(f"{f} {g:.1f}" for f, g in top),
        )
    started = time.perf_counter()
    evaluated = candidate_rows(ctx, "eval_rankings", inputs, tune_only=False)
    _write(ctx, booster, evaluated, ctx.write_eval_scores)
    if ctx.wants_recommendations:
        # in batches of users, so that the feature matrix of every big-matrix user is never
        # held whole (about 700 candidates per user at full scale)
        n_users = ctx.con.execute("select count(*) from int_user_index").fetchall()[0][0]
        n_batches = max(1, -(-n_users // int(ctx.settings["batch_users"])))
        for batch in range(n_batches):
            batch_users = (
                "user_id in (select user_id from int_user_index "
                f"where user_index % {n_batches} = {batch})"
            )
            catalogue = candidate_rows(ctx, "recommendations", inputs, False, batch_users)
            _write(ctx, booster, catalogue, ctx.write_recommendation_scores)
    for temp in ("two_stage_lists", "two_stage_video_effects"):
        ctx.con.execute(f"drop table if exists temp.{temp}")
    ctx.timings["score_seconds"] = time.perf_counter() - started
