"""Running the SQL stages of a build: the input files found or the demo generated, each stage
created as its table or view (DuckDB's CSV errors worded as one line), and the audits."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import duckdb

from kuairec_db import progress, sources, stages
from kuairec_db.csvread import csv_error_message
from kuairec_db.errors import UserError
from kuairec_db.schema import SOURCES
from kuairec_db.workspace import disk_full

log = logging.getLogger("kuairec_db.build")  # the build's log, whichever module writes it
BuildParams = Any  # kuairec_db.build.BuildParams (which imports this module)


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


def _run_stage(
    con, stage: stages.Stage, src: sources.DataSource | None, source: str | None = None
) -> float:
    """Create the stage's table or view; returns seconds taken. source: the input file the stage
    reads (itself or through an ephemeral staging view), to word CSV errors."""
    body = stages.select_body(stage.sql)
    started = time.perf_counter()
    if stage.kind == "macro":  # the file is the whole create macro statement
        con.execute(body)
        return time.perf_counter() - started
    create = {
        "table": "create or replace table",
        "ephemeral": "create or replace temp view",
    }.get(stage.kind, "create or replace view")
    try:
        con.execute(f"{create} {stage.name} as {body}")
    except duckdb.OutOfMemoryException as exc:
        exc.kuairec_step = stage.name  # the workspace's one-line error names it
        raise
    except (duckdb.IOException, duckdb.InterruptException):
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
