"""Fingerprints: what each relation and model was computed from, so that a rebuild redoes only
what changed (and nothing when nothing did), and ``build --explain`` can say why.

A fingerprint is a digest of named *components*; ``build_fingerprints`` stores both, so a
later build compares component by component and names what changed. The components:

- a table stage: its SQL, DuckDB's version, the build variables it reads (``getvariable``),
  the fingerprints of the relations it reads and, for staging, its input file and the code
  that reads the CSVs (sources.py, schema.py, csvread.py); ``int_profile_sample`` also covers
  profile.py, whose fits are redone with it.
- a model: its file (and the SQL files it declares in ``SQL_FILES``), its settings, top_n and
  seed, the fingerprints of the relations it reads, the project code it runs (runner.py, the
  ranking templates, and every ``kuairec_db`` module its file imports, transitively), and the
  version of every installed library that code imports (implicit, lightgbm, numpy ...); a
  model built on the other models (``USES_OTHER_MODELS``) also covers their fingerprints.
- a view or audit: its SQL (views are recreated by every build that does any work, so a
  changed view makes a build do that work rather than say "up to date").

Which relations a file reads (the dependency rule, also in the README): every project relation
whose name appears as a word in the file outside comments and string literals, except a name
the file defines itself as a CTE (``with NAME as (...)``, ``, NAME as (...)``).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.metadata
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from kuairec_db import profile, runner, sources, stages
from kuairec_db.schema import SOURCES

FINGERPRINT_TABLE = "build_fingerprints"
FINGERPRINT_COLUMNS = "name varchar, fingerprint varchar, components varchar"
# What ModelContext reads for every Python model, whatever the model file names.
CONTEXT_DEPS = frozenset(
    {"int_train_interactions", "int_user_index", "int_item_index", "int_ground_truth"}
)
PACKAGE_DIR = Path(__file__).resolve().parent
READER_MODULES = ("sources.py", "schema.py", "csvread.py")  # the code staging tables run
RUNNER_MODULES = ("runner.py",)  # the code every model runs


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def code_digest(paths: list[Path]) -> str:
    return _digest([p.name + "=" + p.read_text(encoding="utf-8") for p in sorted(paths)])


def _variables_used(text: str) -> list[str]:
    return sorted(set(re.findall(r"getvariable\(\s*'(\w+)'", text)))


# ---------------------------------------------------------------------------------------------
# The graph: which relations each stage and model reads


def model_dependencies(model: runner.Model, known: set[str]) -> set[str]:
    """The project relations a model reads: those its file names, plus ModelContext's. A Python
    model's SQL is in its string literals, so there every word counts."""
    if model.is_sql:
        return stages.names_read(model.source_text, known)
    return (set(re.findall(r"[a-z_][a-z0-9_]*", model.source_text.lower())) & known) | CONTEXT_DEPS


def closure(roots: list[str] | set[str], by_name: dict[str, stages.Stage]) -> set[str]:
    """ROOTS and every stage they read, directly or not (names outside BY_NAME are left out)."""
    known = set(by_name)
    todo = sorted(roots)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name not in by_name:
            continue
        seen.add(name)
        todo += sorted(stages.dependencies(by_name[name], known))
    return seen


def downstream(root: str, by_name: dict[str, stages.Stage]) -> set[str]:
    """Every stage of BY_NAME that reads ROOT, directly or not."""
    known = set(by_name)
    deps = {name: stages.dependencies(stage, known) for name, stage in by_name.items()}
    out: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, parents in deps.items():
            if name not in out and (root in parents or parents & out):
                out.add(name)
                changed = True
    return out


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
    only_for_others = closure(unused, by_name) - closure(used, by_name)
    return {
        s.name for s in all_stages if s.kind in stages.TABLE_PHASE and s.name not in only_for_others
    }


# ---------------------------------------------------------------------------------------------
# The code a model runs


def _imports(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(kuairec_db modules, other top-level modules) a Python file imports, anywhere in it."""
    st = path.stat()
    return _parsed_imports(path, st.st_mtime_ns, st.st_size)


@functools.cache
def _parsed_imports(path: Path, mtime_ns: int, size: int) -> tuple[frozenset[str], frozenset[str]]:
    """_imports of PATH as it is at (MTIME_NS, SIZE): every model of a build shares the runner's
    modules, parsed once."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    ours: set[str] = set()
    others: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "kuairec_db":  # from kuairec_db import hooks, progress
                names = [f"kuairec_db.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "kuairec_db":
                if len(parts) > 1 and (PACKAGE_DIR / f"{parts[1]}.py").is_file():
                    ours.add(parts[1])
            else:
                others.add(parts[0])
    return frozenset(ours), frozenset(others)


def code_run(paths: list[Path]) -> tuple[list[Path], set[str]]:
    """The kuairec_db modules PATHS import, transitively (with PATHS themselves), and the
    top-level third-party modules any of them imports."""
    todo = list(paths)
    files: set[Path] = set()
    libraries: set[str] = set()
    while todo:
        path = todo.pop()
        if path in files:
            continue
        files.add(path)
        ours, others = _imports(path)
        todo += [PACKAGE_DIR / f"{name}.py" for name in sorted(ours)]
        libraries |= {m for m in others if m not in sys.stdlib_module_names and m != "__future__"}
    return sorted(files), libraries


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed package once


@functools.cache
def _named_like(module: str) -> list[str]:
    """[the installed distribution named as MODULE is (numpy, duckdb, implicit ...)], unless
    its top_level.txt says it provides other modules; else []. Reads one package's metadata,
    where packages_distributions reads every installed package's file list."""
    try:
        dist = importlib.metadata.distribution(module)
    except importlib.metadata.PackageNotFoundError:
        return []
    top_level = (dist.read_text("top_level.txt") or "").split()
    return [dist.metadata["Name"]] if not top_level or module in top_level else []


def library_versions(modules: set[str]) -> dict[str, str]:
    """Installed distribution and version of each importable top-level module in MODULES."""
    out = {}
    for module in sorted(modules):
        for dist in _named_like(module) or _distributions().get(module, []):
            try:
                out[dist] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def model_code(model: runner.Model) -> tuple[str, dict[str, str]]:
    """(digest of the project code MODEL runs, library -> version of the libraries it uses)."""
    roots = [PACKAGE_DIR / name for name in RUNNER_MODULES]
    if not model.is_sql:
        roots.append(model.path)
    files, libraries = code_run(roots)
    package_files = [f for f in files if f != model.path]  # the model file is its own part
    digest = code_digest([*package_files, *stages.RANKING_DIR.glob("*.sql")])
    return digest, library_versions(libraries | {"duckdb"})


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass
class Plan:
    """Fingerprints of this build and what each was made of (component -> value)."""

    fingerprints: dict[str, str]
    components: dict[str, dict[str, str]]
    libraries: dict[str, dict[str, str]]  # model -> library -> version


def _finish(components: dict[str, str]) -> str:
    return _digest([f"{k}={v}" for k, v in sorted(components.items())])


def plan(
    all_stages: list[stages.Stage],
    models: list[runner.Model],
    model_settings: dict[str, dict[str, Any]],
    variables: dict[str, Any],
    top_n: int,
    seed: int,
    input_fingerprints: dict[str, str],
) -> Plan:
    """A fingerprint per stage built before the models, per model (key ``model:NAME``) and
    per view and audit (``view:NAME``, ``audit:NAME``); see the module docstring."""
    known = {s.name for s in all_stages if s.kind in stages.TABLE_PHASE}
    reader_code = code_digest([PACKAGE_DIR / n for n in READER_MODULES])
    needed = needed_tables(all_stages, models)
    fps: dict[str, str] = {}
    parts_of: dict[str, dict[str, str]] = {}
    for stage in all_stages:
        if stage.kind not in stages.TABLE_PHASE:
            name = f"{stage.kind}:{stage.name}"
            parts_of[name] = {"sql": _digest([stage.kind, stage.sql])}
            fps[name] = _finish(parts_of[name])
            continue
        if stage.name not in needed:
            continue
        parts = {"sql": _digest([stage.kind, stage.sql]), "duckdb": duckdb.__version__}
        for dep in sorted(stages.dependencies(stage, known)):
            parts[f"reads:{dep}"] = fps[dep]
        for var in _variables_used(stage.sql):
            parts[f"variable:{var}"] = repr(variables.get(var))
        if stage.name.startswith("stg_"):
            parts["input"] = input_fingerprints.get(stage.name[4:], "none")
            parts["code:csv reader"] = reader_code
        if stage.name == profile.SAMPLE_TABLE:  # its Python fits are redone with it
            parts["code:profile.py"] = code_digest([PACKAGE_DIR / "profile.py"])
        parts_of[stage.name] = parts
        fps[stage.name] = _finish(parts)
    libraries: dict[str, dict[str, str]] = {}
    for model in models:
        code, versions = model_code(model)
        libraries[model.name] = versions
        parts = {
            "source": _digest([model.source_text]),
            "settings": json.dumps(model_settings[model.name], sort_keys=True),
            "code:kuairec_db": code,
            "top_n": str(top_n),
            "seed": str(seed),
        }
        parts |= {f"library:{lib}": version for lib, version in versions.items()}
        for dep in sorted(model_dependencies(model, known)):
            parts[f"reads:{dep}"] = fps[dep]
        if model.uses_other_models:
            parts |= {f"reads:{k}": v for k, v in sorted(fps.items()) if k.startswith("model:")}
        key = f"model:{model.name}"
        parts_of[key] = parts
        fps[key] = _finish(parts)
    return Plan(fps, parts_of, libraries)


def previous(target: Path) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The fingerprints (and their components, when recorded) stored in an existing database
    ({} when there is none to reuse)."""
    if not target.is_file():
        return {}, {}
    try:
        con = duckdb.connect(str(target), read_only=True)
    except duckdb.Error:
        return {}, {}
    try:
        rows = con.execute(f"select name, fingerprint from {FINGERPRINT_TABLE}").fetchall()
    except duckdb.Error:
        con.close()
        return {}, {}
    try:
        stored = con.execute(f"select name, components from {FINGERPRINT_TABLE}").fetchall()
        components = {name: json.loads(text) for name, text in stored if text}
    except duckdb.Error:  # written by an older version: fingerprints only
        components = {}
    finally:
        con.close()
    return dict(rows), components


def write(con: duckdb.DuckDBPyConnection, built: Plan) -> None:
    con.execute(f"create or replace table {FINGERPRINT_TABLE} ({FINGERPRINT_COLUMNS})")
    con.executemany(
        f"insert into {FINGERPRINT_TABLE} values (?, ?, ?)",
        [
            (name, fp, json.dumps(built.components.get(name, {}), sort_keys=True))
            for name, fp in sorted(built.fingerprints.items())
        ],
    )


def locate_inputs(
    data: Path | None, demo: bool, demo_scale: float, demo_seed: int
) -> tuple[str, str, dict[str, str]]:
    """(data kind, location, fingerprint per source) without reading or extracting data."""
    path = None if demo else (data or sources.find_default(Path.cwd()))
    if path is None:
        from kuairec_db import demo as demo_module

        code = code_digest([Path(demo_module.__file__)])
        fp = f"demo:{demo_scale}:{demo_seed}:{code}"
        location = f"synthetic demo (scale {demo_scale}, seed {demo_seed})"
        return "synthetic_demo", location, {source: fp for source in SOURCES}
    kind, found = sources.locate(Path(path).expanduser())
    return "kuairec_files", str(found), sources.fingerprints(kind, found)


# ---------------------------------------------------------------------------------------------
# Explaining


def _why(now: dict[str, str], before: dict[str, str]) -> str:
    """What changed between two component sets, in words."""
    reasons = []
    for key in sorted(set(now) | set(before)):
        if now.get(key) == before.get(key):
            continue
        kind, _, what = key.partition(":")
        old, new = before.get(key), now.get(key)
        if kind == "reads":
            reasons.append(f"reads {what}, which is rebuilt" if new else f"no longer reads {what}")
        elif kind in ("variable", "library"):
            reasons.append(f"{kind} {what}: {old} -> {new}")
        elif kind == "code":
            reasons.append(f"the code it runs changed ({what})")
        elif key in ("sql", "source"):
            reasons.append("its SQL changed" if key == "sql" else "its model file changed")
        elif key == "input":
            reasons.append("its input file changed")
        elif key in ("settings", "top_n", "seed", "duckdb"):
            reasons.append(f"{key}: {old} -> {new}")
        else:
            reasons.append(f"{key} changed")
    return "; ".join(reasons) or "its fingerprint changed"


def explain(
    built: Plan,
    before: dict[str, str],
    before_components: dict[str, dict[str, str]],
    existing: set[str],
    stored: set[str],
    force: bool,
) -> list[tuple[str, str]]:
    """(name, reason) for everything a build would redo, in build order; names of tables,
    ``model:NAME`` and ``view:NAME`` / ``audit:NAME`` (those are recreated whenever a build
    does any work: listed when their own SQL changed). EXISTING: the tables of the database;
    STORED: the stages that are tables (not views or ephemeral)."""
    out = []
    for name, fp in built.fingerprints.items():
        is_table = name in stored
        if force:
            reason = "--force"
        elif name not in before:
            reason = "not in the last build"
        elif is_table and name not in existing:
            reason = "missing from the database"
        elif before[name] == fp:
            continue
        elif name in before_components:
            reason = _why(built.components[name], before_components[name])
        else:
            reason = "its fingerprint changed (the last build recorded no details)"
        out.append((name, reason))
    for name in sorted(set(before) - set(built.fingerprints)):
        out.append((name, "no longer built: dropped"))
    return out
