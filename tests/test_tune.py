"""tune: seeded random search on the tune users only, recorded in tuning_trials, written to TOML.

The end-to-end tests tune a copy of the demo database (als and itemknn, three trials each) with
the real CLI; the trial with the build's own settings must reproduce the build's tune-user
metric, and flipping the test users' ground truth in a copy of the database changes no trial.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tomllib

import duckdb
import pytest

from kuairec_db import hooks, tune
from tests.conftest import run_cli

TUNE_ARGS = ("--models", "als,itemknn", "--budget", "3", "--seed", "3")


def one_line_error(result, *fragments: str) -> str:
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and result.stderr.rstrip().splitlines()[-1] == errors[0], result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def trials(db) -> list[tuple]:
    """The rows of tuning_trials without timings, in order."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(
            "select * exclude (seconds, tuned_at) from tuning_trials order by model, trial"
        ).fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, built_db):
    folder = tmp_path_factory.mktemp("tune")
    db = folder / "kuairec.duckdb"
    shutil.copyfile(built_db, db)
    settings = folder / "tuned.toml"
    result = run_cli("tune", "--db", str(db), *TUNE_ARGS, "--write", str(settings))
    assert result.returncode == 0, result.stderr
    return folder, db, settings, result


def test_every_trial_is_recorded_with_tune_user_metrics_only(tuned, built_db):
    _, db, _, _ = tuned
    con = duckdb.connect(str(db), read_only=True)
    n_tune = con.execute(
        "select count(*) from eval_user_relevance where split = 'tune' and n_relevant > 0"
    ).fetchone()[0]
    assert n_tune > 0
    rows = con.execute(
        "select model, trial, split, n_users, k, selection_metric, selection_value, ndcg "
        "from tuning_trials order by model, trial"
    ).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(m, t) for m in ("als", "itemknn") for t in range(3)]
    assert all(r[2] == "tune" and r[3] == n_tune for r in rows), rows
    # The chosen trial of each model is the best (ties to the earlier trial).
    for model in ("als", "itemknn"):
        model_rows = con.execute(
            "select trial, ndcg, is_chosen from tuning_trials where model = ? order by trial",
            [model],
        ).fetchall()
        best = max(model_rows, key=lambda r: (r[1], -r[0]))
        assert [r[0] for r in model_rows if r[2]] == [best[0]]
    # The trial run with the build's own settings reproduces the build's tune-user metric:
    # the workspace evaluates exactly the tune users, with the same models.
    built = duckdb.connect(str(built_db), read_only=True)
    for model in ("als", "itemknn"):
        settings = built.execute(
            "select value from build_info where key = ?", [f"model.{model}.settings"]
        ).fetchone()[0]
        expected = built.execute(
            "select value from eval_metrics where model = ? and split = 'tune' and k = 10 "
            "and metric = 'ndcg'",
            [model],
        ).fetchone()[0]
        same = con.execute(
            "select ndcg from tuning_trials where model = ? and settings = ?",
            [model, json.dumps(json.loads(settings), sort_keys=True)],
        ).fetchall()
        assert len(same) == 1, model  # trial 0, the defaults the demo build ran with
        assert same[0][0] == pytest.approx(expected, abs=1e-12)
    built.close()
    con.close()


def test_test_users_ground_truth_changes_no_trial(built_db, tmp_path):
    """The real audit of "tune never sees test users": flip the labels and watch ratios of
    every test user in a copy of the database; every trial must come out identical."""
    args = ("--models", "als", "--budget", "2", "--seed", "5")
    results = []
    for name in ("same", "flipped"):
        db = tmp_path / f"{name}.duckdb"
        shutil.copyfile(built_db, db)
        if name == "flipped":
            con = duckdb.connect(str(db))
            before = con.execute(
                "select count(*) filter (where is_relevant), count(*) from int_ground_truth "
                "where split = 'test'"
            ).fetchone()
            con.execute(
                "update int_ground_truth set is_relevant = not is_relevant, "
                "watch_ratio = 10.0 - watch_ratio where split = 'test'"
            )
            after = con.execute(
                "select count(*) filter (where is_relevant) from int_ground_truth "
                "where split = 'test'"
            ).fetchone()[0]
            con.close()
            assert before[1] > 0 and after == before[1] - before[0]
        result = run_cli("tune", "--db", str(db), *args, "--write", str(tmp_path / f"{name}.toml"))
        assert result.returncode == 0, result.stderr
        results.append(trials(db))
    same, flipped = results
    assert len(same) == 2 and all(row[0] == "als" for row in same)
    assert flipped == same


def test_trial_zero_is_the_defaults(tuned):
    _, db, _, _ = tuned
    models = hooks.discover()
    for model, trial, settings, is_default in [(r[0], r[1], r[2], r[3]) for r in trials(db)]:
        assert is_default == (trial == 0)
        if trial == 0:
            assert json.loads(settings) == hooks.model_defaults(models[model])


def test_settings_file_is_toml_that_build_accepts(tuned, demo_dir):
    folder, db, settings, result = tuned
    chosen = tomllib.loads(settings.read_text(encoding="utf-8"))
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("select model, settings from tuning_trials where is_chosen").fetchall()
    con.close()
    assert chosen == {model: json.loads(text) for model, text in rows}
    assert "python -m kuairec_db build" in result.stdout and str(settings) in result.stdout
    rebuilt = folder / "rebuilt.duckdb"
    shutil.copyfile(db, rebuilt)
    built = run_cli(
        "build",
        "--data",
        str(demo_dir),
        "--db",
        str(rebuilt),
        "--models",
        "als,itemknn",
        "--config",
        str(settings),
    )
    assert built.returncode == 0, built.stderr
    con = duckdb.connect(str(rebuilt), read_only=True)
    info = dict(con.execute("select key, value from build_info").fetchall())
    con.close()
    for model, values in chosen.items():
        assert json.loads(info[f"model.{model}.settings"]) == values


def test_workspace_is_removed(tuned):
    folder, _, _, _ = tuned
    assert [p.name for p in folder.iterdir() if ".work-" in p.name or ".building-" in p.name] == []


def test_same_seed_gives_the_same_trials(tuned, tmp_path):
    _, db, _, _ = tuned
    again = tmp_path / "again.duckdb"
    shutil.copyfile(db, again)
    result = run_cli("tune", "--db", str(again), *TUNE_ARGS, "--write", str(tmp_path / "s.toml"))
    assert result.returncode == 0, result.stderr
    assert trials(again) == trials(db)


def test_a_running_build_makes_tune_refuse(tmp_path, built_db):
    db = tmp_path / "kuairec.duckdb"
    shutil.copyfile(built_db, db)
    with open(tmp_path / ".kuairec.duckdb.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        result = run_cli("tune", "--db", str(db), "--write", str(tmp_path / "s.toml"), timeout=30)
    one_line_error(result, "another build", "4242")
    assert not (tmp_path / "s.toml").exists()
    con = duckdb.connect(str(db), read_only=True)
    assert "tuning_trials" not in {r[0] for r in con.execute("show tables").fetchall()}
    con.close()


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("--models", "hybrid"), ("hybrid", "in-sample")),
        (("--models", "popularity"), ("popularity", "no settings to tune")),
        (("--models", "nope"), ("unknown model", "nope")),
        (("--models", "als", "--k", "7"), ("--k 7",)),
        (("--budget", "0"), ("--budget",)),
    ],
)
def test_bad_requests_end_in_one_line(args, fragments, tmp_path, built_db):
    db = tmp_path / "kuairec.duckdb"
    shutil.copyfile(built_db, db)
    one_line_error(run_cli("tune", "--db", str(db), *args, timeout=60), *fragments)
    assert [p.name for p in tmp_path.iterdir() if ".work-" in p.name] == []


def test_sample_settings_is_seeded_distinct_and_starts_with_the_defaults():
    defaults = {"a": 1, "b": 0.5, "c": "x"}
    space = {"a": [1, 2, 3], "b": [0.5, 1.0]}
    first = tune.sample_settings(defaults, space, 4, "7:m")
    assert first == tune.sample_settings(defaults, space, 4, "7:m")
    assert first[0] == defaults and len(first) == 4
    assert len({json.dumps(s, sort_keys=True) for s in first}) == 4
    assert all(s["a"] in space["a"] and s["b"] in space["b"] and s["c"] == "x" for s in first)
    # A budget above the grid gives the whole grid once.
    assert len(tune.sample_settings(defaults, space, 100, "7:m")) == 6
    # Settings another setting makes irrelevant stay at their defaults: fewer distinct points.
    ignored = tune.sample_settings(defaults, space, 100, "7:m", {"c": {"x": ("b",)}})
    assert [s["b"] for s in ignored] == [0.5] * 3


def test_every_search_space_names_real_settings():
    for model in hooks.discover().values():
        space = tune.search_space(model)
        defaults = hooks.model_defaults(model)
        assert set(space) <= set(defaults), model.name
        for key, values in space.items():
            assert all(type(v) is type(defaults[key]) for v in values), (model.name, key)


def test_by_default_only_the_databases_models_are_tuned(tmp_path, small_demo_dir):
    db = tmp_path / "k.duckdb"
    built = run_cli(
        "build", "--data", str(small_demo_dir), "--db", str(db), "--models", "popularity"
    )
    assert built.returncode == 0, built.stderr
    one_line_error(run_cli("tune", "--db", str(db)), "popularity", "no", "settings to tune")
    built = run_cli(
        "build", "--data", str(small_demo_dir), "--db", str(db), "--models", "popularity,itemknn"
    )
    assert built.returncode == 0, built.stderr
    result = run_cli("tune", "--db", str(db), "--budget", "2", "--write", str(tmp_path / "s.toml"))
    assert result.returncode == 0, result.stderr
    assert {r[0] for r in trials(db)} == {"itemknn"}
    assert "--models popularity,itemknn" in result.stdout
