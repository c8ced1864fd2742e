"""``build``: KuaiRec files -> one DuckDB file, written atomically.

The database is built in a temporary file beside the target (``.NAME.building-PID``) while a
lock file (``.NAME.lock``) is held, then checkpointed, detached and renamed over the target.
A failed or killed build leaves the previous database untouched; the next build removes what a
killed one left behind.
"""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import sys
import time
import tomllib
import types
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import filelock

from kuairec_db import (
    __version__,
    lineage,
    profile,
    progress,
    resources,
    runner,
    sources,
    stages,
    validate,
)
from kuairec_db.errors import UserError
from kuairec_db.params import BuildParams
from kuairec_db.schema import SOURCES

log = logging.getLogger(__name__)

STORAGE_VERSION = "v1.0.0"  # readable by DuckDB 1.0 and later (BI tools, duckdb-cli 1.5)


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
# Locking and leftovers


def _lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def _temp_paths(target: Path) -> tuple[Path, Path]:
    pid = os.getpid()
    return (
        target.with_name(f".{target.name}.building-{pid}"),
        target.with_name(f".{target.name}.work-{pid}"),
    )


class BuildLock:
    """The lock file beside the target, held with the filelock package (flock on Linux and
    macOS, a locked byte on Windows); it holds the holder's pid for the "busy" message."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = filelock.FileLock(str(path), timeout=0, thread_local=False)

    def acquire(self, target: Path) -> BuildLock:
        os.close(validate.open_beside(self.path))  # a planted link is refused, not followed
        try:
            holder = self.path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            holder = ""
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise UserError(
                f"{target} is busy: another build (or tune / exposure-study) is writing it "
                f"(pid {holder or 'unknown'}); wait for it to finish"
            ) from None
        try:  # the lock is on the file, not on this handle
            with open(self.path, "w", encoding="utf-8") as fh:
                fh.write(str(os.getpid()))
        except OSError:  # Windows locks a byte of the file: no pid there, the lock holds
            pass
        return self

    def close(self) -> None:
        self._lock.release()


def acquire_lock(target: Path) -> BuildLock:
    return BuildLock(_lock_path(target)).acquire(target)


def remove_leftovers(target: Path) -> list[Path]:
    """Temporary files of earlier builds that were killed (only call with the lock held)."""
    removed = []
    for pattern in (f".{target.name}.building-*", f".{target.name}.work-*"):
        for path in target.parent.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


# ---------------------------------------------------------------------------------------------
# Errors from DuckDB while reading the CSVs -> one line naming the file, line and column

MAX_LINE_BYTES = 2_000_000  # DuckDB's read_csv max_line_size default
MAX_ID = 2**31 - 1  # ids are read as INTEGER


def csv_error_message(exc: duckdb.Error, src: sources.DataSource, source: str) -> str:
    text = str(exc)
    display = src.display[source]
    read = src.files.get(source)
    file_match = re.search(r"^\s*file = (.+)$", text, flags=re.M)
    if file_match:
        path = file_match.group(1).strip()
        for name, read_path in src.files.items():
            if str(read_path) == path:
                display, read = src.display[name], read_path
    if read is not None and re.search(
        r"Maximum line size|unterminated quote|Parallel CSV Reader", text
    ):
        # a line longer than DuckDB's limit: worded as such wherever DuckDB noticed it
        long_line = sources.find_long_line(read, MAX_LINE_BYTES)
        if long_line is not None:
            return (
                f"{display}: line {long_line}: longer than {MAX_LINE_BYTES // 1_000_000} MB, "
                "far more than any KuaiRec row (a damaged file, or a quote that never closes)"
            )
    where = ""
    line_match = re.search(r"CSV Error on Line: (\d+)", text)
    if line_match:
        where = f" line {line_match.group(1)}:"
    convert = re.search(
        r'Error when converting column "([^"]+)"\. (Could not convert string "(.*?)" to '
        r"'([A-Z0-9_]+)')",
        text,
    )
    if convert:
        column, _, value, type_name = convert.groups()
        expected = {
            "INTEGER": "an integer",
            "BIGINT": "an integer",
            "DOUBLE": "a number",
            "TIMESTAMP": "a timestamp like 2020-07-05 00:08:23.438",
        }
        if type_name == "INTEGER" and re.fullmatch(r"[+-]?\d+", value.strip()):
            # only ids are read as INTEGER (schema.py)
            reason = (
                f" column {column}: {value.strip()[:60]} is out of range "
                f"(an id is an integer from 0 to {MAX_ID:,})"
            )
        else:
            kind = expected.get(type_name, type_name)
            reason = f' column {column}: "{value[:60]}" is not {kind}'
    else:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        reason_line = next(
            (
                ln
                for ln in lines
                if re.match(
                    r"(Expected Number of Columns|Value with unterminated"
                    r"|Invalid unicode|Maximum line size)",
                    ln,
                )
            ),
            None,
        )
        if reason_line is None:
            reason_line = re.sub(
                r"^[A-Za-z ]*Error: ", "", lines[0] if lines else type(exc).__name__
            )
            reason_line = re.sub(r"CSV Error on Line: \d+", "", reason_line).strip() or "bad CSV"
        count = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", reason_line)
        if count:
            reason_line = (
                f"{count.group(2)} fields where {count.group(1)} were expected "
                "(a truncated or malformed line)"
            )
        reason = " " + reason_line
        if "unterminated" in reason_line:
            reason += " (a quoted field never ends: is the file truncated?)"
    return f"{display}:{where}{reason}"


# ---------------------------------------------------------------------------------------------
# The build


def _csv_view_sql(source: str, path: Path, header: list[str]) -> str:
    _, types = SOURCES[source]
    columns = ", ".join(
        f"'{col.replace(chr(39), chr(39) * 2)}': '{types.get(col, 'VARCHAR')}'" for col in header
    )
    quoted = str(path).replace("'", "''")
    # ids are read as INTEGER and must not be negative: a negative one stops the build
    guards = ", ".join(
        f"case when {col} < 0 then error('column {col}: ' || {col} || ' is negative (ids are "
        f"non-negative integers)') else {col} end as {col}"
        for col in header
        if types.get(col) == "INTEGER"
    )
    columns_sql = f"* replace ({guards})" if guards else "*"
    return (
        f"create or replace temp view src_{source} as select {columns_sql} "
        f"from read_csv('{quoted}', "
        f"columns = {{{columns}}}, auto_detect = false, header = true, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = true)"
    )


def _file_facts(src: sources.DataSource) -> dict[str, str]:
    """Size of every input file and SHA-256 of the file as given (KuaiRec.zip for its members)."""
    facts = {}
    seen: dict[Path, str] = {}
    for source, original in src.originals.items():
        if original not in seen:
            digest = hashlib.sha256()
            with open(original, "rb") as fh:
                while block := fh.read(1 << 22):
                    digest.update(block)
            seen[original] = digest.hexdigest()
        name = SOURCES[source][0]
        facts[f"file.{name}.bytes"] = str(src.files[source].stat().st_size)
        facts[f"file.{name}.sha256"] = seen[original]
    return facts


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


def load_settings_file(path: Path | None) -> tuple[Path | None, dict[str, dict[str, Any]]]:
    """The settings file (settings.toml of the models folder unless --config says otherwise),
    if present."""
    explicit = path is not None
    path = path or resources.settings_file()
    if not path.is_file():
        if explicit:
            raise UserError(f"{path}: no such settings file")
        return None, {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a valid TOML settings file ({exc})") from None
    bad = [k for k, v in data.items() if not isinstance(v, dict)]
    if bad:
        raise UserError(f"{path}: expected one [model] table per model, found {', '.join(bad)}")
    return path, data


def _model_settings(
    model: runner.Model, from_file: dict[str, Any], overrides: dict[str, Any], file: Path | None
) -> dict[str, Any]:
    """DEFAULTS of the model, then the settings file, then --set; each value checked against
    the type and range the model declares (runner.model_setting_types)."""
    settings = runner.model_defaults(model)
    types = runner.model_setting_types(model)
    known = ", ".join(settings) or "none"
    origins = {key: f"{model.path.name} DEFAULTS" for key in settings}
    for origin, values in ((str(file), from_file), ("--set", overrides)):
        unknown = [k for k in values if k not in settings]
        if unknown:
            raise UserError(
                f"{origin}: model {model.name} has no setting {', '.join(unknown)} "
                f"(it has: {known})"
            )
        settings.update(values)
        origins.update({key: origin for key in values})
    return {
        key: types[key].convert(value, f"{origins[key]}: {model.name}.{key}")
        for key, value in settings.items()
    }


def apply_comments(con: duckdb.DuckDBPyConnection, catalog_file: Path = stages.CATALOG_FILE):
    """COMMENT ON every relation and column described in sql/catalog.toml."""
    catalog = tomllib.loads(catalog_file.read_text(encoding="utf-8"))
    kinds = dict(
        con.execute(
            "select table_name, case when table_type = 'VIEW' then 'view' else 'table' end "
            "from information_schema.tables where table_catalog = current_database()"
        ).fetchall()
    )

    def quote(text: str) -> str:
        return "'" + " ".join(text.split()).replace("'", "''") + "'"

    columns = {
        (t, c)
        for t, c in con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_catalog = current_database()"
        ).fetchall()
    }
    for name, entry in catalog.items():
        if name not in kinds:
            continue
        con.execute(f"comment on {kinds[name]} {name} is {quote(entry['description'])}")
        for column, text in entry.get("columns", {}).items():
            if (name, column) in columns:
                con.execute(f"comment on column {name}.{column} is {quote(text)}")


def _run_stage(
    con, stage: stages.Stage, src: sources.DataSource | None, source: str | None = None
) -> float:
    """Create the stage's table or view; returns seconds taken. source: the input file the stage
    reads (itself or through an ephemeral staging view), to word CSV errors."""
    body = stages.select_body(stage.sql)
    started = time.perf_counter()
    create = {
        "table": "create or replace table",
        "ephemeral": "create or replace temp view",
    }.get(stage.kind, "create or replace view")
    try:
        con.execute(f"{create} {stage.name} as {body}")
    except (duckdb.OutOfMemoryException, duckdb.IOException, duckdb.InterruptException):
        raise  # resources or Ctrl-C, not the file's content: build() and the CLI word these
    except duckdb.Error as exc:
        if src is not None and source in SOURCES and not disk_full(exc):
            raise UserError(csv_error_message(exc, src, source)) from None
        raise
    seconds = time.perf_counter() - started
    if stage.kind == "table":
        n = con.execute(f"select count(*) from {stage.name}").fetchone()[0]
        if n == 0 and src is not None and source in SOURCES:
            # check_header saw a data row: zero rows means the reader misread the file.
            raise UserError(f"{src.display[source]}: no rows could be read")
        log.info("  %-28s table %12s rows %6.1f s", stage.name, f"{n:,}", seconds)
    return seconds


def _reads_files(stage: stages.Stage, by_name: dict[str, stages.Stage]) -> bool:
    """Whether building the stage parses input files (itself staging, or reading staging
    through relations that are not stored)."""
    if stage.name.startswith("stg_"):
        return True
    return any(
        _reads_files(by_name[d], by_name)
        for d in stages.dependencies(stage, set(by_name))
        if by_name[d].kind in ("ephemeral", "early_view")
    )


def source_read(stage: stages.Stage, by_name: dict[str, stages.Stage]) -> str | None:
    """The input file (SOURCES key) a stage parses: its own when it is staging, or the one of
    the single ephemeral staging view it reads."""
    if stage.name.startswith("stg_"):
        return stage.name[4:]
    read = [
        d[4:]
        for d in stages.dependencies(stage, set(by_name))
        if d.startswith("stg_") and by_name[d].kind == "ephemeral"
    ]
    return read[0] if len(read) == 1 else None


def run_audits(con, audit_stages: list[stages.Stage]) -> None:
    for stage in audit_stages:
        rows = con.execute(stages.select_body(stage.sql)).fetchall()
        if rows:
            raise RuntimeError(f"audit {stage.name} failed: {len(rows)} row(s), first {rows[0]}")
    log.info("  %d audits passed", len(audit_stages))


# ---------------------------------------------------------------------------------------------
# Fingerprints: what each table and model was computed from, so a rebuild redoes only what
# changed (and nothing when nothing did).

FINGERPRINT_TABLE = "build_fingerprints"
# What ModelContext reads for every Python model, whatever the model file names.
CONTEXT_DEPS = frozenset(
    {"int_train_interactions", "int_user_index", "int_item_index", "int_ground_truth"}
)
_PACKAGE_DIR = Path(__file__).resolve().parent


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def _code_digest(paths: list[Path]) -> str:
    return _digest([p.name + "=" + p.read_text(encoding="utf-8") for p in sorted(paths)])


def _variables_used(text: str) -> list[str]:
    return sorted(set(re.findall(r"getvariable\(\s*'(\w+)'", text)))


def model_dependencies(model: runner.Model, known: set[str]) -> set[str]:
    """The project relations a model reads: those its file names, plus ModelContext's."""
    text = model.source_text
    deps = set(re.findall(r"[a-z_][a-z0-9_]*", stages.strip_comments(text).lower())) & known
    return deps | CONTEXT_DEPS if not model.is_sql else deps


def _closure(roots: list[str], by_name: dict[str, stages.Stage]) -> set[str]:
    known = set(by_name)
    seen: set[str] = set()
    while roots:
        name = roots.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        roots += sorted(stages.dependencies(by_name[name], known))
    return seen


def needed_tables(all_stages: list[stages.Stage], models: list[runner.Model]) -> set[str]:
    """Every table stage except those only models outside --models would read (say the
    sequence model's transitions when sequence does not run). Tables nothing reads are
    products in their own right (features for BI) and are built."""
    by_name = {s.name: s for s in all_stages}
    known = set(by_name)
    chosen = {m.name for m in models}
    used = [s.name for s in all_stages if s.kind not in stages.TABLE_PHASE]
    for model in models:
        used += sorted(model_dependencies(model, known))
    unused = []
    for model in runner.discover().values():
        if model.name not in chosen:
            unused += sorted(model_dependencies(model, known))
    only_for_others = _closure(unused, by_name) - _closure(used, by_name)
    return {
        s.name for s in all_stages if s.kind in stages.TABLE_PHASE and s.name not in only_for_others
    }


def plan_fingerprints(
    all_stages: list[stages.Stage],
    models: list[runner.Model],
    model_settings: dict[str, dict[str, Any]],
    params: BuildParams,
    input_fingerprints: dict[str, str],
) -> dict[str, str]:
    """A fingerprint per stage built before the models and per model (key ``model:NAME``).

    A stage's fingerprint covers its SQL, the build variables it reads, the fingerprints of the
    relations it names and, for staging, its input file and the code that reads files.
    """
    variables = params.sql_variables()
    known = {s.name for s in all_stages if s.kind in stages.TABLE_PHASE}
    reader_code = _code_digest([_PACKAGE_DIR / n for n in ("build.py", "sources.py", "schema.py")])
    model_code = _code_digest([_PACKAGE_DIR / "runner.py", *stages.RANKING_DIR.glob("*.sql")])
    needed = needed_tables(all_stages, models)
    fps: dict[str, str] = {}
    for stage in all_stages:
        if stage.name not in needed:
            continue
        parts = [stage.kind, stage.sql, duckdb.__version__]
        parts += [f"{d}={fps[d]}" for d in sorted(stages.dependencies(stage, known))]
        parts += [f"{v}={variables.get(v)!r}" for v in _variables_used(stage.sql)]
        if stage.name.startswith("stg_"):
            parts += [input_fingerprints.get(stage.name[4:], "none"), reader_code]
        if stage.name == profile.SAMPLE_TABLE:  # its Python fits are redone with it
            parts.append(_code_digest([_PACKAGE_DIR / "profile.py"]))
        fps[stage.name] = _digest(parts)
    for model in models:
        text = model.source_text
        deps = model_dependencies(model, known)
        parts = [text, json.dumps(model_settings[model.name], sort_keys=True), model_code]
        parts += [f"top_n={params.top_n}", f"seed={params.seed}"]
        parts += [f"{d}={fps[d]}" for d in sorted(deps)]
        if model.uses_other_models:
            parts += [f"{k}={v}" for k, v in sorted(fps.items()) if k.startswith("model:")]
        fps[f"model:{model.name}"] = _digest(parts)
    return fps


def previous_fingerprints(target: Path) -> dict[str, str]:
    """The fingerprints stored in an existing database ({} when there is none to reuse)."""
    if not target.is_file():
        return {}
    try:
        con = duckdb.connect(str(target), read_only=True)
    except duckdb.Error:
        return {}
    try:
        return dict(con.execute(f"select name, fingerprint from {FINGERPRINT_TABLE}").fetchall())
    except duckdb.Error:
        return {}
    finally:
        con.close()


def _locate_inputs(params: BuildParams) -> tuple[str, str, dict[str, str]]:
    """(data kind, location, fingerprint per source) without reading or extracting data."""
    path = None if params.demo else (params.data or sources.find_default(Path.cwd()))
    if path is None:
        from kuairec_db import demo

        code = _code_digest([Path(demo.__file__)])
        fp = f"demo:{params.demo_scale}:{params.demo_seed}:{code}"
        location = f"synthetic demo (scale {params.demo_scale}, seed {params.demo_seed})"
        return "synthetic_demo", location, {source: fp for source in SOURCES}
    kind, found = sources.locate(Path(path).expanduser())
    return "kuairec_files", str(found), sources.fingerprints(kind, found)


# ---------------------------------------------------------------------------------------------
# The build


def build(params: BuildParams) -> BuildResult:
    params.validate()
    target = params.db.expanduser().resolve()
    if not target.parent.is_dir():
        raise UserError(f"{target.parent}: no such folder for the database")
    validate.check_build_target(target, str(params.db))
    started_at = datetime.now(timezone.utc)
    started = time.perf_counter()
    models = _select_models(params)
    settings_file, file_settings = load_settings_file(params.config)
    available = runner.discover()
    strays = [name for name in file_settings if name not in available]
    if strays:
        raise UserError(
            f"{settings_file}: section(s) [{'], ['.join(strays)}] name no model "
            f"(models: {', '.join(available)})"
        )
    model_settings = {
        m.name: _model_settings(
            m, file_settings.get(m.name, {}), params.settings.get(m.name, {}), settings_file
        )
        for m in models
    }

    lock = acquire_lock(target)
    con = None
    memory_in_use = _memory_limit(params)
    temp_db, work = _temp_paths(target)
    try:
        for path in remove_leftovers(target):
            log.info("removed %s, left by an interrupted build", path.name)
        data_kind, location, input_fps = _locate_inputs(params)
        all_stages = stages.ordered(stages.discover())
        fps = plan_fingerprints(all_stages, models, model_settings, params, input_fps)
        previous = {} if params.force else previous_fingerprints(target)
        if previous and previous == fps:
            return BuildResult(
                target, data_kind, location, time.perf_counter() - started, [], up_to_date=True
            )
        if data_kind == "synthetic_demo":
            _announce_demo(params)
        work.mkdir()
        if previous:
            log.info("updating %s: only what changed is recomputed", target.name)
            shutil.copyfile(target, temp_db)
        con = duckdb.connect(config=_duckdb_config(params, work))
        con.execute("set enable_progress_bar = false")  # the build logs one line a step
        con.execute(
            f"attach '{_sql_str(temp_db)}' as kuairec (storage_version '{STORAGE_VERSION}')"
        )
        con.execute("use kuairec")
        for name, value in params.sql_variables().items():
            con.execute(f"set variable {name} = ?", [value])
        existing = {
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = 'kuairec'"
            ).fetchall()
        }
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
                con.execute(_csv_view_sql(source, src.files[source], header))
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
            location,
            params.threads,
            _memory_limit(params),
        )
        for stage in table_stages:
            if stage.name in stale or stage.kind == "early_view":
                timings[stage.name] = _run_stage(con, stage, src, source_read(stage, by_name))
            elif stage.kind == "ephemeral" and src is not None:
                _run_stage(con, stage, src, source_read(stage, by_name))
        if profile.SAMPLE_TABLE in stale or not existing.issuperset(profile.HOOK_TABLES):
            timings["profile_fits"] = profile.write_fits(con)  # data_profile's two Python fits
        if hashing is not None:
            files_info.update(hashing.result())
        kept = len([s for s in table_stages if s.kind == "table"]) - len(stale)
        if kept:
            log.info("  %d tables unchanged since the last build", kept)

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
            if previous.get(key) == fps[key]:
                log.info("  model %s: unchanged, kept", model.name)
                continue
            with runner.model_memory(con, model, params.memory_limit) as memory_in_use:
                model_timings[model.name] = runner.run_model(
                    con,
                    model,
                    model_settings[model.name],
                    params.top_n,
                    params.threads,
                    params.seed,
                )
            memory_in_use = _memory_limit(params)
        # The database holds what this build makes: tables of removed stages and results that
        # exposure-study computed on the previous build would be stale. tuning_trials stays:
        # it documents where the settings file came from.
        keep = {s.name for s in all_stages if s.kind in ("view", "early_view") or s.name in fps}
        keep |= set(stages.CONTRACT_TABLES) | set(profile.HOOK_TABLES)
        keep |= {"build_info", FINGERPRINT_TABLE, "tuning_trials"}  # trials explain the settings
        keep.add(lineage.TABLE)
        for name, kind in con.execute(
            "select table_name, table_type from information_schema.tables "
            "where table_catalog = 'kuairec' and table_schema = 'main'"
        ).fetchall():
            if name not in keep:
                con.execute(f"drop {'view' if kind == 'VIEW' else 'table'} if exists {name}")

        log.info("evaluation views")
        for stage in (s for s in all_stages if s.kind == "view"):
            _run_stage(con, stage, None)
        run_audits(con, [s for s in all_stages if s.kind == "audit"])
        warnings = _data_warnings(con)
        rebuilt = sorted(stale) + [f"model:{name}" for name in model_timings]
        kept_names = sorted({s.name for s in table_stages if s.kind == "table"} - stale) + [
            f"model:{m.name}" for m in models if m.name not in model_timings
        ]
        previous_info = (
            dict(con.execute("select key, value from build_info").fetchall())
            if previous and "build_info" in existing
            else {}
        )
        info = _build_info(
            params,
            settings_file,
            data_kind,
            location,
            model_settings,
            model_timings,
            timings,
            files_info,
            started_at,
            time.perf_counter() - started,
        )
        if previous_info:
            info = _kept_facts(info, previous_info, kept_names, rebuilt)
        lineage.write(con, lineage.rows(all_stages, {s.name for s in table_stages}, models))
        con.execute("create or replace table build_info (key varchar, value varchar)")
        con.executemany("insert into build_info values (?, ?)", sorted(info.items()))
        con.execute(
            f"create or replace table {FINGERPRINT_TABLE} (name varchar, fingerprint varchar)"
        )
        con.executemany(f"insert into {FINGERPRINT_TABLE} values (?, ?)", sorted(fps.items()))
        apply_comments(con)
        publish(con, temp_db, target)
        con = None
        return BuildResult(
            target,
            data_kind,
            location,
            time.perf_counter() - started,
            warnings,
            rebuilt=rebuilt,
            kept=kept_names,
        )
    except duckdb.OutOfMemoryException as exc:
        raise runner.out_of_memory(
            exc, f"building {target.name}", memory_in_use, "the previous database is intact"
        ) from None
    except (duckdb.Error, OSError) as exc:
        if not disk_full(exc):
            raise
        raise UserError(
            f"disk full while building {target.name} in {target.parent} ({_first_line(exc)}); "
            "free some space; the previous database is intact"
        ) from None
    finally:
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass
        for leftover in (temp_db, temp_db.with_name(temp_db.name + ".wal")):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
        lock.close()


def disk_full(exc: BaseException) -> bool:
    """Whether EXC (from DuckDB, of whatever class, or the OS) says the disk is full."""
    return "No space left" in str(exc) or getattr(exc, "errno", None) == errno.ENOSPC


def _kept_facts(
    info: dict[str, str], previous: dict[str, str], kept: list[str], rebuilt: list[str]
) -> dict[str, str]:
    """build_info of an update: the facts of what it kept come from the previous build_info
    (build_seconds of the last full build, the kept models' and tables' timings), and the
    update itself is recorded apart (update_seconds, updated_at, update_rebuilt)."""
    out = dict(info)
    update_seconds = out.pop("build_seconds")
    out["build_seconds"] = previous.get("build_seconds", update_seconds)
    out["started_at"] = previous.get("started_at", out["started_at"])
    out["update_seconds"] = update_seconds
    out["updated_at"] = out.pop("finished_at")
    out["finished_at"] = previous.get("finished_at", out["updated_at"])
    out["update_rebuilt"] = ",".join(rebuilt)
    for name in kept:
        prefix = f"model.{name[6:]}." if name.startswith("model:") else f"stage.{name}."
        for key, value in previous.items():
            if key.startswith(prefix) and key not in out:
                out[key] = value
    return out


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def _duckdb_config(params: BuildParams, work: Path) -> dict[str, str]:
    config = {
        "threads": str(params.threads),
        "temp_directory": str(work / "spill"),
    }
    config["memory_limit"] = _memory_limit(params)
    return config


def _memory_limit(params: BuildParams) -> str:
    return params.memory_limit or runner.PIPELINE_MEMORY_LIMIT


def publish(con: duckdb.DuckDBPyConnection, temp_db: Path, target: Path) -> None:
    """Checkpoint and detach the database attached as ``kuairec`` (temp_db), close con, and
    rename temp_db over target: readers of the old file keep it, new readers get this one."""
    con.execute("checkpoint")
    con.execute("use memory")
    con.execute("detach kuairec")
    con.close()
    os.replace(temp_db, target)
    _fsync_dir(target.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _announce_demo(params: BuildParams) -> None:
    log.warning(
        "NO KUAIREC DATA FOUND: building on the SYNTHETIC DEMO dataset (scale %s, seed %s).\n"
        "  Its numbers say nothing about KuaiRec. For the real data run:\n    %s",
        params.demo_scale,
        params.demo_seed,
        sources.GET_REAL_DATA,
    )


def _resolve_data(params: BuildParams, work: Path) -> sources.DataSource:
    path = None if params.demo else (params.data or sources.find_default(Path.cwd()))
    if path is not None:
        return sources.resolve_path(Path(path).expanduser(), work)
    from kuairec_db import demo

    folder = work / "demo"
    with progress.steps(len(SOURCES), "generating the demo", "file") as step:
        demo.generate(folder, scale=params.demo_scale, seed=params.demo_seed, progress=step)
    src = sources.resolve_path(folder, work)
    src.kind = "synthetic_demo"
    src.location = f"synthetic demo (scale {params.demo_scale}, seed {params.demo_seed})"
    for source in src.display:
        src.display[source] = f"demo {SOURCES[source][0]}"
    return src


def _data_warnings(con) -> list[str]:
    out = []
    leaks = con.execute(
        "select n_rows from data_quality where step = 'leak_pairs' and source = 'big_matrix.csv'"
    ).fetchone()[0]
    if leaks:
        out.append(
            f"{leaks:,} (user, video) pairs are in both matrices: removed from training "
            "(see int_leak_pairs and data_quality)"
        )
    for message in out:
        log.warning("warning: %s", message)
    return out


def _build_info(
    params: BuildParams,
    settings_file: Path | None,
    data_kind: str,
    location: str,
    model_settings: dict[str, dict[str, Any]],
    model_timings: dict[str, dict[str, float]],
    stage_timings: dict[str, float],
    files_info: dict[str, str],
    started_at: datetime,
    seconds: float,
) -> dict[str, str]:
    import implicit
    import numpy

    info: dict[str, str] = {
        "kuairec_db_version": __version__,
        "duckdb_version": duckdb.__version__,
        "implicit_version": implicit.__version__,
        "numpy_version": numpy.__version__,
        "python_version": platform.python_version(),
        "storage_version": STORAGE_VERSION,
        "data_kind": data_kind,
        "data_location": location,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": f"{seconds:.1f}",
        "models": ",".join(model_settings),
    }
    info.update(params.info_rows())
    info["param.memory_limit"] = _memory_limit(params)
    info["param.db"] = str(params.db)
    info["param.data"] = str(params.data) if params.data else ""
    info["param.config"] = str(settings_file) if settings_file else ""
    for name, settings in model_settings.items():
        info[f"model.{name}.settings"] = json.dumps(settings, sort_keys=True)
        for key, value in model_timings.get(name, {}).items():
            info[f"model.{name}.{key}"] = f"{value:.2f}"
    for name, value in stage_timings.items():
        info[f"stage.{name}.seconds"] = f"{value:.2f}"
    info.update(files_info)
    return info


class _CallableModule(types.ModuleType):
    """``kuairec_db.build`` is this module (``import kuairec_db.build`` puts it there) and the
    API's build function at once: calling the module calls :func:`kuairec_db.api.build`."""

    def __call__(self, *args: Any, **kwargs: Any) -> BuildResult:
        from kuairec_db.api import build as api_build

        return api_build(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
