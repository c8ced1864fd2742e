"""How SQL files become relations: folder defaults, the 'materialized' line, dependency order,
and what the build leaves in the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from kuairec_db import stages


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sql").write_text(text, encoding="utf-8")


def project(tmp_path: Path, files: dict[str, str]) -> Path:
    """A sql/ folder holding FILES ('folder/name' -> text); every other folder empty."""
    sql = tmp_path / "sql"
    for folder in stages.FOLDERS:
        (sql / folder).mkdir(parents=True, exist_ok=True)
    for key, text in files.items():
        folder, name = key.split("/")
        write(sql / folder, name, text)
    return sql


def kinds(sql: Path) -> dict[str, str]:
    return {s.name: s.kind for s in stages.ordered(stages.discover(sql))}


def test_folders_decide_unless_a_file_says_otherwise(tmp_path):
    sql = project(
        tmp_path,
        {
            "staging/stg_a": "-- stg_a: raw.\n-- materialized: ephemeral\nselect 1 as x\n",
            "intermediate/int_b": "-- int_b\nselect x from stg_a\n",
            "intermediate/int_c": "-- int_c\n-- materialized: view\nselect x from int_b\n",
            "features/feat_d": "-- feat_d\nselect x from int_c\n",
            "eval/eval_e": "-- eval_e\nselect x from feat_d\n",
        },
    )
    assert kinds(sql) == {
        "stg_a": "ephemeral",
        "int_b": "table",
        "int_c": "early_view",
        "feat_d": "table",
        "eval_e": "view",
    }
    # a dependency order: each after what it reads
    assert [s.name for s in stages.ordered(stages.discover(sql))] == [
        "stg_a",
        "int_b",
        "int_c",
        "feat_d",
        "eval_e",
    ]


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"eval/eval_a": "-- materialized: ephemeral\nselect 1 as x\n"},
            "allowed only in staging, intermediate and features",
        ),
        (
            {"intermediate/int_a": "-- materialized: materialised\nselect 1 as x\n"},
            "allowed only in staging, intermediate and features",
        ),
        (
            {
                "staging/stg_a": "-- materialized: ephemeral\nselect 1 as x\n",
                "public/pub_b": "select x from stg_a\n",
            },
            "view pub_b reads stg_a, which is not stored in the database",
        ),
        (
            {
                "staging/stg_a": "-- materialized: ephemeral\nselect 1 as x\n",
                "intermediate/int_b": "-- materialized: view\nselect x from stg_a\n",
            },
            "view int_b reads stg_a, which is not stored in the database",
        ),
        (
            {
                "eval/eval_a": "select 1 as x\n",
                "features/feat_b": "select x from eval_a\n",
            },
            "feat_b is built before the models but reads eval_a",
        ),
        (
            {
                "intermediate/int_a": "select x from int_b\n",
                "intermediate/int_b": "select x from int_a\n",
            },
            "cycle: int_a, int_b",
        ),
    ],
)
def test_impossible_layouts_are_refused_with_the_reason(tmp_path, files, message):
    sql = project(tmp_path, files)
    with pytest.raises(ValueError, match=message):
        stages.ordered(stages.discover(sql))


def test_the_project_stages_big_csvs_ephemerally_and_stores_the_rest(db_con):
    found = kinds(stages.SQL_DIR)
    assert found["stg_big_matrix"] == found["stg_small_matrix"] == "ephemeral"
    assert found["int_train_events"] == "early_view"
    relations = dict(
        db_con.execute(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = 'main'"
        ).fetchall()
    )
    assert "stg_big_matrix" not in relations and "stg_small_matrix" not in relations
    assert relations["int_train_events"] == "VIEW"
    assert relations["int_big_matrix_events"] == "BASE TABLE"
    # every stored stage is in the database, as what its file says
    for name, kind in found.items():
        if kind == "table":
            assert relations.get(name) == "BASE TABLE", name
        elif kind in ("view", "early_view"):
            assert relations.get(name) == "VIEW", name


def test_models_that_do_not_beat_random_on_the_demo_are_opt_in(tmp_path):
    """bpr and content are left out of a build without --models (each file says so), run
    when named, and a near miss in the SQL marker is refused."""
    from kuairec_db import hooks
    from kuairec_db.errors import UserError

    models = hooks.discover()
    assert not models["bpr"].runs_by_default and not models["content"].runs_by_default
    assert all(m.runs_by_default for n, m in models.items() if n not in ("bpr", "content"))
    odd = tmp_path / "odd.sql"
    odd.write_text("-- runs_by_default: no\nselect 1 as video_id, 1.0 as score\n")
    with pytest.raises(UserError, match="runs_by_default must be true or false"):
        hooks.Model("odd", odd).runs_by_default


@pytest.mark.parametrize(
    "line",
    [
        "--materialized: ephemeral",
        "-- materialised: view",
        "-- Materialized: view",
        "-- materialized : view",
        "--  memory_limit: 3GB",
        "-- memory-limit: 3GB",
        "-- runs_by_default:false",
    ],
)
def test_a_near_miss_of_a_directive_is_refused(tmp_path, line):
    """Each of these used to be ignored silently (a near miss of '-- materialized: view' left a
    table); now it names the file, the line and the form to write."""
    path = tmp_path / "int_thing.sql"
    path.write_text(f"-- one row per thing\n{line}\nselect 1 as x\n")
    with pytest.raises(stages.LayoutError, match=r"int_thing.sql: line 2: .* '-- \w+: VALUE'"):
        stages.check_directives(path, path.read_text())
    stages.check_directives(path, "-- one row per thing\n-- materialized: view\nselect 1\n")


def test_a_layout_mistake_is_one_line_naming_the_file_with_its_own_exit_code(tmp_path):
    from tests.conftest import run_cli

    own = tmp_path / "own_models"
    own.mkdir()
    (own / "mine.sql").write_text(
        "-- mine: the same order for everyone\n--memory_limit: 3GB\n"
        "select video_id, 1.0 as score from feat_video_popularity\n"
    )
    result = run_cli(
        "build",
        "--demo",
        "--demo-scale",
        "0.02",
        "--db",
        str(tmp_path / "k.duckdb"),
        "--models-dir",
        str(own),
        "--models",
        "popularity,mine",
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3, result.stderr
    assert lines[-1].startswith("error: project layout: mine.sql: line 2:"), result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "k.duckdb").exists()
