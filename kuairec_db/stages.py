"""The SQL files of the project: where they are, what each becomes, and in which order.

A file's name is its relation's name and its folder decides what it becomes (see FOLDERS).
A file depends on every other project relation it names outside comments and strings, except
names it defines as CTEs (``names_read``); stages run in dependency order.

``sql/macros/NAME.sql`` holds the formulas several stages share (a metric, Kendall's tau, the
top-N of a SQL model): one ``create or replace macro NAME(...) as ...`` statement, a scalar,
aggregate or table macro over its arguments only (it names no relation). The build creates
them in the database before any stage (so the stored views that call them work in any DuckDB
client), and a stage or model that names a macro depends on it like on a relation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kuairec_db.resources import SHIPPED_MODELS_DIR, SQL_DIR

MODELS_DIR = SHIPPED_MODELS_DIR  # the user's own models: resources.model_dirs()
CATALOG_FILE = SQL_DIR / "catalog.toml"

# folder -> materialisation. Tables are built before the models run, views after them.
# A file in a table folder may say otherwise on a line of its own:
#   -- materialized: view       a view built with the tables (cheap relations read by a few)
#   -- materialized: ephemeral  a temp view of the build only, never stored (staging the big
#                               CSVs: the tables that read it type and deduplicate in one pass)
FOLDERS = {
    "macros": "macro",  # shared formulas, created before every other stage (see above)
    "staging": "table",
    "intermediate": "table",
    "features": "table",
    "public": "view",
    "eval": "view",
    "audits": "audit",
}
# kinds built before the models run
TABLE_PHASE = ("macro", "table", "early_view", "ephemeral")
_MATERIALIZED = re.compile(r"^-- materialized: (\w+)[ \t]*$", re.M)
RANKING_DIR = SQL_DIR / "ranking"  # per-model templates, run once per model

# Relations the runner creates (the models fill them), so SQL files may depend on them.
CONTRACT_TABLES = {
    "recommendations": "model varchar, user_id integer, rank integer, video_id integer, "
    "score double",
    "eval_rankings": "model varchar, user_id integer, rank integer, video_id integer, score double",
    "model_user_factors": "model varchar, user_id integer, factors float[]",
    "model_item_factors": "model varchar, video_id integer, factors float[]",
    "model_feature_importances": "model varchar, feature varchar, gain double, n_splits bigint",
    "model_video_scores": "model varchar, video_id integer, score double",
    "model_video_neighbours": "model varchar, video_id integer, neighbour_id integer, "
    "similarity double",
    "model_candidate_scores": "model varchar, user_id integer, video_id integer, score double",
}


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str  # table, early_view, ephemeral (built before the models), view or audit
    path: Path

    @property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def strip_comments(sql: str) -> str:
    """SQL without comments and string literals (for scanning the names it uses)."""
    # One pass, leftmost match first: a quote inside a comment does not start a string.
    return re.sub(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'", " ", sql, flags=re.S)


def select_body(sql: str) -> str:
    """The statement of a SQL file, without a trailing semicolon."""
    return sql.strip().rstrip(";").strip()


def discover(sql_dir: Path = SQL_DIR) -> list[Stage]:
    stages = []
    for folder, kind in FOLDERS.items():
        for path in sorted((sql_dir / folder).glob("*.sql")):
            stages.append(Stage(path.stem, _kind(path, kind), path))
    names = [s.name for s in stages]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise LayoutError(f"two SQL files define {', '.join(sorted(duplicates))}")
    return stages


# The directives a SQL file may hold, each on a line of its own in exactly this form:
# "-- NAME: VALUE". A line that is almost one (another spacing or case, "materialised", no
# space after "--") is refused rather than silently ignored.
DIRECTIVES = ("materialized", "memory_limit", "runs_by_default")
_NEAR_DIRECTIVE = re.compile(r"^[ \t]*--[ \t]*([A-Za-z_ -]+?)[ \t]*:[ \t]*(.*?)[ \t]*$", re.M)


class LayoutError(ValueError):
    """A mistake in the project's own files (a contributor's, not a user's input)."""


def _directive_key(word: str) -> str:
    return re.sub(r"[ _-]", "", word.lower()).replace("materialis", "materializ")


def check_directives(path: Path, text: str) -> None:
    """Refuse a comment line that is a near miss of a directive (see DIRECTIVES)."""
    keys = {_directive_key(name): name for name in DIRECTIVES}
    for found in _NEAR_DIRECTIVE.finditer(text):
        name = keys.get(_directive_key(found.group(1)))
        exact = f"-- {name}: {found.group(2)}"
        if name and found.group(0).rstrip() != exact:
            line = text.count("\n", 0, found.start()) + 1
            raise LayoutError(
                f"{path.name}: line {line}: {found.group(0).strip()!r} is not a directive; "
                f"write it as '-- {name}: VALUE' on a line of its own"
            )


def _kind(path: Path, folder_kind: str) -> str:
    text = path.read_text(encoding="utf-8")
    check_directives(path, text)
    found = _MATERIALIZED.search(text)
    if found is None:
        return folder_kind
    wanted = found.group(1)
    if folder_kind != "table" or wanted not in ("table", "view", "ephemeral"):
        raise LayoutError(
            f"{path.name}: 'materialized: {wanted}' is allowed only in staging, intermediate and "
            "features, as table, view or ephemeral"
        )
    return "early_view" if wanted == "view" else wanted


# A CTE the file defines: "with NAME as (", ", NAME as (" (materialized or not).
_CTE = re.compile(
    r"(?:\bwith(?:\s+recursive)?|,)\s*([a-z_][a-z0-9_]*)\s+as\s*(?:not\s+)?(?:materialized\s*)?\(",
)


def names_read(text: str, known: set[str]) -> set[str]:
    """The dependency rule: the names of KNOWN that TEXT uses as words outside comments and
    string literals, less those it defines itself as CTEs (a CTE named like a relation
    shadows it, it does not read it)."""
    code = strip_comments(text).lower()
    words = set(re.findall(r"[a-z_][a-z0-9_]*", code))
    return (words & known) - set(_CTE.findall(code))


def dependencies(stage: Stage, known: set[str]) -> set[str]:
    return names_read(stage.sql, known) - {stage.name}


def ordered(stages: list[Stage]) -> list[Stage]:
    """Stages in an order where each comes after every stage it names (a topological sort,
    stable by folder then name). A cycle is an error naming its members."""
    by_name = {s.name: s for s in stages}
    known = set(by_name)
    deps = {s.name: dependencies(s, known) for s in stages}
    done: list[Stage] = []
    placed: set[str] = set()
    pending = list(stages)
    while pending:
        ready = [s for s in pending if deps[s.name] <= placed]
        if not ready:
            raise LayoutError(
                "SQL stages depend on each other in a cycle: " + ", ".join(s.name for s in pending)
            )
        first = ready[0]
        done.append(first)
        placed.add(first.name)
        pending.remove(first)
    for s in done:
        if s.kind in TABLE_PHASE:
            late = [d for d in deps[s.name] if by_name[d].kind not in TABLE_PHASE]
            if late:
                raise LayoutError(
                    f"{s.name} is built before the models but reads {', '.join(late)}, "
                    "built after them"
                )
        if s.kind in ("view", "early_view"):
            temp = [d for d in deps[s.name] if by_name[d].kind == "ephemeral"]
            if temp:
                raise LayoutError(
                    f"view {s.name} reads {', '.join(temp)}, which is not stored in the database"
                )
    return done


def create_macros(con, all_stages: list[Stage] | None = None) -> None:
    """Create every macro of sql/macros/ on CON, in dependency order (what the build does first;
    for running single stages outside the build)."""
    for stage in ordered(all_stages or discover()):
        if stage.kind == "macro":
            con.execute(select_body(stage.sql))


def ranking_sql(name: str) -> str:
    return select_body((RANKING_DIR / f"{name}.sql").read_text(encoding="utf-8"))
