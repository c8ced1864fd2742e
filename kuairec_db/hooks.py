"""Running the recommenders of models/: SQL models through the ranking templates, Python
models through a small context object that reads their inputs from DuckDB and writes back.

A SQL model (``models/NAME.sql``) is one SELECT giving either ``video_id, score`` (one score per
video for every user) or ``user_id, video_id, score``. In the second form every row feeds both
rankings, so the rows must hold, for every big-matrix user, the top-N unseen videos over the
whole catalogue (and every video tied with the N-th) and, for every small-matrix user, the
scores of its candidates (int_ground_truth); pairs left out are never ranked.

A Python model (``models/NAME.py``) defines ``DEFAULTS`` (its settings), ``SETTING_TYPES``
(the type and range of each, a ``validate.Setting``; checked before the build starts) and
``run(ctx: ModelContext) -> None``; it writes scores with ``ctx.write_recommendation_scores``
and ``ctx.write_eval_scores`` and, if it has them, factors with ``ctx.write_factors``. Both end
in ``recommendations`` and ``eval_rankings``.

A model that needs more DuckDB memory than the build's default says so: a SQL model in a line
``-- memory_limit: 3GB``, a Python model by ``MEMORY_LIMIT = "3GB"``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import scipy.sparse as sp

from kuairec_db import resources
from kuairec_db.errors import UserError
from kuairec_db.stages import (
    CONTRACT_TABLES,
    check_directives,
    ranking_sql,
    select_body,
    strip_comments,
)
from kuairec_db.validate import Setting

log = logging.getLogger(__name__)


# DuckDB's memory for build, tune and exposure-study unless --memory-limit says otherwise: the
# SQL stages and the lean models fit in it (spilling to the work folder); a model that needs
# more declares it (Model.memory_limit) and gets it while it runs (model_memory).
PIPELINE_MEMORY_LIMIT = "1GB"

OTHER_MODELS_OUTPUTS = (
    "recommendations",
    "eval_rankings",
    "model_user_factors",
    "model_item_factors",
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
    worded for an out-of-memory message."""
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


def _insert_ranked(con: duckdb.DuckDBPyConnection, table: str, template: str) -> int:
    con.execute(f"insert into {table} {ranking_sql(template)}")
    return con.execute(
        f"select count(*) from {table} where model = getvariable('model_name')"
    ).fetchall()[0][0]


def clear_model(con: duckdb.DuckDBPyConnection, name: str) -> None:
    for table in CONTRACT_TABLES:
        con.execute(f"delete from {table} where model = ?", [name])


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
    # False while tuning: only eval_rankings matter, so a model may skip its recommendations.
    wants_recommendations: bool = True

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
                """
                create or replace temp table model_user_scores as
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
        return _insert_ranked(self.con, "recommendations", "recommend_from_user_scores")

    def write_eval_scores(self, user_index, item_index, score) -> int:
        """Scores (by index) of at least the top-N candidates per small-matrix user."""
        self._write_scores(user_index, item_index, score)
        return _insert_ranked(self.con, "eval_rankings", "evaluate_from_user_scores")

    def write_factors(self, user_factors: np.ndarray, item_factors: np.ndarray) -> None:
        """Row i of user_factors belongs to user_index i; likewise for items."""
        for table, key, index_table, index_col, factors in (
            ("model_user_factors", "user_id", "int_user_index", "user_index", user_factors),
            ("model_item_factors", "video_id", "int_item_index", "item_index", item_factors),
        ):
            factors = np.ascontiguousarray(factors, dtype=np.float32)
            frame = pd.DataFrame(
                {"idx": np.arange(len(factors), dtype=np.int32), "factors": list(factors)}
            )
            self.con.register("model_factor_rows", frame)
            try:
                self.con.execute(
                    f"""
                    insert into {table}
                    select getvariable('model_name'), m.{key}, f.factors::float[]
                    from model_factor_rows as f
                    inner join {index_table} as m on f.idx = m.{index_col}
                    order by m.{key}
                    """
                )
            finally:
                self.con.unregister("model_factor_rows")


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
            n_recs = recommendations and _insert_ranked(
                con, "recommendations", "recommend_from_user_scores"
            )
            n_eval = _insert_ranked(con, "eval_rankings", "evaluate_from_user_scores")
        elif {"video_id", "score"} <= set(columns):
            con.execute(
                "create or replace temp table model_item_scores as "
                "select video_id, score from model_scores_raw"
            )
            n_recs = recommendations and _insert_ranked(
                con, "recommendations", "recommend_from_item_scores"
            )
            n_eval = _insert_ranked(con, "eval_rankings", "evaluate_from_item_scores")
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
