"""The package as users reach it: the Python API, output formats, export, the comments and
lineage of the database, progress bars, options after the command, a closed pipe."""

from __future__ import annotations

import csv
import fcntl
import io
import json
import math
import os
import pty
import struct
import subprocess
import sys
import termios
import unicodedata

import duckdb
import numpy as np
import pytest

import kuairec_db
from kuairec_db.errors import UserError
from tests.conftest import ROOT, run_cli


def test_every_relation_and_column_has_a_comment(db_con):
    relations = db_con.execute(
        "select table_name from duckdb_tables() where database_name = current_database() "
        "and comment is null union all select view_name from duckdb_views() "
        "where database_name = current_database() and not internal and comment is null "
        "union all select function_name from duckdb_functions() "  # the macros of sql/macros/
        "where database_name = current_database() and not internal and comment is null "
        "and function_type in ('macro', 'table_macro')"
    ).fetchall()
    assert relations == []
    columns = db_con.execute(
        "select table_name || '.' || column_name from duckdb_columns() "
        "where database_name = current_database() and (comment is null or comment = '')"
    ).fetchall()
    assert columns == []
    n = db_con.execute(
        "select count(*) from duckdb_columns() where database_name = current_database()"
    ).fetchone()[0]
    assert n > 300


def test_build_lineage_covers_every_relation(db_con):
    stored = {
        r[0]
        for r in db_con.execute(
            "select table_name from information_schema.tables "
            "where table_catalog = current_database()"
        ).fetchall()
    }
    lineage = {
        r[0]: r[1:]
        for r in db_con.execute(
            "select relation, materialization, defined_in, reads, input_files from build_lineage"
        ).fetchall()
    }
    assert stored <= set(lineage)
    assert lineage["eval_metrics"][:3] == (
        "view",
        "sql/eval/eval_metrics.sql",
        ["eval_user_metrics"],
    )
    assert lineage["stg_user_features"][3] == ["user_features.csv"]
    assert lineage["stg_big_matrix"][0].startswith("ephemeral")
    assert "small_matrix.csv" in lineage["eval_metrics"][3]
    assert "models/als.py" in lineage["recommendations"][1]
    # a relation stands on every file behind each relation it reads (a walk that memoised a
    # half-visited cycle once lost them, depending on the process's hash seed)
    for relation, (_, _, reads, files) in lineage.items():
        for read in reads:
            if read in lineage:
                assert set(lineage[read][3]) <= set(files), (relation, read)


# ---------------------------------------------------------------------------------------------
# The Python API


def test_api_metrics_match_the_views_and_hold_their_interval(built_db, db_con):
    frame = kuairec_db.metrics(split="test", k=10, with_ci=True, db=built_db)
    expected = db_con.execute(
        "select model, metric, value from eval_metrics where split = 'test' and k = 10"
    ).fetchall()
    got = {(r.model, r.metric): r for r in frame.itertuples()}
    assert len(got) == len(expected) > 0
    for model, metric, value in expected:
        row = got[(model, metric)]
        assert row.value == pytest.approx(value)
        assert row.ci_low <= row.value <= row.ci_high
    plain = kuairec_db.metrics(split="tune", k=[5, 10], with_ci=False, db=db_con)
    assert set(plain.k) == {5, 10} and "ci_low" not in plain.columns
    with pytest.raises(UserError, match="split"):
        kuairec_db.metrics(split="nope", db=db_con)


def test_api_recommend_is_the_table(db_con):
    user_id = db_con.execute("select min(user_id) from recommendations").fetchone()[0]
    frame = kuairec_db.recommend(user_id, model="popularity", n=7, db=db_con)
    expected = db_con.execute(
        "select video_id from recommendations where model = 'popularity' and user_id = ? "
        "and rank <= 7 order by rank",
        [user_id],
    ).fetchall()
    assert frame.video_id.tolist() == [r[0] for r in expected]
    assert frame["rank"].tolist() == list(range(1, 8))
    with pytest.raises(UserError, match="unknown user id"):
        kuairec_db.recommend(-5, db=db_con)
    with pytest.raises(UserError, match="no model"):
        kuairec_db.recommend(user_id, model="nope", db=db_con)


def test_api_similar_videos_by_factors_is_the_cosine(db_con):
    rows = db_con.execute(
        "select video_id, factors from model_item_factors where model = 'als' order by video_id"
    ).fetchall()
    ids = np.array([r[0] for r in rows])
    vectors = np.array([r[1] for r in rows], dtype=float)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    query = int(ids[3])
    cosine = unit @ unit[3]
    order = [i for i in np.lexsort((ids, -cosine)) if ids[i] != query][:5]
    frame = kuairec_db.similar_videos(query, model="als", n=5, db=db_con)
    assert frame.attrs["method"] == "factors"
    assert frame.video_id.tolist() == ids[order].tolist()
    assert frame.score.to_numpy() == pytest.approx(cosine[order], abs=1e-5)


def test_api_similar_videos_without_factors_uses_co_views(db_con):
    pairs = db_con.execute("select user_id, video_id from int_train_interactions").df()
    users_of = pairs.groupby("video_id").user_id.apply(set)
    query = int(users_of.index[0])
    sims = {
        v: len(users & users_of[query]) / math.sqrt(len(users) * len(users_of[query]))
        for v, users in users_of.items()
        if v != query and users & users_of[query]
    }
    best = sorted(sims, key=lambda v: (-sims[v], v))[:5]
    frame = kuairec_db.similar_videos(query, model="popularity", n=5, db=db_con)
    assert frame.attrs["method"] == "coviews"
    assert frame.video_id.tolist() == best
    assert frame.score.tolist() == pytest.approx([sims[v] for v in best])


def test_api_similar_videos_of_itemknn_are_its_own_neighbours(db_con):
    """itemknn's stored S: for two given videos, the mean of S[h, v] over them, computed here
    from the table's rows."""
    rows = db_con.execute(
        "select video_id, neighbour_id, similarity from model_video_neighbours "
        "where model = 'itemknn'"
    ).fetchall()
    assert rows
    given = sorted({r[0] for r in rows})[:2]
    sums: dict = {}
    for video, neighbour, similarity in rows:
        if video in given and neighbour not in given:
            sums[neighbour] = sums.get(neighbour, 0.0) + similarity
    best = sorted(sums, key=lambda v: (-sums[v], v))[:6]
    frame = kuairec_db.recommend_for_history(given, model="itemknn", n=6, db=db_con)
    assert frame.attrs["method"] == "neighbours"
    assert frame.video_id.tolist() == best
    assert frame.score.tolist() == pytest.approx([sums[v] / 2 for v in best])
    one = kuairec_db.similar_videos(given[0], model="itemknn", n=3, db=db_con)
    assert one.attrs["method"] == "neighbours" and given[0] not in one.video_id.tolist()


def test_api_recommend_for_history_leaves_the_history_out(db_con):
    history = [
        r[0]
        for r in db_con.execute(
            "select video_id from int_item_index order by video_id limit 3"
        ).fetchall()
    ]
    frame = kuairec_db.recommend_for_history(history, model="als", n=20, db=db_con)
    assert len(frame) == 20 and not set(frame.video_id) & set(history)
    assert frame.score.is_monotonic_decreasing
    one = kuairec_db.recommend_for_history(history[:1], model="als", n=5, db=db_con)
    same = kuairec_db.similar_videos(history[0], model="als", n=5, db=db_con)
    assert one.video_id.tolist() == same.video_id.tolist()
    with pytest.raises(UserError, match="unknown video"):
        kuairec_db.recommend_for_history([10**9], db=db_con)


def test_api_connect_is_read_only_and_refuses_a_missing_file(built_db, tmp_path):
    con = kuairec_db.connect(built_db)
    with pytest.raises(duckdb.Error):
        con.execute("create table x (a int)")
    con.close()
    with pytest.raises(UserError, match="build it first"):
        kuairec_db.connect(tmp_path / "none.duckdb")


def test_api_build_says_what_it_rebuilt_and_build_info_keeps_what_was_kept(tmp_path):
    db = tmp_path / "api.duckdb"
    first = kuairec_db.build(db, demo=True, demo_scale=0.03, models=["popularity"], bootstrap=20)
    assert first.db == db.resolve() and not first.kept and "model:popularity" in first.rebuilt
    con = duckdb.connect(str(db), read_only=True)
    before = dict(con.execute("select key, value from build_info").fetchall())
    con.close()
    again = run_cli(
        "build",
        "--demo",
        "--demo-scale",
        "0.03",
        "--models",
        "popularity",
        "--bootstrap",
        "20",
        "--k",
        "5,10",
        "--db",
        str(db),
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"updated {db.resolve()}")
    con = duckdb.connect(str(db), read_only=True)
    after = dict(con.execute("select key, value from build_info").fetchall())
    con.close()
    assert after["build_seconds"] == before["build_seconds"]
    assert after["model.popularity.seconds"] == before["model.popularity.seconds"]
    assert (
        after["stage.int_train_interactions.seconds"]
        == (before["stage.int_train_interactions.seconds"])
    )
    assert float(after["update_seconds"]) > 0
    assert after["update_rebuilt"] == "int_eval_cutoffs,int_ideal_dcg"
    assert after["param.k"] == "[5, 10]"
    same = kuairec_db.build(
        db, demo=True, demo_scale=0.03, models=["popularity"], bootstrap=20, k=[5, 10]
    )
    assert same.up_to_date


# ---------------------------------------------------------------------------------------------
# The command line


def test_metrics_csv_and_json_lines_carry_the_values(built_db, db_con):
    values = dict(
        ((m, metric), v)
        for m, metric, v in db_con.execute(
            "select model, metric, value from eval_metrics where split = 'test' and k = 10"
        ).fetchall()
    )
    as_csv = run_cli("metrics", "--db", str(built_db), "--format", "csv")
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == len(values)
    for row in rows:
        assert float(row["value"]) == pytest.approx(values[(row["model"], row["metric"])])
    as_json = run_cli("metrics", "--db", str(built_db), "--format", "json", "--ci")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(records) == len(values)
    assert all(r["ci_low"] <= r["value"] <= r["ci_high"] for r in records)
    table = run_cli("metrics", "--db", str(built_db), "--ci", "--metrics", "ndcg")
    assert "95% bootstrap interval" in table.stdout
    assert table.stdout.count("[") >= len({m for m, _ in values})


def test_recommend_json_and_csv(built_db, db_con):
    user_id = db_con.execute("select min(user_id) from recommendations").fetchone()[0]
    out = run_cli("recommend", str(user_id), "--db", str(built_db), "--format", "json", "--n", "3")
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["rank"] for r in records] == [1, 2, 3]
    out = run_cli("recommend", str(user_id), "--db", str(built_db), "--format", "csv", "--n", "3")
    assert len(list(csv.DictReader(io.StringIO(out.stdout)))) == 3


def _cells(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def test_recommend_table_aligns_chinese_text_by_display_width(built_db, db_con):
    user_id = db_con.execute("select min(user_id) from recommendations").fetchone()[0]
    out = run_cli("recommend", str(user_id), "--db", str(built_db), "--n", "20")
    header, *rows = out.stdout.splitlines()[1:]
    secs_end = _cells(header[: header.index("secs") + 4])
    caption_at = _cells(header[: header.index("caption")])
    assert any(_cells(line) != len(line) for line in rows)  # there is wide text to align
    for line in rows:
        # the right-aligned duration ends, and the caption starts, at the header's cells
        cut = next(i for i in range(len(line) + 1) if _cells(line[:i]) >= secs_end)
        assert _cells(line[:cut]) == secs_end and line[cut - 1] in "0123456789-"
        assert line[cut:] == "" or line[cut : cut + 2] == "  "
        if line[cut:].strip():
            assert _cells(line[: cut + 2]) == caption_at


def test_a_closed_pipe_ends_quietly(built_db):
    proc = subprocess.Popen(
        [sys.executable, "-m", "kuairec_db", "metrics", "--db", str(built_db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line is written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert err.decode().strip() == ""


def test_reading_commands_work_without_fcntl(built_db):
    # a platform without fcntl (Windows): the import of the package and metrics must not fail
    code = (
        "import sys; sys.modules['fcntl'] = None; import kuairec_db; from kuairec_db.cli "
        f"import main; sys.exit(main(['metrics', '--db', {str(built_db)!r}, '--format', 'csv']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("model,split,k,metric,value,n_users")


def test_quiet_and_debug_after_the_command(tmp_path):
    result = run_cli(
        "build",
        "--demo",
        "--demo-scale",
        "0.03",
        "--models",
        "popularity",
        "--db",
        str(tmp_path / "q.duckdb"),
        "-q",
        "--debug",
    )
    assert result.returncode == 0, result.stderr
    assert "loading and preparing" not in result.stderr
    assert "SYNTHETIC DEMO" in result.stderr  # warnings stay
    loud = run_cli("metrics", "--db", str(tmp_path / "q.duckdb"), "-q")
    assert loud.returncode == 0 and "popularity" in loud.stdout


def test_export_writes_parquet_and_csv(built_db, tmp_path, db_con):
    out = tmp_path / "export"
    result = run_cli("export", "--db", str(built_db), "--to", str(out))
    assert result.returncode == 0, result.stderr
    for name in ("recommendations", "eval_metrics", "build_lineage", "data_quality"):
        n = db_con.execute(f"select count(*) from {name}").fetchone()[0]
        assert duckdb.sql(f"select count(*) from '{out / name}.parquet'").fetchall()[0][0] == n
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    result = run_cli(
        "export", "--db", str(built_db), "--to", str(out), "--format", "csv", "eval_metrics"
    )
    assert result.returncode == 0
    rows = list(csv.DictReader(open(out / "eval_metrics.csv", encoding="utf-8")))
    assert len(rows) == db_con.execute("select count(*) from eval_metrics").fetchone()[0]
    bad = run_cli("export", "--db", str(built_db), "--to", str(out), "nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error: no relation nope")
    assert len(bad.stderr.strip().splitlines()) == 1


def _stderr_on_a_terminal(*args: str, cwd, size: tuple[int, int] | None = None) -> str:
    """stderr of the CLI run on a pseudo-terminal; SIZE (rows, columns) or, by default, one
    that reports no size (0 x 0), as some terminals and CI consoles do."""
    leader, follower = pty.openpty()
    if size is not None:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "kuairec_db", *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        cwd=cwd,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=120)
    os.close(leader)
    assert proc.returncode == 0
    return b"".join(chunks).decode("utf-8", "replace")


def test_progress_bars_on_a_terminal_only_and_not_with_q(tmp_path):
    shown = _stderr_on_a_terminal("demo", "--out", "d1", "--scale", "0.02", cwd=tmp_path)
    assert "generating the demo" in shown and "file" in shown
    quiet = _stderr_on_a_terminal("demo", "--out", "d2", "--scale", "0.02", "-q", cwd=tmp_path)
    assert "generating the demo" not in quiet
    piped = run_cli("demo", "--out", str(tmp_path / "d3"), "--scale", "0.02")
    assert "generating the demo" not in piped.stderr


def test_model_fits_show_progress_on_a_terminal_and_not_with_q(tmp_path):
    build = ("build", "--demo", "--demo-scale", "0.03", "--models", "popularity,bpr,hybrid")
    shown = _stderr_on_a_terminal(*build, "--db", "a.duckdb", cwd=tmp_path, size=(24, 100))
    assert "generating the demo" in shown
    assert "bpr epochs" in shown  # the bar over BPR's sharded epochs
    assert "hybrid: cross-validating" in shown
    quiet = _stderr_on_a_terminal(*build, "--db", "b.duckdb", "-q", cwd=tmp_path, size=(24, 100))
    assert "bpr epochs" not in quiet and "cross-validating" not in quiet
    assert "generating the demo" not in quiet


def test_a_users_own_models_folder(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "newest.sql").write_text(
        "-- newest: one score per video: the larger the id, the better.\n"
        "select video_id, video_id::double as score from int_item_index\n"
    )
    db = tmp_path / "m.duckdb"
    result = run_cli(
        "build",
        "--demo",
        "--demo-scale",
        "0.03",
        "--models",
        "popularity,newest",
        "--models-dir",
        str(mine),
        "--db",
        str(db),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    top = con.execute(
        "select max(video_id) = max(video_id) filter (where rank = 1) from recommendations "
        "where model = 'newest'"
    ).fetchone()[0]
    con.close()
    assert top
    # ./models of the working folder is the default
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "newest.sql").write_text((mine / "newest.sql").read_text())
    again = run_cli(
        "build",
        "--demo",
        "--demo-scale",
        "0.03",
        "--models",
        "newest",
        "--db",
        str(tmp_path / "n.duckdb"),
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    missing = run_cli("build", "--demo", "--models-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert missing.returncode == 2 and "no such folder" in missing.stderr


def test_the_walkthrough_runs(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "walkthrough.py"),
            "--db",
            str(tmp_path / "w.duckdb"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "walkthrough done" in result.stdout
