"""DuckDB memory in the build: 1 GB for the pipeline unless --memory-limit says otherwise, more
for a model that declares it needs more."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from kuairec_db import hooks
from kuairec_db.errors import UserError
from tests.conftest import run_cli
from tests.test_real_format import TINY


def test_a_model_declares_its_memory_in_its_file(tmp_path):
    sql = tmp_path / "wide.sql"
    sql.write_text("-- wide: one row per video.\n-- memory_limit: 3GB\nselect 1 as video_id\n")
    plain = tmp_path / "plain.sql"
    plain.write_text("-- plain: one row per video.\nselect 1 as video_id, 1.0 as score\n")
    python = tmp_path / "big.py"
    python.write_text('MEMORY_LIMIT = "2.5GiB"\n\n\ndef run(ctx):\n    pass\n')
    assert hooks.Model("wide", sql).memory_limit == "3GB"
    assert hooks.Model("plain", plain).memory_limit is None
    assert hooks.Model("big", python).memory_limit == "2.5GiB"
    bad = tmp_path / "bad.sql"
    bad.write_text("-- memory_limit: lots\nselect 1 as video_id\n")
    with pytest.raises(UserError, match="'lots' is not a size like 3GB"):
        hooks.Model("bad", bad).memory_limit


def test_only_the_model_that_streams_every_pair_into_lists_asks_for_more_than_the_pipeline():
    """content gathers every (user, video) pair through the list macro and asks for 3GB; random
    and sequence no longer do (they fit the default 1GB at full scale)."""
    models = hooks.discover()
    assert models["content"].memory_limit == "3GB"
    for name in ("random", "sequence", "popularity", "als"):
        assert models[name].memory_limit is None, name
    assert hooks.PIPELINE_MEMORY_LIMIT == "1GB"


def test_the_build_records_the_memory_it_ran_with(db_con):
    info = dict(db_con.execute("select key, value from build_info").fetchall())
    assert info["param.memory_limit"] == "1GB"
    # the setting each model asks for is DuckDB syntax, and DuckDB takes it as that many bytes,
    # more than the pipeline's
    declared = {name: m.memory_limit for name, m in hooks.discover().items() if m.memory_limit}
    assert declared
    pipeline = _bytes(hooks.PIPELINE_MEMORY_LIMIT)
    con = duckdb.connect()
    for name, limit in declared.items():
        con.execute(f"set memory_limit = '{limit}'")
        shown = con.execute("select current_setting('memory_limit')").fetchone()[0]
        number, unit = shown.split()
        assert abs(float(number) * UNITS[unit] - _bytes(limit)) < 0.1 * UNITS[unit], (name, shown)
        assert _bytes(limit) > pipeline, name
    con.close()


UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "KB": 10**3, "MB": 10**6, "GB": 10**9}


def _bytes(size: str) -> float:
    """'3GB' or '2.5GiB' in bytes."""
    unit = next(u for u in sorted(UNITS, key=len, reverse=True) if size.endswith(u))
    return float(size[: -len(unit)]) * UNITS[unit]


@pytest.mark.parametrize(
    "flags, raised",
    [([], True), (["--memory-limit", "512MB"], False)],
)
def test_a_model_runs_with_the_memory_it_asks_for_unless_the_user_chose(tmp_path, flags, raised):
    result = run_cli(
        "build", "--data", str(TINY), "--db", str(tmp_path / "k.duckdb"),
        "--models", "popularity,content", *flags, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert ("model content: DuckDB memory limit 3GB (its own)" in result.stderr) == raised
    limit = "1GB" if not flags else "512MB"
    assert f"threads, memory limit {limit}" in result.stderr
    assert "model popularity: DuckDB memory limit" not in result.stderr
    con = duckdb.connect(str(tmp_path / "k.duckdb"), read_only=True)
    info = dict(con.execute("select key, value from build_info").fetchall())
    assert info["param.memory_limit"] == ("1GB" if not flags else "512MB")


@pytest.mark.parametrize(
    "command",
    [
        ["exposure-study", "--no-temporal", "--densities", "0.5", "--strategies", "uniform"],
        ["tune", "--models", "als", "--budget", "1", "--write", "settings.toml"],
    ],
)
def test_tune_and_exposure_study_run_out_of_memory_in_one_line(tmp_path, built_db, command):
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    before = hashlib.md5(db.read_bytes()).hexdigest()
    result = run_cli(*command, "--db", str(db), "--memory-limit", "8MB", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: out of memory") and "--memory-limit (now 8MB)" in last
    assert hashlib.md5(db.read_bytes()).hexdigest() == before
    assert not (tmp_path / "settings.toml").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".kuairec.duckdb.lock", "kuairec.duckdb"]


def test_exposure_study_scores_sql_models_over_its_users_at_the_default_limit(tmp_path, built_db):
    """random asks for 3GB in a build; over the study's users the default is enough."""
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    result = run_cli(
        "exposure-study", "--db", str(db), "--models", "random,popularity", "--no-temporal",
        "--densities", "0.5", "--strategies", "uniform", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "random: SQL model re-run" in result.stderr
    assert "(its own)" not in result.stderr
    con = duckdb.connect(str(db), read_only=True)
    info = dict(con.execute("select key, value from eval_exposure_info").fetchall())
    assert info["memory_limit"] == "1GB"
    rows = con.execute("select model from eval_exposure_models where in_study").fetchall()
    studied = {r[0] for r in rows}
    assert studied == {"random", "popularity"}


def test_exposure_study_gives_a_sql_model_its_own_memory_when_the_default_runs_out(
    tmp_path, caplog
):
    """The fallback of exposure-study's SQL-model scoring: out of memory at the connection's
    limit (8MB here, standing for the default), then again under the model's own."""
    from kuairec_db import exposure, runner

    model_file = tmp_path / "heavy.sql"
    model_file.write_text(
        "-- heavy: one score per user, from a list aggregate that cannot spill\n"
        "-- memory_limit: 2GB\n"
        "select user_id, 1 as video_id, len(list(r.range)) as score\n"
        "from int_user_index cross join range(200000) as r group by user_id\n"
    )
    model = runner.Model(name="heavy", path=model_file)
    con = duckdb.connect()
    con.execute("attach ':memory:' as kuairec")
    con.execute("use kuairec")
    con.execute("create table int_user_index as select range::integer as user_id from range(50)")
    con.execute(
        "create temp table exposure_pairs as select user_id, 1 as video_id from int_user_index"
    )
    con.execute(
        "create temp table exposure_scores "
        "(model varchar, user_id integer, video_id integer, score double)"
    )
    con.execute("set variable model_name = 'heavy'")
    con.execute("set memory_limit = '8MB'")
    with pytest.raises(duckdb.OutOfMemoryException):  # --memory-limit given: no fallback
        exposure._score_sql_model_in_memory(con, model, "8MB")
    with caplog.at_level("INFO"):
        exposure._score_sql_model_in_memory(con, model, None)
    assert "out of memory at the default limit, again with its own" in caplog.text
    assert "DuckDB memory limit 2GB (its own)" in caplog.text
    scores = con.execute("select min(score), max(score), count(*) from exposure_scores").fetchone()
    assert scores == (200000, 200000, 50)


# A fresh process: a 100 MB block freed and asked for again, and where glibc put it (mallinfo2:
# hblkhd is the bytes in mapped blocks). Prints "mapped" or "heap".
_WHERE_BLOCKS_GO = """
import ctypes, os, sys
import numpy as np
from kuairec_db import allocator

class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
raised = allocator.keep_large_blocks() if sys.argv[1] == "raise" else False
block = np.ones(100 * 2**20 // 8)
mapped = libc.mallinfo2().hblkhd >= block.nbytes
print(raised, "mapped" if mapped else "heap")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_large_arrays_come_from_the_heap_once_the_threshold_is_raised():
    """Without the raise, glibc maps a 100 MB block afresh (its threshold is at most 32 MB);
    with it, the block is in the heap. A threshold the user set is left alone."""
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}

    def where(mode: str, **extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _WHERE_BLOCKS_GO, mode],
            env={**env, **extra},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    assert where("leave") == "False mapped"
    assert where("raise") == "True heap"
    assert where("raise", MALLOC_MMAP_THRESHOLD_="33554432") == "False mapped"
