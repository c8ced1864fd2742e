"""Nothing a user owns is destroyed, and every bad input gets its own clear line.

Each test runs the real CLI in a subprocess and checks the exit code, that stderr is one line
naming the file or option, and that every file in the folder (the previous database included)
is byte-identical after the refusal.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli


def snapshot(*folders: Path) -> dict[str, str]:
    """SHA-256 of every file (and the target of every link) under the folders, by path."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                out[str(path)] = "link:" + str(path.readlink())
            elif path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[str(path)] = "dir"
    return out


def assert_refused(result, *fragments: str, code: int = 2) -> str:
    """The run failed with CODE and stderr is exactly one error line holding the fragments."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def data(tmp_path, demo_dir) -> Path:
    """A private copy of the demo files (a test may damage or write into it)."""
    folder = tmp_path / "data"
    shutil.copytree(demo_dir, folder)
    return folder


@pytest.fixture()
def previous_db(tmp_path, built_db) -> Path:
    """A database this project built, where a user keeps it."""
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    return db


# ---------------------------------------------------------------------------------------------
# Data loss: build --db never replaces a file this project did not build


def _sqlite_db(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.execute("create table mine (x integer)")
    con.execute("insert into mine values (1)")
    con.commit()
    con.close()
    return path


def _own_duckdb(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create table mine as select range as x from range(10)")
    con.execute("create table also_mine (y varchar)")
    con.close()
    return path


FOREIGN_TARGETS = {
    "input_csv": (lambda tmp, data: data / "user_features.csv", "a CSV file"),
    "text_file": (
        lambda tmp, data: (tmp / "notes.txt", (tmp / "notes.txt").write_text("my notes\n"))[0],
        "a text file",
    ),
    "sqlite": (lambda tmp, data: _sqlite_db(tmp / "mine.db"), "a SQLite database"),
    "own_duckdb": (
        lambda tmp, data: _own_duckdb(tmp / "mine.duckdb"),
        "a DuckDB database with 2 table(s) of its own",
    ),
    "empty_file": (
        lambda tmp, data: (tmp / "empty.duckdb", (tmp / "empty.duckdb").write_bytes(b""))[0],
        "an empty file",
    ),
}


@pytest.mark.parametrize("case", sorted(FOREIGN_TARGETS))
def test_build_refuses_to_replace_a_file_it_did_not_build(case, tmp_path, data):
    make, kind = FOREIGN_TARGETS[case]
    target = make(tmp_path, data)
    before = snapshot(tmp_path)
    result = run_cli("build", "--data", str(data), "--db", str(target), cwd=tmp_path)
    line = assert_refused(result, str(target), kind, "not a database this project built", "rm")
    assert "--db" in line
    assert snapshot(tmp_path) == before


def test_build_help_says_how_to_replace_a_foreign_file():
    result = run_cli("build", "--help")
    assert result.returncode == 0
    assert "remove it first (rm PATH)" in result.stdout


def test_build_over_its_own_database_and_a_missing_path_still_work(tmp_path, data):
    db = tmp_path / "new.duckdb"
    first = run_cli("build", "--data", str(data), "--db", str(db), "--models", "popularity")
    assert first.returncode == 0, first.stderr
    again = run_cli("build", "--data", str(data), "--db", str(db), "--models", "popularity,random")
    assert again.returncode == 0, again.stderr
    con = duckdb.connect(str(db), read_only=True)
    models = con.execute("select distinct model from recommendations order by 1").fetchall()
    assert models == [("popularity",), ("random",)]


@pytest.mark.parametrize("models", ["", ",,,", " , "])
def test_empty_model_list_is_an_error(models, tmp_path, data, previous_db):
    before = snapshot(tmp_path)
    result = run_cli("build", "--data", str(data), "--db", str(previous_db), "--models", models)
    assert_refused(result, "--models", "no model")
    assert snapshot(tmp_path) == before
