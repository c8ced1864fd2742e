"""``build_lineage``: where each relation of the database comes from, for a BI user tracing a
number back: the file that defines it, how it is materialised, the relations it reads and the
input data files behind it."""

from __future__ import annotations

from pathlib import Path

import duckdb

from kuairec_db import resources, runner, stages
from kuairec_db.schema import SOURCES

TABLE = "build_lineage"
COLUMNS = (
    "relation varchar, materialization varchar, defined_in varchar, reads varchar[], "
    "input_files varchar[]"
)
_MATERIALIZATION = {
    "table": "table",
    "early_view": "view",
    "view": "view",
    "ephemeral": "ephemeral (a view of the build only, not stored)",
    "macro": "macro (sql/macros/: a formula the relations that name it call)",
}


def _shown(path: Path) -> str:
    """A file as the repository names it: sql/... or models/..., else its absolute path."""
    for folder, name in ((resources.SQL_DIR, "sql"), (resources.SHIPPED_MODELS_DIR, "models")):
        try:
            return f"{name}/{path.resolve().relative_to(folder.resolve()).as_posix()}"
        except ValueError:
            continue
    return str(path)


def rows(
    all_stages: list[stages.Stage], built: set[str], models: list[runner.Model]
) -> list[tuple[str, str, str, list[str], list[str]]]:
    """One row per relation the build made (BUILT: the table stages it kept or rebuilt), per
    view, per contract table the models fill, and for build_info and build_fingerprints."""
    from kuairec_db.fingerprints import FINGERPRINT_TABLE, model_dependencies

    by_name = {s.name: s for s in all_stages}
    known = set(by_name) | set(stages.CONTRACT_TABLES)
    edges: dict[str, set[str]] = {}

    def reads_of(name: str) -> set[str]:
        if name not in edges:
            if name in by_name:
                edges[name] = stages.dependencies(by_name[name], known)
            elif name in stages.CONTRACT_TABLES:
                edges[name] = {d for m in models for d in model_dependencies(m, set(by_name))}
            else:
                edges[name] = set()
        return edges[name]

    def input_files(name: str) -> set[str]:
        # everything NAME reaches, walked afresh: the contract tables feed models that write
        # them again (hybrid, two_stage), and a memo of a half-walked cycle would lose files
        seen, todo, found = {name}, [name], set()
        while todo:
            current = todo.pop()
            if current.startswith("stg_") and current[4:] in SOURCES:
                found.add(SOURCES[current[4:]][0])
            for dep in reads_of(current):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return found

    out = []
    for stage in all_stages:
        if stage.kind == "audit" or (stage.kind in stages.TABLE_PHASE and stage.name not in built):
            continue
        reads = sorted(stages.dependencies(stage, known))
        out.append(
            (
                stage.name,
                _MATERIALIZATION[stage.kind],
                _shown(stage.path),
                reads,
                sorted(input_files(stage.name)),
            )
        )
    model_reads = sorted({d for m in models for d in model_dependencies(m, set(by_name))})
    for table in stages.CONTRACT_TABLES:
        out.append(
            (
                table,
                "table (filled by the models)",
                ", ".join(_shown(m.path) for m in models),
                model_reads,
                sorted(input_files(table)),
            )
        )
    from kuairec_db.profile import HOOK_TABLES, SAMPLE_TABLE

    for table in HOOK_TABLES:  # the profile's fits, written by a Python hook of the build
        out.append(
            (
                table,
                "table (filled by the profile hook)",
                "kuairec_db/profile.py",
                [SAMPLE_TABLE],
                sorted(input_files(SAMPLE_TABLE)),
            )
        )
    out.append(("build_info", "table", "kuairec_db/build.py", [], []))
    out.append((FINGERPRINT_TABLE, "table", "kuairec_db/build.py", [], []))
    out.append((TABLE, "table", "kuairec_db/lineage.py", [], []))
    return out


def write(con: duckdb.DuckDBPyConnection, lineage_rows: list) -> None:
    con.execute(f"create or replace table {TABLE} ({COLUMNS})")
    con.executemany(f"insert into {TABLE} values (?, ?, ?, ?, ?)", lineage_rows)
