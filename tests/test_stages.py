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
