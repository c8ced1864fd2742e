"""A killed build, a reader during a rebuild: the previous database always survives."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

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


def test_reader_keeps_its_view_during_a_rebuild(tmp_path, demo_dir, built_db):
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    reader = duckdb.connect(str(db), read_only=True)
    models_before = reader.execute(
        "select distinct model from recommendations order by 1"
    ).fetchall()
    assert len(models_before) >= 2

    result = run_cli("build", "--data", str(demo_dir), "--db", str(db), "--models", "popularity")
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
