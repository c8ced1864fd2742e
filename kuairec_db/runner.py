"""The runner: finds the models (``discover``), loads them, reads their declarations (settings,
memory, whether they run by default or after other models) and runs one into the contract
tables (``run_model``). What a model author writes against is in ``kuairec_db/modelapi.py``.

A file in ``models/`` whose name starts with ``_`` is not a model: ``discover`` skips it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb

from kuairec_db import resources
from kuairec_db.errors import UserError
from kuairec_db.modelapi import ModelContext, insert_ranked
from kuairec_db.params import PIPELINE_MEMORY_LIMIT
from kuairec_db.stages import CONTRACT_TABLES, check_directives, select_body, strip_comments
from kuairec_db.validate import Setting

log = logging.getLogger(__name__)

OTHER_MODELS_OUTPUTS = (
    "recommendations",
    "eval_rankings",
    "model_user_factors",
    "model_item_factors",
    "model_video_scores",
    "model_video_neighbours",
    "model_candidate_scores",
)


@dataclass(frozen=True)
class Model:
    name: str
    path: Path

    @property
    def is_sql(self) -> bool:
        return self.path.suffix == ".sql"

    @property
    def uses_other_models(self) -> bool:
        """True for a model built on other models' outputs (a hybrid): it runs after them.

        A SQL model says so by naming recommendations, eval_rankings or the factor tables; a
        Python model by ``USES_OTHER_MODELS = True``.
        """
        if self.is_sql:
            text = strip_comments(self.path.read_text(encoding="utf-8")).lower()
            return any(re.search(rf"\b{name}\b", text) for name in OTHER_MODELS_OUTPUTS)
        return bool(getattr(load_module(self), "USES_OTHER_MODELS", False))

    @property
    def source_text(self) -> str:
        """What the model computes from: its file and, for a Python model, the SQL files it
        runs (``SQL_FILES``), so that editing one of them reruns the model."""
        text = self.path.read_text(encoding="utf-8")
        if self.is_sql:
            return text
        extra = getattr(load_module(self), "SQL_FILES", ())
        return "\n".join([text, *(Path(f).read_text(encoding="utf-8") for f in extra)])

    @property
    def runs_by_default(self) -> bool:
        """Whether a build without --models runs it. A model that does not beat random on the
        calibrated demo is opt-in: a SQL model says ``-- runs_by_default: false`` on a line of
        its own, a Python model ``RUNS_BY_DEFAULT = False``; ``--models NAME`` still runs it."""
        if self.is_sql:
            text = self.path.read_text(encoding="utf-8")
            check_directives(self.path, text)
            found = re.search(r"^-- runs_by_default: (\S+)[ \t]*$", text, re.M)
            if not found:
                return True
            if found.group(1) not in ("true", "false"):
                raise UserError(f"{self.path}: runs_by_default must be true or false")
            return found.group(1) == "true"
        return bool(getattr(load_module(self), "RUNS_BY_DEFAULT", True))

    @property
    def scores_every_candidate(self) -> bool:
        """False for a model that only re-ranks other models' lists (a Python model says
        ``SCORES_EVERY_CANDIDATE = False``): exposure-study leaves it out without refitting it,
        since its ranking of a sparse sample is undefined. A SQL model is checked by measuring."""
        if self.is_sql:
            return True
        return bool(getattr(load_module(self), "SCORES_EVERY_CANDIDATE", True))

    @property
    def memory_limit(self) -> str | None:
        """The DuckDB memory the model needs beyond the build's default, if it says so: a SQL
        model by a line ``-- memory_limit: 3GB``, a Python model by ``MEMORY_LIMIT = "3GB"``."""
        if self.is_sql:
            text = self.path.read_text(encoding="utf-8")
            check_directives(self.path, text)
            found = re.search(r"^-- memory_limit: (\S+)[ \t]*$", text, re.M)
            value = found.group(1) if found else None
        else:
            value = getattr(load_module(self), "MEMORY_LIMIT", None)
        if value is not None and not re.fullmatch(
            r"\d+(\.\d+)?(KB|MB|GB|TB|KiB|MiB|GiB|TiB)", value
        ):
            raise UserError(f"{self.path}: memory_limit {value!r} is not a size like 3GB")
        return value


def discover(models_dir: Path | None = None) -> dict[str, Model]:
    """The models of MODELS_DIR, or by default the shipped ones plus the user's folder
    (resources.model_dirs(): a user's file replaces a shipped model of the same name)."""
    found = {}
    for folder in [models_dir] if models_dir is not None else resources.model_dirs():
        for path in sorted(folder.glob("*")):
            if path.suffix in (".sql", ".py") and not path.name.startswith("_"):
                found[path.stem] = Model(path.stem, path)
    return dict(sorted(found.items()))


_LOADED: dict[Path, tuple[tuple[int, int], ModuleType]] = {}


def load_module(model: Model) -> ModuleType:
    """The model's module, executed once per version of its file (asked for several times a
    build: its settings, whether it uses other models, its memory, its run)."""
    stat = model.path.stat()
    version = (stat.st_mtime_ns, stat.st_size)
    cached = _LOADED.get(model.path)
    if cached and cached[0] == version:
        return cached[1]
    spec = importlib.util.spec_from_file_location(f"kuairec_db_models.{model.name}", model.path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that dataclasses and pickling inside models work
    spec.loader.exec_module(module)
    if not hasattr(module, "run"):
        raise UserError(f"{model.path}: a Python model must define run(ctx)")
    _LOADED[model.path] = (version, module)
    return module


@contextlib.contextmanager
def model_memory(con: duckdb.DuckDBPyConnection, model: Model, chosen: str | None) -> Iterator[str]:
    """DuckDB's memory limit while MODEL runs: CHOSEN (--memory-limit) when given, else the
    model's own when it asks for one, else PIPELINE_MEMORY_LIMIT. Yields the limit in force,
    worded for an out-of-memory message. Before a Python model, DuckDB's cached blocks are
    released first (release_cached_blocks)."""
    if not model.is_sql:
        release_cached_blocks(con, chosen or PIPELINE_MEMORY_LIMIT)
    wanted = None if chosen else model.memory_limit
    if not wanted:
        yield chosen or PIPELINE_MEMORY_LIMIT
        return
    con.execute(f"set memory_limit = '{wanted}'")
    log.info("  model %s: DuckDB memory limit %s (its own)", model.name, wanted)
    try:
        yield f"{wanted}, asked for by model {model.name}"
    finally:
        con.execute(f"set memory_limit = '{PIPELINE_MEMORY_LIMIT}'")


# What DuckDB keeps while a Python model runs: its cache of table blocks is read back on demand.
CACHE_WHILE_PYTHON_RUNS = "64MB"


def release_cached_blocks(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Before a Python model allocates its arrays: DuckDB holds up to its memory limit of
    cached blocks after the table stages (about 0.9 GB at full scale; temp tables move to its
    temp directory), and lowering the limit
    evicts them, so the process's peak is not the two added up. Then LIMIT again."""
    con.execute(f"set memory_limit = '{CACHE_WHILE_PYTHON_RUNS}'")
    con.execute(f"set memory_limit = '{limit}'")


def out_of_memory(exc: duckdb.OutOfMemoryException, doing: str, limit: str, kept: str):
    """The one-line error for DuckDB running out of memory while DOING, under LIMIT."""
    first = (str(exc).strip().splitlines() or ["out of memory"])[0][:200]
    return UserError(
        f"out of memory while {doing} ({first}); raise --memory-limit (now {limit}) or use "
        f"fewer --threads; {kept}"
    )


def model_defaults(model: Model) -> dict[str, Any]:
    if model.is_sql:
        return {}
    return dict(getattr(load_module(model), "DEFAULTS", {}))


def model_setting_types(model: Model) -> dict[str, Setting]:
    """The type and range of each setting: the model's SETTING_TYPES (declared next to its
    DEFAULTS); a setting it does not declare takes the type of its default, any value."""
    defaults = model_defaults(model)
    declared = {} if model.is_sql else dict(getattr(load_module(model), "SETTING_TYPES", {}))
    stray = [key for key in declared if key not in defaults]
    if stray:
        raise UserError(f"{model.path}: SETTING_TYPES names {', '.join(stray)}, not in DEFAULTS")
    return {key: declared.get(key) or Setting(type(value)) for key, value in defaults.items()}


def clear_model(con: duckdb.DuckDBPyConnection, name: str) -> None:
    for table in CONTRACT_TABLES:
        con.execute(f"delete from {table} where model = ?", [name])


def run_model(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    settings: dict[str, Any],
    top_n: int,
    threads: int,
    seed: int,
    recommendations: bool = True,
) -> dict[str, float]:
    """Run one model into the contract tables; returns timings in seconds.

    recommendations=False (tuning) fills eval_rankings only.
    """
    con.execute("set variable model_name = ?", [model.name])
    clear_model(con, model.name)
    started = time.perf_counter()
    if model.is_sql:
        body = select_body(model.path.read_text(encoding="utf-8"))
        con.execute(f"create or replace temp table model_scores_raw as {body}")
        columns = [r[0] for r in con.execute("describe model_scores_raw").fetchall()]
        if {"user_id", "video_id", "score"} <= set(columns):
            con.execute(
                "create or replace temp table model_user_scores as "
                "select user_id, video_id, score from model_scores_raw"
            )
            n_recs = recommendations and insert_ranked(
                con, "recommendations", "recommend_from_user_scores"
            )
            n_eval = insert_ranked(con, "eval_rankings", "evaluate_from_user_scores")
        elif {"video_id", "score"} <= set(columns):
            con.execute(
                "create or replace temp table model_item_scores as "
                "select video_id, score from model_scores_raw"
            )
            n_recs = recommendations and insert_ranked(
                con, "recommendations", "recommend_from_item_scores"
            )
            n_eval = insert_ranked(con, "eval_rankings", "evaluate_from_item_scores")
        else:
            raise UserError(
                f"{model.path}: a SQL model must select video_id, score "
                f"(or user_id, video_id, score); it gives {', '.join(columns)}"
            )
        timings = {"seconds": time.perf_counter() - started}
    else:
        module = load_module(model)
        ctx = ModelContext(
            con, model.name, settings, top_n, threads, seed, wants_recommendations=recommendations
        )
        module.run(ctx)
        timings = {"seconds": time.perf_counter() - started, **ctx.timings}
        timings |= {f"chosen.{key}": value for key, value in ctx.chosen.items()}
        n_recs, n_eval = con.execute(
            "select (select count(*) from recommendations where model = $1),"
            " (select count(*) from eval_rankings where model = $1)",
            [model.name],
        ).fetchall()[0]
    for temp in ("model_scores_raw", "model_item_scores", "model_user_scores"):
        con.execute(f"drop table if exists temp.{temp}")
    log.info(
        "  model %s: %s recommendations, %s eval rankings in %.1f s",
        model.name,
        f"{n_recs:,}",
        f"{n_eval:,}",
        timings["seconds"],
    )
    return timings
