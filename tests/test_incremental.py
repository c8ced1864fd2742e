"""Rebuilds redo only what changed: fingerprints of inputs, SQL, variables and settings."""

from __future__ import annotations

import re
import shutil

import duckdb
import pytest

from tests.conftest import run_cli


def recomputed(stderr: str) -> set[str]:
    """Names of the tables and models a build log says it computed."""
    tables = set(re.findall(r"^\s+(\w+)\s+table\s", stderr, flags=re.M))
    models = set(re.findall(r"^\s+model (\w+): [\d,]+ recommendations", stderr, flags=re.M))
    return tables | {f"model:{m}" for m in models}


@pytest.fixture()
def fresh(tmp_path, small_demo_dir):
    """A private copy of the demo data and a full build of it with two models."""
    data = tmp_path / "data"
    shutil.copytree(small_demo_dir, data)
    db = tmp_path / "kuairec.duckdb"
    first = run_cli("build", "--data", str(data), "--db", str(db), "--models", "popularity,als")
    assert first.returncode == 0, first.stderr
    assert "model:als" in recomputed(first.stderr)
    return data, db


def build(data, db, *extra):
    result = run_cli("build", "--data", str(data), "--db", str(db), *extra)
    assert result.returncode == 0, result.stderr
    return result


def test_unchanged_rebuild_does_no_work(fresh):
    data, db = fresh
    before = db.stat()
    result = build(data, db, "--models", "popularity,als")
    assert "is up to date" in result.stdout
    assert recomputed(result.stderr) == set()
    after = db.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_changing_k_recomputes_only_the_cutoff_tables(fresh):
    data, db = fresh
    result = build(data, db, "--models", "popularity,als", "--k", "3,10")
    assert recomputed(result.stderr) == {"int_eval_cutoffs", "int_ideal_dcg"}
    con = duckdb.connect(str(db), read_only=True)
    ks = [r[0] for r in con.execute("select distinct k from eval_metrics order by k").fetchall()]
    assert ks == [3, 10]


def test_a_macro_whose_file_is_gone_is_dropped(fresh):
    """The next build that does any work drops the macros sql/macros/ no longer has (here one
    planted in the database, as a deleted file would leave it); the project's stay."""
    data, db = fresh
    con = duckdb.connect(str(db))
    con.execute("create macro retired_formula(x) as x + 1")
    con.execute("create macro retired_rows(n) as table select * from range(n)")
    con.close()
    build(data, db, "--models", "popularity,als", "--k", "3,10")
    con = duckdb.connect(str(db), read_only=True)
    names = {
        r[0]
        for r in con.execute(
            "select function_name from duckdb_functions() where database_name = 'kuairec'"
            " and not internal"
        ).fetchall()
    }
    assert not names & {"retired_formula", "retired_rows"}
    assert {"exact_sum", "exact_partial_sum", "ideal_dcgs", "user_metric_values"} <= names


def test_models_subset_keeps_tables_and_drops_other_models(fresh):
    data, db = fresh
    result = build(data, db, "--models", "popularity")
    assert recomputed(result.stderr) == set()
    con = duckdb.connect(str(db), read_only=True)
    models = con.execute("select distinct model from recommendations").fetchall()
    assert models == [("popularity",)]
    con.close()
    # Back to both: only ALS is trained again.
    result = build(data, db, "--models", "popularity,als")
    assert recomputed(result.stderr) == {"model:als"}


def test_a_model_setting_retrains_only_that_model(fresh):
    data, db = fresh
    result = build(data, db, "--models", "popularity,als", "--set", "als.iterations=3")
    assert recomputed(result.stderr) == {"model:als"}


def test_a_changed_input_file_recomputes_what_depends_on_it(fresh):
    data, db = fresh
    captions = data / "kuairec_caption_category.csv"
    captions.write_bytes(captions.read_bytes() + b'999999,cover,"a new caption",[],1,x,2,y,3,z\n')
    result = build(data, db, "--models", "popularity,als")
    done = recomputed(result.stderr)
    assert {"stg_caption_category", "int_item_index", "feat_video_content"} <= done
    assert "int_big_matrix_events" not in done and "int_train_interactions" not in done
    # the catalogue grew, so the item index and every model that uses it are redone
    assert {"model:als", "model:popularity"} <= done
    con = duckdb.connect(str(db), read_only=True)
    assert (
        con.execute(
            "select count(*) from feat_video_content where caption = 'a new caption'"
        ).fetchone()[0]
        == 1
    )


def test_a_changed_small_matrix_redoes_the_test_side_only(fresh):
    data, db = fresh
    small = data / "small_matrix.csv"
    lines = small.read_bytes().splitlines(keepends=True)
    small.write_bytes(b"".join(lines[:-1]))  # one small-matrix view fewer
    result = build(data, db, "--models", "popularity,als")
    done = recomputed(result.stderr)
    assert {"int_small_matrix_events", "int_ground_truth"} <= done
    # the big matrix is staged ephemerally, so nothing of it is parsed again
    assert not {"int_big_matrix_events", "stg_big_matrix"} & done
    con = duckdb.connect(str(db), read_only=True)
    n_pairs = con.execute("select count(*) from int_ground_truth").fetchone()[0]
    n_lines = con.execute(
        "select n_rows from data_quality where source = 'small_matrix.csv' and step = 'read'"
    ).fetchone()[0]
    assert n_lines == len(lines) - 2  # header and the removed line
    assert n_pairs <= n_lines


def test_force_rebuilds_everything(fresh):
    data, db = fresh
    result = build(data, db, "--models", "popularity,als", "--force")
    done = recomputed(result.stderr)
    assert {
        "int_big_matrix_events",
        "int_train_interactions",
        "model:als",
        "model:popularity",
    } <= done


def test_models_subset_builds_only_the_tables_those_models_need(fresh):
    data, db = fresh  # built with popularity and als
    con = duckdb.connect(str(db), read_only=True)
    tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    con.close()
    # the sequence model's transitions are not needed; shared features are products
    assert "feat_video_transitions" not in tables
    assert {"feat_video_daily", "feat_user_activity", "feat_video_content"} <= tables
    result = build(data, db, "--models", "popularity,als,sequence")
    assert "feat_video_transitions" in recomputed(result.stderr)
    assert "model:sequence" in recomputed(result.stderr)
    assert not {"model:als", "model:popularity", "int_big_matrix_events"} & recomputed(
        result.stderr
    )
