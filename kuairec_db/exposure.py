"""``exposure-study``: the KuaiRec paper's central experiment on a built database.

Sparse test sets are sampled from the fully observed small matrix (the test users' pairs of
``eval_ground_truth``) under three exposure strategies, at several densities, and every model is
evaluated on each of them; Kendall's tau says how well each sparse set orders the models the
way the fully observed matrix does. Beside it, the usual sparse protocol: a temporal split of
the big matrix, with the cheap models retrained on the earlier views.

How a model is ranked on a sparse set: its ranking of a user's sampled candidates is its ranking
of all the user's candidates restricted to the sampled ones. ``eval_rankings`` only holds the
top-N, so the command first scores every candidate of each model in turn (``exposure_scores``,
a temp table) and keeps its ranks (``exposure_full_ranks``), without touching the models' code
or the build's tables:

- a SQL model: its SELECT (``models/NAME.sql``) is run again and joined to all candidates;
- a Python model with factors (``model_user_factors``, ``model_item_factors``): the dot product;
- another Python model with ``rescore`` (itemknn, video_quality, ease): that, from what its
  build stored (``model_video_neighbours``, ``model_video_scores``, ``model_candidate_scores``),
  with a context whose evaluation list is every candidate and whose other outputs are dropped;
- another Python model: refitted with such a context (same settings and seed as the build, from
  ``build_info``);
  a model that then scores only part of the candidates (one that re-ranks other models' lists)
  is left out, and so is a model whose file is gone; a model that says it only re-ranks
  (``SCORES_EVERY_CANDIDATE = False``) is left out without being refitted.
How far the re-scoring reproduces the build's ``eval_rankings`` is recorded per model.

The study works on lists: each user's candidates are numbered once (exposure_user_candidates)
and each model's first ranks kept as candidate numbers (exposure_model_lists). Each repeat draws
every pair's sample key, finds each set's cut without sorting (exposure_sample_thresholds: the
n-th largest key by quantile_disc, ties in (user, video) order), notes each pair's smallest set
(exposure_first_sets), and ranks each model's sampled candidates in two passes
(exposure_list_keys gathers the first ranks' sets by candidate number; exposure_user_metrics
reads every rank only for the lists that prefix could not fill): the result does not depend on
the depth of the first pass.

The SQL is in ``sql/exposure/`` (linted like the rest; the build does not run that folder):
each file is one SELECT over temp tables this module fills, run in this order.

Writing: the command holds the build's lock (``.NAME.lock``; it refuses while a build runs),
works on a copy of the database (``.NAME.building-PID``) and renames it over the original at
the end, like ``build``: an interrupted study leaves the database untouched.

Size: over 500 lines because the experiment's steps (sampling, scoring every candidate, the
study, the temporal split) share the temp tables of one connection; their SQL is in
sql/exposure/.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from kuairec_db import (
    __version__,
    comments,
    fingerprints,
    modelapi,
    runner,
    stages,
    validate,
    workspace,
)
from kuairec_db.errors import UserError
from kuairec_db.params import variables_from_build_info

log = logging.getLogger(__name__)

STRATEGIES = ("uniform", "positivity", "popularity")
DEFAULT_DENSITIES = (0.1, 0.3, 0.5, 0.7, 0.9)
DEFAULT_K = (10,)
DEFAULT_SEED = 42
DEFAULT_REPEATS = 5  # sampling seeds seed, seed + 1, ...: the study's spread over exposures
POSITIVITY_WEIGHT = 5.0  # a relevant pair is 5 times as likely to be exposed
POPULARITY_EXPONENT = 1.0  # exposure weight = (training users of the video + 1) ^ this
STUDY_SPLIT = "test"  # the study samples and evaluates the test users only
DEFAULT_TEMPORAL_DAYS = 7
DEFAULT_TEMPORAL_MODELS = ("popularity", "als")
MIN_SCORED_SHARE = 0.99  # a re-scored model must score at least this share of the candidates
# exposure_list_keys reads each model's ranks 1 .. this times max(k) / the smallest density
# (a set of density d holds about d of them); exposure_user_metrics reads every rank for the
# lists it left incomplete
RANK_DEPTH_FACTOR = 4

EXPOSURE_DIR = stages.SQL_DIR / "exposure"
STUDY_TABLES = ("eval_exposure_samples", "eval_exposure_repeats", "eval_exposure_study")
TEMPORAL_TABLE = "eval_temporal_split"
OUTPUT_TABLES = (*STUDY_TABLES, "eval_exposure_models", "eval_exposure_info", TEMPORAL_TABLE)
REQUIRED = (
    "build_info",
    "eval_ground_truth",
    "eval_rankings",
    "eval_metrics",
    "feat_video_popularity",
    "int_train_events",
    "int_user_index",
    "int_item_index",
)
CONTRACT = tuple(stages.CONTRACT_TABLES)  # shadowed while the temporal split retrains


@dataclass
class StudyParams:
    """Every setting of one run; they end up in eval_exposure_info."""

    db: Path = Path("kuairec.duckdb")
    densities: list[float] = field(default_factory=lambda: list(DEFAULT_DENSITIES))
    strategies: list[str] = field(default_factory=lambda: list(STRATEGIES))
    seed: int = DEFAULT_SEED
    repeats: int = DEFAULT_REPEATS
    k: list[int] = field(default_factory=lambda: list(DEFAULT_K))
    models: list[str] | None = None  # None: every model of the database
    temporal: bool = True
    temporal_days: int = DEFAULT_TEMPORAL_DAYS
    temporal_models: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPORAL_MODELS))
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    memory_limit: str | None = None  # None: runner.PIPELINE_MEMORY_LIMIT and what models ask for

    def validate(self) -> None:
        if not self.densities or any(not 0 < d <= 1 for d in self.densities):
            raise UserError("--densities takes shares in (0, 1], e.g. 0.1,0.3,0.5,0.7,0.9")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if not self.strategies or unknown:
            raise UserError(
                f"--strategies: unknown {', '.join(unknown) or '(none given)'}; "
                f"choose from {', '.join(STRATEGIES)}"
            )
        if not self.k or any(k < 1 for k in self.k):
            raise UserError("--k takes positive cutoffs, e.g. --k 10")
        if self.repeats < 1:
            raise UserError("--repeats must be at least 1")
        if self.temporal_days < 1:
            raise UserError("--temporal-days must be at least 1")
        validate.check_threads(self.threads)


@dataclass
class StudyResult:
    db: Path
    seconds: float
    models: list[str]  # in the study
    left_out: dict[str, str]  # model -> why
    temporal_models: list[str]
    timings: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Opening the database


def check_database(db: Path) -> dict[str, str]:
    """build_info of a database that holds the evaluation tables, else one clear UserError."""
    validate.check_database_file(db, str(db))
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"{db}: cannot open the database ({first})") from None
    try:
        tables = con.execute("select table_name from information_schema.tables").fetchall()
        names = {r[0] for r in tables}
        missing = [n for n in REQUIRED if n not in names]
        if missing:
            raise UserError(
                f"{db}: not a kuairec_db database with evaluation tables (no "
                f"{', '.join(missing)}); build it with: python -m kuairec_db build --db {db}"
            )
        info = dict(con.execute("select key, value from build_info").fetchall())
        models = con.execute("select distinct model from eval_rankings order by 1").fetchall()
        info["models_in_eval_rankings"] = ",".join(r[0] for r in models)
        return info
    finally:
        con.close()


def check_models(params: StudyParams, info: dict[str, str]) -> None:
    """--models and --temporal-models name models of this database (and of models/)."""
    in_db = [m for m in info["models_in_eval_rankings"].split(",") if m]
    unknown = [m for m in params.models or [] if m not in in_db]
    if unknown:
        raise UserError(
            f"--models: {', '.join(unknown)} not in the database (it has: {', '.join(in_db)})"
        )
    if not params.temporal:
        return
    available = runner.discover()
    for name in params.temporal_models:
        if name not in available:
            raise UserError(f"--temporal-models: no model {name!r} in models/")
        if name not in in_db:
            raise UserError(
                f"--temporal-models: {name} is not in the database, so it has no fully "
                "observed result to compare with; build it or leave it out"
            )
    top_n = int(info.get("param.top_n", 0))
    if max(params.k) > top_n:
        raise UserError(f"--k {max(params.k)} is above the build's --top-n {top_n}")


def set_build_variables(con: duckdb.DuckDBPyConnection, info: dict[str, str]) -> None:
    """The build's SQL variables, read back from build_info."""
    for name, value in variables_from_build_info(info).items():
        con.execute(f"set variable {name} = ?", [value])


def run_sql(
    con: duckdb.DuckDBPyConnection, name: str, into: str = "temp", table: str | None = None
) -> None:
    """Run sql/exposure/NAME.sql into a temp table (into='temp') or a database table, named
    NAME unless ``table`` names it otherwise."""
    body = stages.select_body((EXPOSURE_DIR / f"{name}.sql").read_text(encoding="utf-8"))
    kind = "temp table" if into == "temp" else "table"
    con.execute(f"create or replace {kind} {table or name} as {body}")


BOOTSTRAP_FILES = ("eval_resampled_sums", "eval_intervals")  # sql/eval, in this order
# DuckDB's limit for the rest of the sampling once a repeat ran out of memory at the default
# (unless --memory-limit): at full scale eight models' top lists fit in 1GB, twelve did not.
SAMPLING_FALLBACK_LIMIT = "3GB"
SAMPLING_FILES = (
    "exposure_sample_keys",
    "exposure_sample_thresholds",
    "exposure_first_sets",
    "exposure_set_users",
    "exposure_list_keys",
    "exposure_user_metrics",
)


def bootstrap_intervals(con: duckdb.DuckDBPyConnection, values_sql: str, into: str) -> None:
    """Temp table INTO: the project's one bootstrap (sql/eval/eval_resampled_sums.sql and
    eval_intervals.sql, the build's own files) over the per-user values VALUES_SQL selects, in
    the shape of eval_user_values. The files run over temp tables named like the views they
    read (temp shadows the database's views); the weights are the build's
    int_resampling_weights, so every user is resampled as in the build."""
    shadows = ["eval_user_values", *BOOTSTRAP_FILES]
    try:
        con.execute(f"create or replace temp table eval_user_values as {values_sql}")
        for name in BOOTSTRAP_FILES:
            path = stages.SQL_DIR / "eval" / f"{name}.sql"
            body = stages.select_body(path.read_text(encoding="utf-8"))
            con.execute(f"create or replace temp table {name} as {body}")
        con.execute(f"create or replace temp table {into} as select * from temp.eval_intervals")
    finally:
        for name in reversed(shadows):
            con.execute(f"drop table if exists temp.{name}")


def _sample_and_rank(con, params: StudyParams, raised: bool) -> bool:
    """One repeat's samples and top lists (SAMPLING_FILES) within DuckDB's limit; when that is
    the default and DuckDB runs out, again under SAMPLING_FALLBACK_LIMIT, which then stays for
    the other repeats. Returns whether it is in force (RAISED: it already was)."""
    try:
        for name in SAMPLING_FILES:
            run_sql(con, name)
    except duckdb.OutOfMemoryException:
        if params.memory_limit is not None or raised:
            raise
        log.info(
            "  out of memory at the default limit; sampling on with %s", SAMPLING_FALLBACK_LIMIT
        )
        con.execute(f"set memory_limit = '{SAMPLING_FALLBACK_LIMIT}'")
        for name in SAMPLING_FILES:
            run_sql(con, name)
        raised = True
    check_set_sizes(con)
    return raised


def check_set_sizes(con) -> None:
    """Every sparse set holds exactly its n_sampled pairs (the cut of
    exposure_sample_thresholds, counted back from exposure_set_users)."""
    wrong = con.execute(
        """
        select s.strategy, s.density, s.n_sampled, coalesce(sum(u.n_sampled), 0)
        from exposure_sample_sets as s
        left join exposure_set_users as u on s.strategy = u.strategy and s.density = u.density
        where s.strategy <> 'fully_observed'
        group by all
        having coalesce(sum(u.n_sampled), 0) <> s.n_sampled
        """
    ).fetchall()
    if wrong:
        raise RuntimeError(
            f"exposure samples of the wrong size (strategy, density, n, got): {wrong}"
        )


def prepare_lists(con) -> None:
    """What the repeats read besides each user's candidates (exposure_user_candidates, made
    before the models are scored): each model's first ranks (exposure_model_lists), and the
    variables the sample cuts read (exposure_set_sizes: the sizes of the sets that hold a pair,
    so a density that rounds to no pair at all is an empty set; exposure_n_pairs)."""
    run_sql(con, "exposure_model_lists")
    con.execute(
        "set variable exposure_set_sizes = (select coalesce(list(distinct n_sampled order by "
        "n_sampled), []::bigint[]) from exposure_sample_sets "
        "where strategy <> 'fully_observed' and n_sampled > 0)"
    )
    con.execute("set variable exposure_n_pairs = (select max(n_pairs) from exposure_sample_sets)")


def rank_depth(params: StudyParams) -> int:
    """The ranks exposure_list_keys reads first (the result is the same at any depth)."""
    return math.ceil(RANK_DEPTH_FACTOR * max(params.k) / min(params.densities))


def t_quantile(n_repeats: int) -> float:
    """97.5th percentile of Student's t with n_repeats - 1 degrees of freedom (0 for one)."""
    if n_repeats < 2:
        return 0.0
    from scipy.stats import t

    return float(t.ppf(0.975, n_repeats - 1))


# ---------------------------------------------------------------------------------------------
# Every model's score of every candidate


class _CaptureSink:
    """A model context's sink that keeps the evaluation scores of every candidate (in the temp
    table exposure_captured) and drops the rest."""

    def write_scores(self, con: duckdb.DuckDBPyConnection, output: str) -> int:
        if output != "eval_rankings":
            return 0
        con.execute(f"insert into exposure_captured select * from {modelapi.SCORES_TABLE}")
        return con.execute(f"select count(*) from {modelapi.SCORES_TABLE}").fetchall()[0][0]

    def write_factors(self, con, user_factors, item_factors) -> None:
        return None

    def write_video_rows(self, con, table, rows) -> None:
        return None


def _score_sql_model(con, model: runner.Model) -> str:
    body = stages.select_body(model.path.read_text(encoding="utf-8"))
    # The model runs over the study's users only (a temp int_user_index shadows the build's):
    # its top-N of every other user is not needed. rank_agreement checks the scores.
    con.execute(
        "create or replace temp table int_user_index as select * from kuairec.main.int_user_index "
        "where user_id in (select user_id from exposure_pairs)"
    )
    try:
        con.execute(f"create or replace temp table exposure_model_raw as {body}")
    finally:
        con.execute("drop table temp.int_user_index")
    columns = {r[0] for r in con.execute("describe exposure_model_raw").fetchall()}
    if {"user_id", "video_id", "score"} <= columns:
        con.execute(
            """
            insert into exposure_scores
            select getvariable('model_name'), p.user_id, p.video_id, r.score
            from exposure_pairs as p
            left join exposure_model_raw as r
                on p.user_id = r.user_id and p.video_id = r.video_id
            """
        )
        kind = "SQL model re-run (user, video scores)"
    elif {"video_id", "score"} <= columns:
        con.execute(
            """
            insert into exposure_scores
            select getvariable('model_name'), p.user_id, p.video_id, r.score
            from exposure_pairs as p
            left join exposure_model_raw as r on p.video_id = r.video_id
            """
        )
        kind = "SQL model re-run (one score per video)"
    else:
        raise UserError(f"{model.path}: a SQL model must select video_id, score")
    con.execute("drop table temp.exposure_model_raw")
    return kind


def _score_sql_model_in_memory(con, model: runner.Model, memory_limit: str | None) -> str:
    """Over the study's users only, the build's default limit is usually enough for a model
    that asks for more in a build (at full scale, random and sequence ran in 1GB); its own
    limit is the fallback when DuckDB runs out of memory."""
    if memory_limit or not model.memory_limit:
        return _score_sql_model(con, model)
    try:
        return _score_sql_model(con, model)
    except duckdb.OutOfMemoryException:
        log.info("  %s: out of memory at the default limit, again with its own", model.name)
    with runner.model_memory(con, model, None):
        return _score_sql_model(con, model)


def _score_factors(con, name: str) -> str:
    con.execute(
        """
        insert into exposure_scores
        select $1, p.user_id, p.video_id,
               list_dot_product(u.factors::double[], i.factors::double[])
        from exposure_pairs as p
        left join model_user_factors as u on u.model = $1 and p.user_id = u.user_id
        left join model_item_factors as i on i.model = $1 and p.video_id = i.video_id
        """,
        [name],
    )
    return "dot product of the stored factors"


def built_settings(model: runner.Model, info: dict[str, str]) -> dict:
    """The settings the build ran MODEL with (build_info), over the model's DEFAULTS: a setting
    added since that build takes its default."""
    return {
        **runner.model_defaults(model),
        **json.loads(info.get(f"model.{model.name}.settings", "{}")),
    }


def _score_python_model(con, model: runner.Model, info: dict[str, str], threads: int) -> str:
    """Its ``rescore`` (from what the build stored) when it has one and the database holds
    what it reads; otherwise a refit."""
    if hasattr(runner.load_module(model), "rescore"):
        try:
            return _score_captured(con, model, info, threads, rescore=True)
        except modelapi.NotStored as exc:
            log.info("  %s: %s; refitting", model.name, exc)
    return _score_captured(con, model, info, threads)


def _score_captured(
    con, model: runner.Model, info: dict[str, str], threads: int, rescore: bool = False
) -> str:
    """The model's ``run`` (RESCORE: its ``rescore``) with a context that captures its scores
    of every candidate into exposure_scores."""
    settings = built_settings(model, info)
    depth = con.execute(
        "select max(n) from (select count(*) as n from int_ground_truth group by user_id)"
    ).fetchone()[0]
    con.execute(
        "create or replace temp table exposure_captured "
        "(user_id integer, video_id integer, score double)"
    )
    ctx = modelapi.ModelContext(
        con=con,
        name=model.name,
        settings=settings,
        top_n=int(depth),
        threads=threads,
        seed=int(info.get("param.seed", 42)),
        wants_recommendations=False,
        sink=_CaptureSink(),
    )
    module = runner.load_module(model)
    (module.rescore if rescore else module.run)(ctx)
    con.execute(
        """
        insert into exposure_scores
        select getvariable('model_name'), p.user_id, p.video_id, c.score
        from exposure_pairs as p
        left join exposure_captured as c on p.user_id = c.user_id and p.video_id = c.video_id
        """
    )
    con.execute("drop table temp.exposure_captured")
    con.execute(f"drop table if exists temp.{modelapi.SCORES_TABLE}")
    if rescore:
        return "re-scored from what the build stored (rescore), every candidate scored"
    return "refitted, every candidate scored"


def score_all_candidates(
    con,
    info: dict[str, str],
    wanted: list[str] | None,
    threads: int,
    memory_limit: str | None = None,
) -> list[dict[str, Any]]:
    """Fill exposure_full_ranks, a model at a time (its scores of every candidate in
    exposure_scores, then its ranks: one model's window at a time keeps the memory down); one
    dict per model of the database (eval_exposure_models rows)."""
    in_db = [
        r[0] for r in con.execute("select distinct model from eval_rankings order by 1").fetchall()
    ]
    if wanted is not None:
        unknown = [m for m in wanted if m not in in_db]
        if unknown:
            raise UserError(
                f"--models: {', '.join(unknown)} not in the database (it has: {', '.join(in_db)})"
            )
    factor_models = {
        r[0] for r in con.execute("select distinct model from model_user_factors").fetchall()
    }
    available = runner.discover()
    con.execute(
        "create or replace temp table exposure_scores "
        "(model varchar, user_id integer, video_id integer, score double)"
    )
    con.execute(
        "create or replace temp table exposure_full_ranks "
        "(model varchar, user_id integer, video_id integer, full_rank integer)"
    )
    n_pairs = con.execute("select count(*) from exposure_pairs").fetchone()[0]
    ranks_body = stages.select_body(
        (EXPOSURE_DIR / "exposure_full_ranks.sql").read_text(encoding="utf-8")
    )
    rows = []
    for name in in_db:
        row: dict[str, Any] = {"model": name, "in_study": False, "scored_by": None, "note": None}
        rows.append(row)
        if wanted is not None and name not in wanted:
            row["note"] = "not asked for (--models)"
            continue
        model = available.get(name)
        if model is not None and not model.scores_every_candidate:
            row["note"] = (
                f"left out: it re-ranks other models' lists (SCORES_EVERY_CANDIDATE = False in "
                f"{model.path.name}), so its ranking of a sparse sample is undefined"
            )
            log.info("  %s: %s", name, row["note"])
            continue
        started = time.perf_counter()
        con.execute("set variable model_name = ?", [name])
        try:
            if model is not None and model.is_sql:
                row["scored_by"] = _score_sql_model_in_memory(con, model, memory_limit)
            elif name in factor_models:
                row["scored_by"] = _score_factors(con, name)
            elif model is not None:
                with runner.model_memory(con, model, memory_limit):
                    row["scored_by"] = _score_python_model(con, model, info, threads)
            else:
                row["note"] = f"left out: models/{name}.sql or .py is not in this checkout"
                continue
        except duckdb.OutOfMemoryException:
            raise  # the machine, not the model: run_study says so in one line
        except (duckdb.Error, ValueError, KeyError, TypeError) as exc:
            # The model's code no longer fits this database (changed since the build).
            con.execute("delete from exposure_scores where model = ?", [name])
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            row["scored_by"] = None
            row["note"] = f"left out: re-scoring failed ({first}); rebuild the database"
            log.warning("  %s: %s", name, row["note"])
            continue
        scored = con.execute(
            "select count(score) from exposure_scores where model = ?", [name]
        ).fetchone()[0]
        row["scored_share"] = scored / n_pairs if n_pairs else None
        row["score_seconds"] = time.perf_counter() - started
        if n_pairs and scored / n_pairs < MIN_SCORED_SHARE:
            con.execute("delete from exposure_scores where model = ?", [name])
            row["note"] = (
                f"left out: scores only {scored / n_pairs:.0%} of the candidates (it ranks a "
                "subset, e.g. other models' lists), so its ranking of a sparse sample is undefined"
            )
            continue
        con.execute(f"insert into exposure_full_ranks {ranks_body}")
        con.execute("delete from exposure_scores")
        row["in_study"] = True
        log.info("  %s: %s (%.1f s)", name, row["scored_by"], row["score_seconds"])
    con.execute("drop table temp.exposure_scores")
    return rows


def rank_agreement(con) -> dict[str, float]:
    """Per model: share of its eval_rankings rows (study users) that the re-scoring reproduces
    at the same rank."""
    return dict(
        con.execute(
            """
            select r.model, avg((f.full_rank = r.rank)::integer)
            from eval_rankings as r
            inner join exposure_pairs as p on r.user_id = p.user_id and r.video_id = p.video_id
            left join exposure_full_ranks as f
                on r.model = f.model and r.user_id = f.user_id and r.video_id = f.video_id
            where r.model in (select distinct model from exposure_full_ranks)
            group by r.model
            """
        ).fetchall()
    )


# ---------------------------------------------------------------------------------------------
# The study


def exposure_study(con, params: StudyParams, info: dict[str, str]) -> list[dict[str, Any]]:
    """eval_exposure_samples and eval_exposure_study; returns the model rows."""
    con.execute(
        f"""
        create or replace temp table exposure_pairs as
        select g.user_id, g.video_id, g.is_relevant,
               coalesce(p.n_users, 0) as n_video_users,
               coalesce(p.popularity_percentile, 0) as popularity_percentile
        from eval_ground_truth as g
        left join feat_video_popularity as p on g.video_id = p.video_id
        where g.split = '{STUDY_SPLIT}'
        """
    )
    if not con.execute("select count(*) from exposure_pairs").fetchone()[0]:
        raise UserError(f"eval_ground_truth has no {STUDY_SPLIT} users: nothing to sample")
    run_sql(con, "exposure_user_candidates")
    con.execute("set variable exposure_strategies = ?", [list(params.strategies)])
    con.execute("set variable exposure_densities = ?", [[float(d) for d in params.densities]])
    con.execute("set variable exposure_k = ?", [sorted(set(params.k))])
    con.execute("set variable exposure_rank_depth = ?", [rank_depth(params)])
    con.execute("set variable exposure_seed = ?", [int(params.seed)])
    con.execute("set variable exposure_positivity_weight = ?", [POSITIVITY_WEIGHT])
    con.execute("set variable exposure_popularity_exponent = ?", [POPULARITY_EXPONENT])

    log.info("scoring every candidate of every model")
    rows = score_all_candidates(con, info, params.models, params.threads, params.memory_limit)
    if not any(r["in_study"] for r in rows):
        raise UserError("no model could be scored on every candidate: nothing to compare")
    run_sql(con, "exposure_sample_sets")
    agreement = rank_agreement(con)
    for row in rows:
        row["rank_agreement"] = agreement.get(row["model"])
    prepare_lists(con)
    con.execute("set variable exposure_t_quantile = ?", [t_quantile(params.repeats)])
    raised = False
    for repeat in range(1, params.repeats + 1):
        seed = params.seed + repeat - 1
        log.info("sampling and evaluating: repeat %d of %d (seed %d)", repeat, params.repeats, seed)
        con.execute("set variable exposure_seed = ?", [seed])
        raised = _sample_and_rank(con, params, raised)
        for name, table in (
            ("eval_exposure_samples", "eval_exposure_samples"),
            ("exposure_repeat_study", "eval_exposure_repeats"),
        ):
            run_sql(con, name, table=f"{name}_one")
            select = f"select {repeat} as repeat, {seed} as seed, * from temp.{name}_one"
            if repeat == 1:
                con.execute(f"create or replace table {table} as {select}")
            else:
                con.execute(f"insert into {table} {select}")
            con.execute(f"drop table temp.{name}_one")
        if repeat == 1:  # the fully observed values are the same in every repeat
            bootstrap_intervals(
                con,
                "select 'eval_exposure_study' as relation, model, 'fully_observed' as split, "
                "'all' as segment_kind, 'all' as segment, k, metric, user_id, value "
                "from exposure_user_metrics where strategy = 'fully_observed'",
                "exposure_full_intervals",
            )
    run_sql(con, "eval_exposure_study", into="database")
    con.execute("drop table temp.exposure_full_intervals")
    for name in ("exposure_user_candidates", "exposure_model_lists", *SAMPLING_FILES):
        con.execute(f"drop table temp.{name}")
    if params.memory_limit is None:
        con.execute(f"set memory_limit = '{runner.PIPELINE_MEMORY_LIMIT}'")
    return rows


# ---------------------------------------------------------------------------------------------
# The temporal split


def temporal_split(con, params: StudyParams, info: dict[str, str], threads: int) -> dict[str, str]:
    """eval_temporal_split: the cheap models retrained on the views before the last days.

    The earlier views shadow int_train_events as a temp table of the same name; the table
    stages that depend on it and that the models need are re-run as temp tables over it, and
    the models run through runner.run_model into temp copies of the contract tables. Nothing of
    the database's own tables changes. Returns facts for eval_exposure_info.
    """
    available = runner.discover()  # the names are checked by check_models, before any work
    models = [available[name] for name in params.temporal_models]
    top_n = int(info["param.top_n"])

    # the fully observed results, read before anything is shadowed
    con.execute(
        "create or replace temp table temporal_reference as "
        "select model, k, metric, value, ci_low, ci_high, n_users from eval_metrics_ci "
        "where split = ?",
        [STUDY_SPLIT],
    )
    cutoff = con.execute(
        "select (max(event_at)::date - ?::integer + 1)::timestamp from int_train_events",
        [params.temporal_days],
    ).fetchone()[0]
    con.execute("set variable temporal_cutoff = ?", [cutoff])
    con.execute(
        "create or replace temp table temporal_test_events as "
        "select * from kuairec.main.int_train_events "
        "where event_at >= getvariable('temporal_cutoff')"
    )
    con.execute(
        "create or replace temp table int_train_events as "
        "select * from kuairec.main.int_train_events "
        "where event_at < getvariable('temporal_cutoff') or event_at is null"
    )
    all_stages = stages.ordered(stages.discover())
    # relations built before the models (int_train_events itself is a view)
    tables = {s.name: s for s in all_stages if s.kind in ("table", "early_view")}
    # what temporal_test_pairs reads, and what the models read (the build's graph), but not
    # the ground truth ModelContext reads for eval_rankings: the split scores recommendations
    # on its own test pairs, so the small matrix's labels are retrained only for a model that
    # names them itself
    needed = {"int_label_buckets", "int_user_index", "int_train_interactions"}
    for model in models:
        needed |= stages.names_read(model.source_text, set(tables))
        if not model.is_sql:
            needed |= fingerprints.CONTEXT_DEPS - {"int_ground_truth"}
    rerun = fingerprints.closure(needed, tables) & fingerprints.downstream(
        "int_train_events", tables
    )
    shadows = ["int_train_events", "temporal_test_events", "temporal_reference"]
    try:
        for stage in all_stages:
            if stage.name in rerun:
                body = stages.select_body(stage.sql)
                con.execute(f"create or replace temp table {stage.name} as {body}")
                shadows.append(stage.name)
        for table in CONTRACT:
            con.execute(f"create or replace temp table {table} ({stages.CONTRACT_TABLES[table]})")
            shadows.append(table)
        for model in models:
            settings = built_settings(model, info)
            seed = int(info.get("param.seed", 42))
            with runner.model_memory(con, model, params.memory_limit):
                runner.run_model(con, model, settings, top_n, threads, seed)
        run_sql(con, "temporal_test_pairs")
        shadows.append("temporal_test_pairs")
        run_sql(con, "temporal_user_metrics")
        shadows.append("temporal_user_metrics")
        bootstrap_intervals(
            con,
            "select 'eval_temporal_split' as relation, model, 'temporal' as split, "
            "'all' as segment_kind, 'all' as segment, k, metric, user_id, value "
            "from temporal_user_metrics",
            "temporal_intervals",
        )
        shadows.append("temporal_intervals")
        run_sql(con, TEMPORAL_TABLE, into="database")
        facts = con.execute(
            """
            select
                (select count(*) from int_train_events),
                (select count(*) from temporal_test_events),
                (select count(*) from temporal_test_pairs),
                (select count(*) from temporal_test_pairs where is_relevant),
                (select count(distinct user_id) from temporal_test_pairs where is_relevant)
            """
        ).fetchone()
    finally:
        for name in reversed(shadows):
            con.execute(f"drop table if exists temp.{name}")
    keys = ("n_train_events", "n_test_events", "n_test_pairs", "n_relevant_pairs", "n_users")
    out = {f"temporal.{k}": str(v) for k, v in zip(keys, facts)}
    out["temporal.cutoff_at"] = cutoff.isoformat(sep=" ")
    out["temporal.days"] = str(params.temporal_days)
    out["temporal.models"] = ",".join(m.name for m in models)
    out["temporal.retrained_tables"] = ",".join(s for s in shadows if s in tables)
    return out


# ---------------------------------------------------------------------------------------------
# The command's work: copy, compute, rename


def run_study(params: StudyParams) -> StudyResult:
    params.validate()
    target = params.db.expanduser().resolve()
    info = check_database(target)
    check_models(params, info)
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    limit = params.memory_limit or (
        f"{runner.PIPELINE_MEMORY_LIMIT}, more for models that ask for it"
    )
    timings: dict[str, float] = {}
    with workspace.Workspace(
        target, "running exposure-study on", "the database is unchanged"
    ) as ws:
        con = ws.connect(params.threads, params.memory_limit, copy=True)
        ws.memory_in_use = limit
        stages.create_macros(con)  # this checkout's formulas, which its SQL files call
        set_build_variables(con, info)
        for table in OUTPUT_TABLES:
            con.execute(f"drop table if exists {table}")

        rows = exposure_study(con, params, info)
        timings["study_seconds"] = time.perf_counter() - started
        facts: dict[str, str] = {}
        temporal_models: list[str] = []
        if params.temporal:
            log.info("temporal split: retraining %s", ", ".join(params.temporal_models))
            t0 = time.perf_counter()
            facts = temporal_split(con, params, info, params.threads)
            timings["temporal_seconds"] = time.perf_counter() - t0
            temporal_models = facts["temporal.models"].split(",")
        for row in rows:
            row["in_temporal"] = row["model"] in temporal_models
        _write_models(con, rows)
        timings["seconds"] = time.perf_counter() - started
        _write_info(con, params, info, facts, timings, started_at)
        comments.apply_comments(con, only=OUTPUT_TABLES)
        ws.publish(con)
        return StudyResult(
            db=target,
            seconds=time.perf_counter() - started,
            models=[r["model"] for r in rows if r["in_study"]],
            left_out={r["model"]: r["note"] for r in rows if not r["in_study"]},
            temporal_models=temporal_models,
            timings=timings,
        )


def _write_models(con, rows: list[dict[str, Any]]) -> None:
    con.execute(
        """
        create or replace table eval_exposure_models (
            model varchar, in_study boolean, scored_by varchar, scored_share double,
            rank_agreement double, in_temporal boolean, note varchar
        )
        """
    )
    con.executemany(
        "insert into eval_exposure_models values (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                r["model"],
                r["in_study"],
                r["scored_by"],
                r.get("scored_share"),
                r.get("rank_agreement"),
                r.get("in_temporal", False),
                r["note"],
            )
            for r in rows
        ],
    )


def _write_info(con, params, info, facts, timings, started_at) -> None:
    out = {
        "kuairec_db_version": __version__,
        "duckdb_version": duckdb.__version__,
        "started_at": started_at.isoformat(timespec="seconds"),
        "build_finished_at": info.get("finished_at", ""),
        "split": STUDY_SPLIT,
        "seed": str(params.seed),
        "repeats": str(params.repeats),
        "seeds": ",".join(str(params.seed + r) for r in range(params.repeats)),
        "strategies": ",".join(params.strategies),
        "densities": ",".join(f"{d:g}" for d in params.densities),
        "k": ",".join(str(k) for k in sorted(set(params.k))),
        "positivity_weight": f"{POSITIVITY_WEIGHT:g}",
        "popularity_exponent": f"{POPULARITY_EXPONENT:g}",
        "temporal": str(params.temporal).lower(),
        "memory_limit": params.memory_limit or runner.PIPELINE_MEMORY_LIMIT,
        **facts,
        **{k: f"{v:.1f}" for k, v in timings.items()},
    }
    con.execute("create or replace table eval_exposure_info (key varchar, value varchar)")
    con.executemany("insert into eval_exposure_info values (?, ?)", sorted(out.items()))
