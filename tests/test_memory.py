"""DuckDB memory in the build: 1 GB for the pipeline unless --memory-limit says otherwise, more
for a model that declares it needs more."""

from __future__ import annotations

import duckdb
import pytest

from kuairec_db import build, hooks
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


def test_the_models_that_stream_every_pair_ask_for_more_than_the_pipeline():
    models = hooks.discover()
    for name in ("random", "content", "sequence"):
        assert models[name].memory_limit == "3GB", name
    for name in ("popularity", "als"):
        assert models[name].memory_limit is None, name
    assert build.PIPELINE_MEMORY_LIMIT == "1GB"


def test_the_build_records_the_memory_it_ran_with(db_con):
    info = dict(db_con.execute("select key, value from build_info").fetchall())
    assert info["param.memory_limit"] == "1GB"
    # the setting a model asks for is DuckDB syntax
    con = duckdb.connect()
    con.execute("set memory_limit = '3GB'")
    con.close()


@pytest.mark.parametrize(
    "flags, raised",
    [([], True), (["--memory-limit", "512MB"], False)],
)
def test_a_model_runs_with_the_memory_it_asks_for_unless_the_user_chose(tmp_path, flags, raised):
    result = run_cli(
        "build", "--data", str(TINY), "--db", str(tmp_path / "k.duckdb"),
        "--models", "popularity,random", *flags, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert ("model random: DuckDB memory limit 3GB (its own)" in result.stderr) == raised
    assert "model popularity: DuckDB memory limit" not in result.stderr
    con = duckdb.connect(str(tmp_path / "k.duckdb"), read_only=True)
    info = dict(con.execute("select key, value from build_info").fetchall())
    assert info["param.memory_limit"] == ("1GB" if not flags else "512MB")
