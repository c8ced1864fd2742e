"""``tune``: choose each model's settings on the tune users only, by seeded random search.

For every model tuned, trial 0 runs its ``DEFAULTS`` and trials 1 .. budget - 1 run settings
drawn without replacement from its search space (the module's ``SEARCH_SPACE`` if it has one,
else SEARCH_SPACES below) by a random generator seeded with ``SEED:MODEL``. The best trial by
the selection metric (NDCG@10 unless told otherwise; ties to the earlier trial, so the defaults
win a tie) is chosen. By default the models tuned are those of the database with a search
space.

Why test users cannot influence a choice, by construction: the trials run in a workspace, a
database in a temporary folder beside it (``.NAME.work-PID``, which the next build or tune
removes if a tune is killed; workspace.py), in which ``int_ground_truth`` holds the tune users
only before any trial runs. The workspace reads the other tables from the database, attached
read-only, through views (nothing is copied but the ground truth, the tune users' rankings and
the factor tables), and recreates the database's own views over them. The models then rank only
tune users' candidates and every evaluation view there (``eval_ground_truth``, ``eval_metrics``
...) knows only tune users; a trial whose metrics name any other split stops the tune. The
workspace is removed afterwards. The build's lock (``.NAME.lock``) is held throughout, so a
build and a tune never run at once on one file.

Outputs: every trial in the table ``tuning_trials`` of the database (written like a build:
into a copy renamed over the file), and the chosen settings in a TOML settings file
(models/settings.toml by default), which ``build`` reads: DEFAULTS < the file < --set.

Out of scope: build parameters read in SQL (``--confidence-alpha``, the popularity prior, the
label) are not searched: they change shared tables that every model and the labels read; and
models fitted on the tune users' labels (``USES_OTHER_MODELS``, the hybrid) are not tuned here,
as their tune metrics are in-sample (the hybrid chooses its own penalty, or one input alone,
by cross-validation over the tune users).

Size: about 500 lines: the search, the trial workspace and the settings file it writes; its
command line is in cli/tune.py.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from kuairec_db import build, comments, runner, settings, stages, validate, workspace
from kuairec_db.errors import UserError
from kuairec_db.params import changed_options, from_build_info

log = logging.getLogger(__name__)

# Search spaces of the models whose module has no SEARCH_SPACE: setting -> values to try.
# Values bracket each model's DEFAULTS; costs stay of the order of one default fit (BPR keeps
# iterations = 0, its data-sized epoch count: a fixed 200 epochs would take hours at full
# scale).
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "als": {
        "factors": [32, 64, 128, 192],
        "regularization": [0.01, 0.05, 0.15, 0.5, 1.0, 2.0],
        "iterations": [10, 15, 25],
    },
    "bpr": {
        "factors": [32, 64, 128],
        "learning_rate": [0.01, 0.025, 0.05, 0.1],
        "regularization": [0.001, 0.01, 0.05],
    },
    "itemknn": {
        "weighting": ["bm25", "cosine"],
        "K": [20, 50, 100, 200, 400],
        "K1": [1.2, 10.0, 100.0, 1000.0],
        "B": [0.5, 0.8, 1.0],
    },
    "ease": {
        "l2": [500.0, 2500.0, 10_000.0, 50_000.0, 100_000.0, 250_000.0, 500_000.0],
        "binary": [True, False],
    },
}

# Settings a model ignores given another setting's value: setting -> value -> ignored settings.
# A drawn point sets those to their defaults, so two points that differ only there are one.
UNUSED_WHEN: dict[str, dict[str, dict[Any, tuple[str, ...]]]] = {
    "itemknn": {"weighting": {"cosine": ("K1", "B")}},
}

METRICS = ("ndcg", "recall", "precision", "map", "hit_rate", "mrr")
TRIALS_TABLE = "tuning_trials"
TRIALS_COLUMNS = (
    "model varchar, trial integer, settings varchar, is_default boolean, split varchar, "
    "k integer, n_users integer, "
    + ", ".join(f"{m} double" for m in METRICS)
    + ", selection_metric varchar, selection_value double, seconds double, is_chosen boolean, "
    "search_seed integer, model_seed integer, tuned_at timestamp"
)
DEFAULT_BUDGET = 8
DEFAULT_SEED = 42


@dataclass
class Trial:
    model: str
    trial: int
    settings: dict[str, Any]
    split: str  # the users the metrics come from: always 'tune'
    n_users: int
    values: dict[str, float]  # metric -> value at k
    seconds: float
    is_chosen: bool = False


@dataclass
class TuneResult:
    db: Path
    settings_file: Path | None
    metric: str
    k: int
    n_tune_users: int
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0
    build_command: str = ""

    def chosen(self) -> dict[str, Trial]:
        return {t.model: t for t in self.trials if t.is_chosen}


# ---------------------------------------------------------------------------------------------
# Search spaces and sampling


def search_space(model: runner.Model) -> dict[str, list[Any]]:
    """The model's search space: its module's SEARCH_SPACE, else SEARCH_SPACES, else {}."""
    if model.is_sql:
        return {}
    space = getattr(runner.load_module(model), "SEARCH_SPACE", None)
    if space is None:
        space = SEARCH_SPACES.get(model.name, {})
    defaults = runner.model_defaults(model)
    unknown = [key for key in space if key not in defaults]
    if unknown:
        raise UserError(
            f"search space of {model.name} names unknown setting(s) {', '.join(unknown)} "
            f"(it has: {', '.join(defaults) or 'none'})"
        )
    types = runner.model_setting_types(model)  # the declared type and range of each setting
    return {
        key: [types[key].convert(v, f"search space of {model.name}.{key}") for v in values]
        for key, values in space.items()
    }


def sample_settings(
    defaults: dict[str, Any],
    space: dict[str, list[Any]],
    budget: int,
    seed: str,
    unused_when: dict[str, dict[Any, tuple[str, ...]]] | None = None,
) -> list[dict[str, Any]]:
    """Trial 0 = defaults, then up to budget - 1 distinct other points of the grid, drawn
    without replacement by random.Random(seed) (a string seed is stable across runs), settings
    made irrelevant by another (unused_when, see UNUSED_WHEN) set to their defaults."""
    trials = [dict(defaults)]
    keys = sorted(space)
    grid = [dict(zip(keys, combo)) for combo in itertools.product(*(space[k] for k in keys))]
    random.Random(seed).shuffle(grid)
    seen = {json.dumps(defaults, sort_keys=True)}
    for point in grid:
        if len(trials) >= budget:
            break
        settings = {**defaults, **point}
        for setting, values in (unused_when or {}).items():
            for ignored in values.get(settings.get(setting), ()):
                settings[ignored] = defaults[ignored]
        key = json.dumps(settings, sort_keys=True)
        if key not in seen:
            seen.add(key)
            trials.append(settings)
    return trials


def tunable_models(names: list[str] | None) -> list[runner.Model]:
    """The models to tune: those named, else every model with a non-empty search space (tune
    then keeps those the database was built with)."""
    available = runner.discover()
    if names is None:
        chosen = [m for m in available.values() if not m.uses_other_models and search_space(m)]
        if not chosen:
            raise UserError("no model in models/ has settings to tune")
        return chosen
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; available: {', '.join(available)}")
    out = []
    for name in names:
        model = available[name]
        if model.uses_other_models:
            raise UserError(
                f"{name} is built on the other models and fitted on the tune users' labels: its "
                "tune metrics are in-sample, so tune does not choose its settings"
            )
        if not search_space(model):
            raise UserError(f"{name} has no settings to tune (no search space)")
        out.append(model)
    return out


# ---------------------------------------------------------------------------------------------
# The workspace


def _restrict_to_tune_users(con: duckdb.DuckDBPyConnection) -> int:
    """Cut the workspace's ground truth and rankings down to tune users; returns their number."""
    con.execute("delete from int_ground_truth where split is distinct from 'tune'")
    con.execute(
        "delete from eval_rankings where user_id not in (select user_id from int_ground_truth)"
    )
    con.execute("delete from recommendations")  # trials write eval_rankings only
    left = con.execute(
        "select count(*) filter (where split <> 'tune'), count(distinct user_id) "
        "from int_ground_truth"
    ).fetchone()
    if left[0]:
        raise RuntimeError("the tuning workspace still holds test users")
    return int(left[1])


def _trial_metrics(
    con: duckdb.DuckDBPyConnection, model: str, k: int
) -> tuple[str, int, dict[str, float]]:
    """(split, n_users, metric -> value) of a trial, from the workspace's eval_metrics."""
    rows = con.execute(
        "select split, metric, value, n_users from eval_metrics "
        "where model = ? and k = ? and split <> 'all'",
        [model, k],
    ).fetchall()
    splits = {r[0] for r in rows}
    if splits != {"tune"}:
        raise RuntimeError(f"trial of {model}: metrics from split(s) {sorted(splits)}, not tune")
    values = {metric: float(value) for _, metric, value, _ in rows}
    return "tune", max(r[3] for r in rows), values


def tune(
    db: Path,
    models: list[str] | None = None,
    budget: int = DEFAULT_BUDGET,
    seed: int = DEFAULT_SEED,
    metric: str = "ndcg",
    k: int = 10,
    write: Path | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> TuneResult:
    """Search the models' settings on the tune users of DB (module docstring)."""
    if budget < 1:
        raise UserError("--budget must be at least 1 (trial 0 is the defaults)")
    if metric not in METRICS:
        raise UserError(f"--metric must be one of {', '.join(METRICS)}, not {metric!r}")
    target = db.expanduser().resolve()
    validate.check_database_file(target, str(db))
    chosen_models = tunable_models(models)
    threads = threads or os.cpu_count() or 1
    validate.check_threads(threads)
    started = time.perf_counter()
    tuned_at = datetime.now(timezone.utc).replace(tzinfo=None)

    limit = memory_limit or f"{runner.PIPELINE_MEMORY_LIMIT}, more for models that ask for it"
    with workspace.Workspace(target, "tuning on", "the database and settings are unchanged") as ws:
        con = duckdb.connect(
            str(ws.make_work_folder() / "tune.duckdb"), config=ws.config(threads, memory_limit)
        )
        ws.memory_in_use = limit
        try:
            con.execute(f"attach '{workspace.sql_str(target)}' as src (read_only)")
            info = _read_build_info(con, db)
            params = from_build_info(info)
            if k not in params.k:
                raise UserError(f"--k {k}: {db} has metrics at k = {', '.join(map(str, params.k))}")
            if models is None:  # by default, the tunable models this database was built with
                built = set(info.get("models", "").split(","))
                chosen_models = [m for m in chosen_models if m.name in built]
                if not chosen_models:
                    raise UserError(
                        f"{db}: none of its models ({info.get('models', '')}) has settings to tune"
                    )
            for name, value in params.sql_variables().items():
                con.execute(f"set variable {name} = ?", [value])
            _open_trials_workspace(con)
            n_tune = _restrict_to_tune_users(con)
            result = TuneResult(target, write, metric, k, n_tune)
            _run_trials(con, result, chosen_models, params, budget, seed, threads, memory_limit)
        finally:
            con.close()
        _write_trials(ws, result, seed, params.seed, tuned_at)
        if write is not None:
            write_settings_file(write, result, info)
        result.build_command = _build_command(db, info, params, write)
        result.seconds = time.perf_counter() - started
        return result


def _run_trials(
    con: duckdb.DuckDBPyConnection,
    result: TuneResult,
    chosen_models: list[runner.Model],
    params: build.BuildParams,
    budget: int,
    seed: int,
    threads: int,
    memory_limit: str | None,
) -> None:
    """Every trial of every model, into result.trials (the best of each model chosen)."""
    metric, k = result.metric, result.k
    log.info(
        "tuning %s on the %d tune users of %s (%s@%d, %d trials each, seed %d)",
        ", ".join(m.name for m in chosen_models),
        result.n_tune_users,
        result.db.name,
        metric,
        k,
        budget,
        seed,
    )
    for model in chosen_models:
        candidates = sample_settings(
            runner.model_defaults(model),
            search_space(model),
            budget,
            f"{seed}:{model.name}",
            UNUSED_WHEN.get(model.name),
        )
        model_trials = []
        for number, trial_settings in enumerate(candidates):
            trial_started = time.perf_counter()
            with runner.model_memory(con, model, memory_limit):
                runner.run_model(
                    con,
                    model,
                    trial_settings,
                    params.top_n,
                    threads,
                    params.seed,
                    recommendations=False,
                )
            split, n_users, values = _trial_metrics(con, model.name, k)
            trial = Trial(
                model.name,
                number,
                trial_settings,
                split,
                n_users,
                values,
                time.perf_counter() - trial_started,
            )
            log.info(
                "  %s trial %d: %s@%d %.4f  %s",
                model.name,
                number,
                metric,
                k,
                values.get(metric, float("nan")),
                json.dumps(trial_settings, sort_keys=True),
            )
            model_trials.append(trial)
        best = max(model_trials, key=lambda t: (t.values.get(metric, float("-inf")), -t.trial))
        best.is_chosen = True
        result.trials += model_trials


# The tables a trial writes (copied into the workspace); every other table is read through a
# view on the database. int_ground_truth and eval_rankings are copied for the tune users only.
_WRITTEN = tuple(runner.CONTRACT_TABLES)


def _open_trials_workspace(con: duckdb.DuckDBPyConnection) -> None:
    """Fill the workspace (the connection's own database) from the database attached as src:
    the ground truth of the tune users, the contract tables the trials write, a view per other
    table, and the database's own views, recreated here so they read the workspace's tables."""
    tables = [
        r[0]
        for r in con.execute(
            "select table_name from duckdb_tables() where database_name = 'src' "
            "and schema_name = 'main' order by table_name"
        ).fetchall()
    ]
    con.execute(
        "create table int_ground_truth as "
        "select * from src.main.int_ground_truth where split = 'tune'"
    )
    for table in tables:
        if table == "int_ground_truth":
            continue
        if table == "eval_rankings":
            con.execute(
                "create table eval_rankings as select * from src.main.eval_rankings "
                "where user_id in (select user_id from int_ground_truth)"
            )
        elif table == "recommendations":  # trials write eval_rankings only
            con.execute("create table recommendations as from src.main.recommendations limit 0")
        elif table in _WRITTEN:
            con.execute(f"create table {table} as from src.main.{table}")
        else:
            con.execute(f"create view {table} as from src.main.{table}")
    pending = con.execute(
        "select view_name, sql from duckdb_views() where database_name = 'src' "
        "and schema_name = 'main' and not internal order by view_name"
    ).fetchall()
    stages.create_macros(con)  # the shared formulas the views call (sql/macros/)
    # DuckDB stores a view's text with the lambda arrow its parser now warns about
    con.execute("set lambda_syntax = 'ENABLE_SINGLE_ARROW'")
    while pending:  # in an order where each view comes after those it reads
        waiting = []
        for name, sql in pending:
            try:
                con.execute(sql)
            except duckdb.CatalogException:
                waiting.append((name, sql))
        if len(waiting) == len(pending):
            raise RuntimeError(f"cannot recreate the views {[n for n, _ in waiting]}")
        pending = waiting
    con.execute("reset lambda_syntax")


def _read_build_info(con: duckdb.DuckDBPyConnection, db: Path) -> dict[str, str]:
    try:
        info = dict(con.execute("select key, value from src.main.build_info").fetchall())
        con.execute("select 1 from src.main.int_ground_truth limit 1")
    except duckdb.CatalogException:
        raise UserError(
            f"{db}: not a kuairec_db database (no build_info or ground truth)"
        ) from None
    return info


# ---------------------------------------------------------------------------------------------
# Outputs


def _write_trials(
    ws: workspace.Workspace,
    result: TuneResult,
    search_seed: int,
    model_seed: int,
    tuned_at: datetime,
) -> None:
    """Replace the tuned models' rows of tuning_trials in the database, atomically like build:
    a copy of the file is written and renamed over it (readers keep their view)."""
    con = ws.connect(1, None, copy=True)
    columns = [
        r[0]
        for r in con.execute(
            "select column_name from duckdb_columns() "
            "where database_name = 'kuairec' and table_name = ?",
            [TRIALS_TABLE],
        ).fetchall()
    ]
    expected = [c.strip().split(" ")[0] for c in TRIALS_COLUMNS.split(",")]
    if columns and columns != expected:
        con.execute(f"drop table {TRIALS_TABLE}")  # written by an older tune
    con.execute(f"create table if not exists {TRIALS_TABLE} ({TRIALS_COLUMNS})")
    con.execute(
        f"delete from {TRIALS_TABLE} where model in (select unnest(?))",
        [sorted({t.model for t in result.trials})],
    )
    selection = f"{result.metric}@{result.k}"
    con.executemany(
        f"insert into {TRIALS_TABLE} values ({', '.join('?' * len(expected))})",
        [
            (
                t.model,
                t.trial,
                json.dumps(t.settings, sort_keys=True),
                t.trial == 0,
                t.split,
                result.k,
                t.n_users,
                *(t.values.get(m) for m in METRICS),
                selection,
                t.values.get(result.metric),
                round(t.seconds, 3),
                t.is_chosen,
                search_seed,
                model_seed,
                tuned_at,
            )
            for t in result.trials
        ],
    )
    comments.apply_comments(con)
    ws.publish(con)


def write_settings_file(path: Path, result: TuneResult, info: dict[str, str]) -> None:
    """Write the chosen settings to PATH, keeping the other models' tables already in it."""
    previous: dict[str, dict[str, Any]] = {}
    if path.is_file():
        try:
            previous = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not a valid TOML settings file ({exc})") from None
    chosen = result.chosen()
    defaults_value = {t.model: t.values.get(result.metric) for t in result.trials if t.trial == 0}
    n_trials = {m: sum(t.model == m for t in result.trials) for m in chosen}
    header = [
        "Model settings for `python -m kuairec_db build` (DEFAULTS < this file < --set).",
        f"Written by `python -m kuairec_db tune` on {result.db.name}, built from "
        f"{info.get('data_location', '?')}.",
        f"Chosen by {result.metric}@{result.k} on its {result.n_tune_users} TUNE users only; "
        f"every trial is in the table {TRIALS_TABLE}.",
    ]
    notes = {
        name: f"{result.metric}@{result.k} on tune users {trial.values[result.metric]:.4f} "
        f"(defaults {defaults_value[name]:.4f}), trial {trial.trial} of "
        f"{n_trials[name]} (0 = defaults)"
        for name, trial in chosen.items()
    }
    tables = {**previous, **{name: trial.settings for name, trial in chosen.items()}}
    settings.write_settings_file(path, header, tables, notes)


def _build_command(db: Path, info: dict[str, str], params: build.BuildParams, write) -> str:
    parts = ["python -m kuairec_db build", f"--db {db}"]
    data = info.get("param.data")
    if data:
        parts.append(f"--data {data}")
    elif info.get("data_kind") == "synthetic_demo":
        parts.append("--demo")
        if params.demo_scale != build.BuildParams().demo_scale:
            parts.append(f"--demo-scale {params.demo_scale}")
    parts += changed_options(params)  # the options the SQL reads, where not the defaults
    if params.models is not None:
        parts.append(f"--models {','.join(params.models)}")
    if write is not None:
        parts.append(f"--config {write}")
    return " ".join(parts)
