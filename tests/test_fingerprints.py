"""Fingerprints cover the code each relation and model runs, and ``build --explain`` says what
a build would redo and why. The edits are made in a private copy of the checkout (package,
sql/ and models/), run by the real CLI with that copy first on PYTHONPATH."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import duckdb
import pytest

from kuairec_db import fingerprints, hooks, runner, stages
from tests.conftest import ROOT, run_cli
from tests.test_incremental import recomputed

MODELS = "popularity,als"


@pytest.fixture()
def checkout(tmp_path, small_demo_dir):
    """(checkout copy, data, db): a copy of the project and a first build by it."""
    copy = tmp_path / "checkout"
    for folder in ("kuairec_db", "sql", "models"):
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__"))
    db = tmp_path / "kuairec.duckdb"
    first = build_in(copy, small_demo_dir, db)
    assert {"model:als", "model:popularity", "int_ground_truth"} <= recomputed(first.stderr)
    return copy, small_demo_dir, db


def cli_in(copy: Path, *args: str):
    env = {"PYTHONPATH": os.pathsep.join([str(copy), os.environ.get("PYTHONPATH", "")])}
    return run_cli(*args, cwd=copy, env=env)


def build_in(copy: Path, data: Path, db: Path, *extra: str):
    result = cli_in(
        copy, "build", "--data", str(data), "--db", str(db), "--models", MODELS, "--bootstrap",
        "20", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def explain_in(copy: Path, data: Path, db: Path, *extra: str) -> str:
    before = _file_state(db)
    result = cli_in(
        copy, "build", "--data", str(data), "--db", str(db), "--models", MODELS, "--bootstrap",
        "20", "--explain", *extra,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _file_state(db) == before  # --explain writes nothing
    return result.stdout


def _file_state(path: Path):
    if not path.exists():
        return None
    st = path.stat()
    return st.st_ino, st.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def explained(stdout: str) -> dict[str, str]:
    """name -> reason of the lines of an --explain."""
    out = {}
    for line in stdout.splitlines()[1:]:
        name, _, reason = line.strip().partition("  ")
        out[name] = reason.strip()
    return out


def test_editing_a_module_rebuilds_the_python_models_that_import_it(checkout):
    copy, data, db = checkout
    edit(  # progress.py: imported by als, not by the runner every model goes through
        copy / "kuairec_db" / "progress.py",
        "_enabled: bool | None = None",
        "# edited\n_enabled: bool | None = None",
    )
    plan = explained(explain_in(copy, data, db))
    assert list(plan) == ["model:als"], plan  # popularity is SQL: it runs no progress code
    assert "the code it runs changed" in plan["model:als"]
    result = build_in(copy, data, db)
    assert recomputed(result.stderr) == {"model:als"}
    assert "updated" in result.stdout


def test_editing_a_log_message_of_build_py_rebuilds_nothing(checkout):
    copy, data, db = checkout
    edit(copy / "kuairec_db" / "build.py", '"evaluation views"', '"the evaluation views"')
    assert "is up to date" in explain_in(copy, data, db)
    result = build_in(copy, data, db)
    assert "is up to date" in result.stdout and recomputed(result.stderr) == set()


def test_editing_the_csv_reader_rebuilds_the_staging_tables(checkout):
    copy, data, db = checkout
    edit(copy / "kuairec_db" / "csvread.py", "MAX_ID = ", "# edited\nMAX_ID = ")
    plan = explained(explain_in(copy, data, db))
    staging = {s.name for s in stages.discover() if s.kind == "table" and s.name.startswith("stg_")}
    assert staging <= set(plan), plan
    assert all("csv reader" in plan[name] for name in staging)


def test_a_view_whose_sql_alone_changed_is_recreated_not_up_to_date(checkout):
    copy, data, db = checkout
    view = copy / "sql" / "public" / "recommendations_explained.sql"
    edit(view, "        recs.score,\n", "        recs.score,\n        42 as edited_marker,\n")
    plan = explained(explain_in(copy, data, db))
    assert plan == {"view:recommendations_explained": "its SQL changed"}, plan
    result = build_in(copy, data, db)
    assert "is up to date" not in result.stdout
    assert recomputed(result.stderr) == set()  # no table and no model is computed again
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select min(edited_marker) from recommendations_explained").fetchone() == (
        42,
    )
    assert "is up to date" in build_in(copy, data, db).stdout


def test_a_changed_library_version_retrains_the_model_and_kept_models_keep_theirs(checkout):
    copy, data, db = checkout
    con = duckdb.connect(str(db))
    libraries = json.loads(
        con.execute("select value from build_info where key = 'model.als.libraries'").fetchone()[0]
    )
    import implicit

    assert libraries["implicit"] == implicit.__version__ and "numpy" in libraries
    # as if the database had been built with another implicit: its ALS fingerprint says so
    components = json.loads(
        con.execute(
            "select components from build_fingerprints where name = 'model:als'"
        ).fetchone()[0]
    )
    components["library:implicit"] = "0.0.1"
    con.execute(
        "update build_fingerprints set fingerprint = 'built-with-0.0.1', components = ? "
        "where name = 'model:als'",
        [json.dumps(components)],
    )
    con.execute(
        "update build_info set value = ? where key = 'model.popularity.libraries'",
        ['{"duckdb": "0.0.2"}'],
    )
    con.close()
    plan = explained(explain_in(copy, data, db))
    assert plan == {"model:als": f"library implicit: 0.0.1 -> {implicit.__version__}"}, plan
    result = build_in(copy, data, db)
    assert recomputed(result.stderr) == {"model:als"}
    con = duckdb.connect(str(db), read_only=True)
    info = dict(con.execute("select key, value from build_info").fetchall())
    assert json.loads(info["model.als.libraries"])["implicit"] == implicit.__version__
    # popularity was kept: it keeps the versions of the build that computed it
    assert info["model.popularity.libraries"] == '{"duckdb": "0.0.2"}'


def test_explain_names_changed_settings_and_variables_and_builds_nothing(checkout):
    copy, data, db = checkout
    plan = explained(explain_in(copy, data, db, "--k", "5,10", "--set", "als.factors=16"))
    assert set(plan) == {"int_eval_cutoffs", "int_ideal_dcg", "model:als"}, plan
    assert plan["int_eval_cutoffs"] == "variable eval_k: [5, 10, 20, 50] -> [5, 10]"
    assert '"factors": 16' in plan["model:als"]
    assert "--force" in explained(explain_in(copy, data, db, "--force"))["model:als"]


def test_explain_without_a_database_creates_nothing(tmp_path, small_demo_dir):
    db = tmp_path / "none.duckdb"
    result = run_cli("build", "--data", str(small_demo_dir), "--db", str(db), "--explain")
    assert result.returncode == 0, result.stderr
    assert "everything would be built (it does not exist)" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # not even the lock file


def test_bad_input_to_explain_is_one_line(tmp_path):
    result = run_cli("build", "--demo", "--db", str(tmp_path / "x.duckdb"), "--explain", "--k", "0")
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------------------------
# The pieces


def test_model_code_follows_imports_and_names_the_libraries():
    models = hooks.discover()
    als_code, als_libraries = fingerprints.model_code(models["als"])
    sql_code, sql_libraries = fingerprints.model_code(models["popularity"])
    files, _ = fingerprints.code_run([models["als"].path])
    names = {f.name for f in files}
    assert {"modelapi.py", "progress.py", "validate.py"} <= names
    assert "build.py" not in names
    assert "implicit" in als_libraries and "implicit" not in sql_libraries
    assert "lightgbm" in fingerprints.model_code(models["two_stage"])[1]
    assert als_code != sql_code


def test_a_cte_named_like_a_relation_adds_no_edge(tmp_path):
    path = tmp_path / "feat_x.sql"
    path.write_text(
        "-- feat_x: one row per user\nwith\n\nint_user_index as (\n    select 1 as user_id\n),\n\n"
        "train as (\n    select * from int_train_interactions\n)\n\n"
        "select * from int_user_index, train\n",
        encoding="utf-8",
    )
    stage = stages.Stage("feat_x", "table", path)
    known = {"int_user_index", "int_train_interactions", "feat_x"}
    assert stages.dependencies(stage, known) == {"int_train_interactions"}


def test_a_python_models_sql_in_quotes_is_read(tmp_path):
    # an apostrophe in a comment or SQL in single quotes must not hide a relation it reads
    path = tmp_path / "mine.py"
    path.write_text(
        "QUERY = 'select * from feat_video_popularity'\n"
        "# the model's input is int_train_duration_thresholds, isn't it\n"
        "def run(ctx):\n    return None\n",
        encoding="utf-8",
    )
    model = runner.Model("mine", path)
    known = {"feat_video_popularity", "int_train_duration_thresholds", "feat_user_activity"}
    deps = fingerprints.model_dependencies(model, known)
    assert {"feat_video_popularity", "int_train_duration_thresholds"} <= deps
    assert "feat_user_activity" not in deps
