"""workspace.py: the one way build, tune and exposure-study write a database (the naming rule
of temporary files, a full disk worded as one line for every command)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import pytest

from kuairec_db import workspace
from tests.conftest import run_cli
from tests.test_safety import assert_refused


def test_remove_leftovers_knows_the_files_by_one_naming_rule(tmp_path):
    target = tmp_path / "k.duckdb"
    left = [".k.duckdb.building-12", ".k.duckdb.building-12.wal", ".k.duckdb.work-7"]
    kept = [".k.duckdb.lock", ".k.duckdb.building-x", ".other.duckdb.work-3", "k.duckdb"]
    for name in left + kept:
        (tmp_path / name).write_bytes(b"x") if "work" not in name else (tmp_path / name).mkdir()
    removed = workspace.remove_leftovers(target)
    assert sorted(p.name for p in removed) == sorted(left)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


@pytest.fixture(scope="module")
def small_db(tmp_path_factory, small_demo_dir):
    db = tmp_path_factory.mktemp("small") / "kuairec.duckdb"
    result = run_cli(
        "build", "--data", str(small_demo_dir), "--db", str(db), "--models", "popularity,als",
        "--bootstrap", "20",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return db


@pytest.fixture()
def room_for_one_copy(tmp_path, small_db):
    """A tmpfs holding the database with too little room left for a second copy of it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    size_kb = small_db.stat().st_size * 13 // 10 // 1024
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    db = mount / "kuairec.duckdb"
    shutil.copyfile(small_db, db)
    yield db
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize(
    ("command", "doing"),
    [
        (("tune", "--models", "als", "--budget", "2", "--write", "{folder}/s.toml"), "tuning on"),
        (("exposure-study", "--repeats", "1", "--densities", "0.5"), "running exposure-study on"),
    ],
)
def test_a_full_disk_is_one_line_and_the_database_is_intact(room_for_one_copy, command, doing):
    db = room_for_one_copy
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    args = [arg.format(folder=db.parent) for arg in command]
    result = run_cli("-q", args[0], "--db", str(db), *args[1:])
    assert_refused(result, f"disk full while {doing} kuairec.duckdb", str(db.parent))
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in db.parent.iterdir()) == [".kuairec.duckdb.lock", "kuairec.duckdb"]
