"""A killed build, a reader during a rebuild: the previous database always survives."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from kuairec_db import stages
from tests.conftest import run_cli
from tests.test_cli import leftovers, md5


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_kill_9_mid_build_leaves_previous_database_and_next_build_cleans_up(
    tmp_path, demo_dir, built_db
):
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    before = md5(db)
    env = {k: v for k, v in os.environ.items() if k != "KUAIREC_DATA"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kuairec_db",
            "build",
            "--data",
            str(demo_dir),
            "--db",
            str(db),
            "--force",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Kill it once it is writing tables into its temporary database.
        started = _wait_for(
            lambda: any(".building-" in p.name for p in tmp_path.iterdir()) and proc.poll() is None,
            timeout=60,
        )
        assert started, "the build never started writing"
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert md5(db) == before
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from recommendations").fetchone()[0] > 0
    con.close()
    assert leftovers(tmp_path), "a killed build leaves its temporary files"

    result = run_cli("build", "--data", str(demo_dir), "--db", str(db), "--models", "popularity")
    assert result.returncode == 0, result.stderr
    assert "interrupted build" in result.stderr
    assert leftovers(tmp_path) == []


def test_reader_keeps_its_view_during_a_rebuild(tmp_path, small_demo_dir, built_db):
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    reader = duckdb.connect(str(db), read_only=True)
    models_before = reader.execute(
        "select distinct model from recommendations order by 1"
    ).fetchall()
    assert len(models_before) >= 2

    result = run_cli(
        "build", "--data", str(small_demo_dir), "--db", str(db), "--models", "popularity"
    )
    assert result.returncode == 0, result.stderr

    # The old reader still sees the old file; a new reader sees the new build.
    assert reader.execute("select distinct model from recommendations order by 1").fetchall() == (
        models_before
    )
    reader.close()
    fresh = duckdb.connect(str(db), read_only=True)
    assert fresh.execute("select distinct model from recommendations order by 1").fetchall() == [
        ("popularity",)
    ]
    fresh.close()


def test_failed_build_keeps_the_exact_previous_file(tmp_path, demo_dir, built_db):
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    before = (md5(db), db.stat().st_ino)
    data = tmp_path / "data"
    shutil.copytree(demo_dir, data)
    (data / "small_matrix.csv").write_text("user_id,video_id\n1,2\n")
    result = run_cli("build", "--data", str(data), "--db", str(db))
    assert result.returncode == 2
    assert (md5(db), db.stat().st_ino) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [
        ".kuairec.duckdb.lock"
    ]
    assert Path(db).is_file()


def test_out_of_memory_is_one_line_and_keeps_the_previous_database(tmp_path, demo_dir, built_db):
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    before = md5(db)
    result = run_cli(
        "build", "--data", str(demo_dir), "--db", str(db), "--force", "--memory-limit", "8MB"
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: out of memory") and "--memory-limit" in last
    # it names the stage that ran out, one the log has not yet listed as built
    step = re.search(r"while building kuairec\.duckdb at (\w+) \(", last)
    assert step, last
    assert step.group(1) in {s.name for s in stages.discover()}
    assert not re.search(rf"^\s+{step.group(1)}\s+table", result.stderr, flags=re.M)
    assert md5(db) == before
    assert leftovers(tmp_path) == []


@pytest.fixture()
def small_disk(tmp_path):
    """A 40 MB tmpfs (CI and developers run as root on this kind of machine)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=40M", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"cannot mount a tmpfs for the disk-full test: {done.stderr}"
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_is_one_line_and_keeps_the_previous_database(small_disk, tmp_path):
    db = small_disk / "kuairec.duckdb"
    first = run_cli(
        "build", "--demo", "--demo-scale", "0.02", "--models", "popularity", "--db", str(db)
    )
    assert first.returncode == 0, first.stderr
    before = md5(db)
    # The full demo (its CSVs, an extracted copy of the database and more) cannot fit.
    result = run_cli("build", "--demo", "--db", str(db))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and ("disk full" in last or "No space left" in last), last
    assert md5(db) == before
    assert leftovers(small_disk) == []
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("select count(*) from recommendations").fetchone()[0] > 0
    con.close()
