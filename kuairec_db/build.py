"""``build``: KuaiRec files -> one DuckDB file, written atomically.

``build()`` is a list of named phases: plan (models, settings, fingerprints), open a working
copy beside the target (workspace.py: lock, copy, attach, publish, clean up), the table stages
(only those whose fingerprint changed, fingerprints.py), the models, the evaluation views and
audits, then build_info, lineage and the catalogue's comments, and publish. A failed or killed
build leaves the previous database untouched; the next build removes what a killed one left.
``build --explain`` runs the plan alone and says what would be rebuilt and why.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import sys
import time
import types
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from kuairec_db import (
    allocator,
    comments,
    fingerprints,
    lineage,
    profile,
    runner,
    sources,
    stages,
    validate,
    workspace,
)
from kuairec_db import settings as model_settings_module
from kuairec_db.buildinfo import _build_info, _data_warnings, _kept_facts, _memory_limit
from kuairec_db.csvread import csv_error_message, csv_view_sql
from kuairec_db.errors import UserError
from kuairec_db.params import BuildParams
from kuairec_db.schema import SOURCES
from kuairec_db.stage_runner import (
    _announce_demo,
    _file_facts,
    _reads_files,
    _resolve_data,
    _run_stage,
    run_audits,
    source_read,
)

log = logging.getLogger(__name__)

STORAGE_VERSION = workspace.STORAGE_VERSION
# Kept importable from here: the lock, publishing and the catalogue moved to their own modules.
acquire_lock = workspace.acquire_lock
remove_leftovers = workspace.remove_leftovers
publish = workspace.publish
disk_full = workspace.disk_full
apply_comments = comments.apply_comments
load_settings_file = model_settings_module.load_settings_file
FINGERPRINT_TABLE = fingerprints.FINGERPRINT_TABLE
model_dependencies = fingerprints.model_dependencies
needed_tables = fingerprints.needed_tables
__all__ = ["BuildParams", "BuildResult", "build", "explain", "csv_error_message"]


@dataclass
class BuildResult:
    db: Path
    data_kind: str
    data_location: str
    seconds: float
    warnings: list[str]
    up_to_date: bool = False
    rebuilt: list[str] = field(default_factory=list)  # tables and model:NAME recomputed
    kept: list[str] = field(default_factory=list)  # tables and model:NAME reused as they were


# ---------------------------------------------------------------------------------------------
# Phase 1: the plan (nothing is written)


@dataclass
class _Plan:
    target: Path
    models: list[runner.Model]
    settings_file: Path | None
    model_settings: dict[str, dict[str, Any]]
    all_stages: list[stages.Stage] = field(default_factory=list)
    data_kind: str = ""
    location: str = ""
    fps: fingerprints.Plan | None = None


def _plan(params: BuildParams) -> _Plan:
    """Check the parameters, the target and the models' settings."""
    params.validate()
    target = params.db.expanduser().resolve()
    if not target.parent.is_dir():
        raise UserError(f"{target.parent}: no such folder for the database")
    validate.check_build_target(target, str(params.db))
    models = _select_models(params)
    settings_file, model_settings = model_settings_module.resolve(
        models, params.config, params.settings
    )
    return _Plan(target, models, settings_file, model_settings)


def _fingerprint(plan: _Plan, params: BuildParams) -> None:
    """Locate the inputs (without reading them) and fingerprint every stage and model."""
    plan.data_kind, plan.location, input_fps = fingerprints.locate_inputs(
        params.data, params.demo, params.demo_scale, params.demo_seed
    )
    plan.all_stages = stages.ordered(stages.discover())
    plan.fps = fingerprints.plan(
        plan.all_stages,
        plan.models,
        plan.model_settings,
        params.sql_variables(),
        params.top_n,
        params.seed,
        input_fps,
    )


def explain(params: BuildParams) -> list[str]:
    """What ``build`` would rebuild and why, one line each; builds and writes nothing."""
    plan = _plan(params)
    _fingerprint(plan, params)
    assert plan.fps is not None
    before, before_components = fingerprints.previous(plan.target)
    existing = _tables_in(plan.target)
    if not before and not params.force:
        why = "it does not exist" if not plan.target.exists() else "it holds no fingerprints"
        head = f"{plan.target}: everything would be built ({why})"
        return [head] + [f"  {name}" for name in plan.fps.fingerprints]
    stored = {s.name for s in plan.all_stages if s.kind == "table"}
    changes = fingerprints.explain(
        plan.fps, before, before_components, existing, stored, params.force
    )
    if not changes:
        return [f"{plan.target} is up to date: a build would do nothing"]
    width = max(len(name) for name, _ in changes)
    lines = [
        f"{plan.target}: a build would redo {len(changes)} of {len(plan.fps.fingerprints)} "
        "tables and models (views and audits, recreated by any build that does work, are "
        "listed when their own SQL changed):"
    ]
    return lines + [f"  {name:<{width}}  {reason}" for name, reason in changes]


def _tables_in(target: Path) -> set[str]:
    if not target.is_file():
        return set()
    try:
        con = duckdb.connect(str(target), read_only=True)
    except duckdb.Error:
        return set()
    try:
        return {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    finally:
        con.close()


# ---------------------------------------------------------------------------------------------
# The build


def build(params: BuildParams) -> BuildResult:
    allocator.keep_large_blocks()  # Python callers too, not only the command line
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    plan = _plan(params)
    ws = workspace.Workspace(plan.target, "building", "the previous database is intact")
    with ws:
        _fingerprint(plan, params)
        assert plan.fps is not None
        previous = {} if params.force else fingerprints.previous(plan.target)[0]
        if previous and previous == plan.fps.fingerprints:
            seconds = time.perf_counter() - started
            return BuildResult(plan.target, plan.data_kind, plan.location, seconds, [], True)
        con = _open(ws, plan, params, previous)
        existing = {
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = 'kuairec'"
            ).fetchall()
        }
        tables = _build_tables(con, plan, params, ws.work, previous, existing)
        model_timings = _run_models(con, plan, params, previous, ws)
        _drop_what_this_build_does_not_make(con, plan)
        _views_and_audits(con, plan)
        warnings = _data_warnings(con)
        rebuilt, kept = _redone_and_kept(plan, previous, tables, model_timings)
        previous_info = (
            dict(con.execute("select key, value from build_info").fetchall())
            if previous and "build_info" in existing
            else {}
        )
        info = _build_info(
            params,
            plan.settings_file,
            plan.data_kind,
            plan.location,
            plan.model_settings,
            model_timings,
            tables.timings,
            tables.files_info,
            started_at,
            time.perf_counter() - started,
        )
        info |= {
            f"model.{name}.libraries": json.dumps(plan.fps.libraries[name], sort_keys=True)
            for name in model_timings
        }
        if previous_info:
            info = _kept_facts(info, previous_info, kept, rebuilt)
        _write_metadata(con, plan, info)
        ws.publish(con)
        seconds = time.perf_counter() - started
        return BuildResult(
            plan.target, plan.data_kind, plan.location, seconds, warnings, False, rebuilt, kept
        )


def _open(
    ws: workspace.Workspace, plan: _Plan, params: BuildParams, previous: dict[str, str]
) -> duckdb.DuckDBPyConnection:
    """Phase: the new database (a copy of the previous one for an update), its variables."""
    if plan.data_kind == "synthetic_demo":
        _announce_demo(params)
    if previous:
        log.info("updating %s: only what changed is recomputed", plan.target.name)
    con = ws.connect(params.threads, params.memory_limit, copy=bool(previous))
    for name, value in params.sql_variables().items():
        con.execute(f"set variable {name} = ?", [value])
    return con


def _views_and_audits(con: duckdb.DuckDBPyConnection, plan: _Plan) -> None:
    """Phase: the views built after the models, then the audits (which must return no row)."""
    log.info("evaluation views")
    for stage in (s for s in plan.all_stages if s.kind == "view"):
        _run_stage(con, stage, None)
    run_audits(con, [s for s in plan.all_stages if s.kind == "audit"])


def _redone_and_kept(
    plan: _Plan,
    previous: dict[str, str],
    tables: _Tables,
    model_timings: dict[str, dict[str, float]],
) -> tuple[list[str], list[str]]:
    """(tables, models and changed views redone; tables and models kept as they were)."""
    assert plan.fps is not None
    views = [
        name
        for name, fp in plan.fps.fingerprints.items()
        if name.startswith(("view:", "audit:")) and previous and previous.get(name) != fp
    ]
    rebuilt = sorted(tables.stale) + [f"model:{name}" for name in model_timings] + views
    kept = sorted(tables.names - tables.stale) + [
        f"model:{m.name}" for m in plan.models if m.name not in model_timings
    ]
    return rebuilt, kept


@dataclass
class _Tables:
    names: set[str]  # the table stages of this build
    stale: set[str]  # those recomputed
    timings: dict[str, float]
    files_info: dict[str, str]


def _build_tables(
    con: duckdb.DuckDBPyConnection,
    plan: _Plan,
    params: BuildParams,
    work: Path,
    previous: dict[str, str],
    existing: set[str],
) -> _Tables:
    """Phase: the stages built before the models, those whose fingerprint changed (reading
    the input files only when one of them needs it)."""
    assert plan.fps is not None
    fps = plan.fps.fingerprints
    all_stages = plan.all_stages
    table_stages = [s for s in all_stages if s.kind in stages.TABLE_PHASE and s.name in fps]
    stale = {
        s.name
        for s in table_stages
        if s.kind == "table" and (previous.get(s.name) != fps[s.name] or s.name not in existing)
    }
    by_name = {s.name: s for s in all_stages}
    reads_files = {name for name in stale if _reads_files(by_name[name], by_name)}
    timings: dict[str, float] = {}

    src = None
    hashing = None
    files_info: dict[str, str] = {}
    if reads_files:
        src = _resolve_data(params, work)
        headers, bare_crs = sources.prepare(src, work)
        for source, header in headers.items():
            con.execute(csv_view_sql(source, src.files[source], header))
        # hashing (hashlib releases the GIL) runs beside the first SQL stages
        pool = concurrent.futures.ThreadPoolExecutor(1)
        hashing = pool.submit(_file_facts, src)
        pool.shutdown(wait=False)
        for source, n in bare_crs.items():
            files_info[f"file.{SOURCES[source][0]}.bare_carriage_returns"] = str(n)
    elif previous:
        files_info = dict(
            con.execute("select key, value from build_info where key like 'file.%'").fetchall()
        )

    log.info(
        "loading and preparing (%s); DuckDB: %d threads, memory limit %s",
        plan.location,
        params.threads,
        _memory_limit(params),
    )
    for stage in table_stages:
        if stage.name in stale or stage.kind in ("early_view", "macro"):
            timings[stage.name] = _run_stage(con, stage, src, source_read(stage, by_name))
        elif stage.kind == "ephemeral" and src is not None:
            _run_stage(con, stage, src, source_read(stage, by_name))
    if profile.SAMPLE_TABLE in stale or not existing.issuperset(profile.HOOK_TABLES):
        timings["profile_fits"] = profile.write_fits(con)  # data_profile's two Python fits
    if hashing is not None:
        files_info.update(hashing.result())
    names = {s.name for s in table_stages if s.kind == "table"}
    kept = len(names) - len(stale)
    if kept:
        log.info("  %d tables unchanged since the last build", kept)
    return _Tables(names, stale, timings, files_info)


def _run_models(
    con: duckdb.DuckDBPyConnection,
    plan: _Plan,
    params: BuildParams,
    previous: dict[str, str],
    ws: workspace.Workspace,
) -> dict[str, dict[str, float]]:
    """Phase: the contract tables, and every model whose fingerprint changed into them."""
    assert plan.fps is not None
    models = plan.models
    for table, columns in stages.CONTRACT_TABLES.items():
        con.execute(f"create table if not exists {table} ({columns})")
        con.execute(
            f"delete from {table} where model not in (select unnest(?))",
            [[m.name for m in models]],
        )
    log.info("training and ranking: %s", ", ".join(m.name for m in models))
    model_timings: dict[str, dict[str, float]] = {}
    for model in models:
        key = f"model:{model.name}"
        if previous.get(key) == plan.fps.fingerprints[key]:
            log.info("  model %s: unchanged, kept", model.name)
            continue
        with runner.model_memory(con, model, params.memory_limit) as ws.memory_in_use:
            try:
                model_timings[model.name] = runner.run_model(
                    con,
                    model,
                    plan.model_settings[model.name],
                    params.top_n,
                    params.threads,
                    params.seed,
                )
            except duckdb.OutOfMemoryException as exc:
                exc.kuairec_step = f"model {model.name}"  # the one-line error names it
                raise
        ws.memory_in_use = _memory_limit(params)
    return model_timings


def _drop_what_this_build_does_not_make(con: duckdb.DuckDBPyConnection, plan: _Plan) -> None:
    """Phase: the database holds what this build makes: tables of removed stages, macros of
    removed files, and results that exposure-study computed on the previous build would be
    stale. tuning_trials stays:
    it documents where the settings file came from."""
    assert plan.fps is not None
    fps = plan.fps.fingerprints
    keep = {s.name for s in plan.all_stages if s.kind in ("view", "early_view") or s.name in fps}
    keep |= set(stages.CONTRACT_TABLES) | set(profile.HOOK_TABLES)
    keep |= {"build_info", FINGERPRINT_TABLE, "tuning_trials"}  # trials explain the settings
    keep.add(lineage.TABLE)
    for name, kind in con.execute(
        "select table_name, table_type from information_schema.tables "
        "where table_catalog = 'kuairec' and table_schema = 'main'"
    ).fetchall():
        if name not in keep:
            con.execute(f"drop {'view' if kind == 'VIEW' else 'table'} if exists {name}")
    # a macro whose file is gone (the views that called it are rebuilt without it)
    macros = {s.name for s in plan.all_stages if s.kind == "macro"}
    for name, kind in con.execute(
        "select distinct function_name, function_type from duckdb_functions() "
        "where database_name = 'kuairec' and schema_name = 'main' "
        "and function_type in ('macro', 'table_macro') and not internal"
    ).fetchall():
        if name not in macros:
            con.execute(f"drop macro {'table ' if kind == 'table_macro' else ''}if exists {name}")


def _write_metadata(con: duckdb.DuckDBPyConnection, plan: _Plan, info: dict[str, str]) -> None:
    """Phase: lineage, build_info, the fingerprints and the catalogue's comments."""
    assert plan.fps is not None
    table_phase = {
        s.name
        for s in plan.all_stages
        if s.kind in stages.TABLE_PHASE and s.name in plan.fps.fingerprints
    }
    lineage.write(con, lineage.rows(plan.all_stages, table_phase, plan.models))
    con.execute("create or replace table build_info (key varchar, value varchar)")
    con.executemany("insert into build_info values (?, ?)", sorted(info.items()))
    fingerprints.write(con, plan.fps)
    apply_comments(con)


def _select_models(params: BuildParams) -> list[runner.Model]:
    """The models to run, those built on other models' outputs last."""
    available = runner.discover()
    names = (
        params.models
        if params.models is not None
        else [name for name, model in available.items() if model.runs_by_default]
    )
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UserError(f"unknown model(s) {', '.join(unknown)}; available: {', '.join(available)}")
    for name in params.settings:
        if name not in names:
            raise UserError(f"--set names model {name!r}, which this build does not run")
    chosen = [available[n] for n in names]
    return sorted(chosen, key=lambda m: m.uses_other_models)


class _CallableModule(types.ModuleType):
    """``kuairec_db.build`` is this module (``import kuairec_db.build`` puts it there) and the
    API's build function at once: calling the module calls :func:`kuairec_db.api.build`."""

    def __call__(self, *args: Any, **kwargs: Any) -> BuildResult:
        from kuairec_db.api import build as api_build

        return api_build(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
