"""The CLI end to end, as a user runs it: real subprocesses, real files, real DuckDB."""

from __future__ import annotations

import fcntl
import hashlib
import re
import shutil
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from kuairec_db.export import PUBLIC_RELATIONS
from kuairec_db.schema import SOURCES
from tests.conftest import run_cli

# The public relations a default build has: the exposure study's come from exposure-study.
PUBLIC = [r for r in PUBLIC_RELATIONS if r not in ("eval_exposure_study", "eval_temporal_split")]
README = Path(__file__).resolve().parents[1] / "README.md"


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == errors[0]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".building-" in p.name or ".work-" in p.name)


# ---------------------------------------------------------------------------------------------
# help and the happy path


@pytest.mark.parametrize(
    "command", [[], ["build"], ["download"], ["recommend"], ["metrics"], ["demo"]]
)
def test_help(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout
    if command:
        assert "example" in result.stdout


def test_build_without_data_uses_the_demo_loudly(tmp_path):
    # The README's second set-up command, in an empty folder.
    result = run_cli("build", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SYNTHETIC DEMO" in result.stderr
    assert "python -m kuairec_db download" in result.stderr
    db = tmp_path / "kuairec.duckdb"
    assert db.is_file()
    assert leftovers(tmp_path) == []
    con = duckdb.connect(str(db), read_only=True)
    info = dict(con.execute("select key, value from build_info").fetchall())
    assert info["data_kind"] == "synthetic_demo"
    assert info["storage_version"] == "v1.0.0"
    assert info["param.top_n"] == "100"
    assert "file.big_matrix.csv.sha256" in info


def test_public_contract_exists_and_is_documented(db_con):
    tables = {
        r[0]: r[1]
        for r in db_con.execute(
            "select table_name, comment from duckdb_tables() union all "
            "select view_name, comment from duckdb_views() where not internal"
        ).fetchall()
    }
    for name in PUBLIC:
        assert name in tables, name
        assert tables[name], f"{name} has no COMMENT ON"
        undocumented = db_con.execute(
            "select column_name from duckdb_columns() where table_name = ? and comment is null",
            [name],
        ).fetchall()
        assert undocumented == [], (name, undocumented)


def test_readme_public_table_is_the_export_list():
    # Every relation in the README's table of public relations is exported by default.
    text = README.read_text(encoding="utf-8")
    table = text.split("### The public relations", 1)[1].split("\n\n|", 1)[1].split("\n\n", 1)[0]
    named = set()
    for row in table.splitlines()[2:]:
        named.update(re.findall(r"`([a-z_]+)`", row.split("|")[1]))
    assert len(named) >= 10, named
    assert named <= set(PUBLIC_RELATIONS), named - set(PUBLIC_RELATIONS)


def test_recommendations_contract(db_con):
    n_users, n_models = db_con.execute(
        "select count(distinct user_id), count(distinct model) from recommendations"
    ).fetchone()
    assert n_models >= 2
    assert (
        n_users
        == db_con.execute("select count(distinct user_id) from int_big_matrix_events").fetchone()[0]
    )
    # every user gets exactly top_n ranks 1..N, no training video among them
    bad = db_con.execute("""
        select model, user_id from recommendations group by all
        having count(*) <> 100 or min(rank) <> 1 or max(rank) <> 100
            or count(distinct video_id) <> 100
    """).fetchall()
    assert bad == []
    seen = db_con.execute("""
        select count(*) from recommendations as r
        inner join int_train_interactions as t on r.user_id = t.user_id and r.video_id = t.video_id
    """).fetchone()[0]
    assert seen == 0


def test_eval_rankings_only_rank_candidates(db_con):
    outside = db_con.execute("""
        select count(*) from eval_rankings as r
        where not exists (select 1 from eval_ground_truth as g
                          where g.user_id = r.user_id and g.video_id = r.video_id)
    """).fetchone()[0]
    assert outside == 0
    per_user = db_con.execute(
        "select distinct count(*) from eval_rankings group by model, user_id"
    ).fetchall()
    assert per_user == [(100,)]


def test_split_is_stable_and_about_a_fifth(db_con):
    rows = db_con.execute("select distinct user_id, split from eval_ground_truth").fetchall()
    for user_id, split in rows:
        bucket = int(hashlib.md5(str(user_id).encode()).hexdigest()[:8], 16) % 100
        assert split == ("tune" if bucket < 20 else "test")
    share = sum(s == "tune" for _, s in rows) / len(rows)
    assert 0.1 < share < 0.3


def test_als_and_popularity_beat_random_on_the_demo(db_con):
    """In the calibrated demo, as in KuaiRec, the video decides most of the watch time and the
    user's taste nothing, so popularity is hard to beat; ALS, which learns what the feed showed
    each user, still finds more than random."""
    ndcg = dict(
        db_con.execute(
            "select model, value from eval_metrics where split = 'test' and k = 10 "
            "and metric = 'ndcg'"
        ).fetchall()
    )
    assert ndcg["als"] > ndcg["random"]
    assert ndcg["popularity"] > ndcg["random"]


def test_duckdb_cli_program_reads_the_file(built_db):
    exe = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")
    assert exe, "the duckdb command-line program (duckdb-cli) is a dev dependency"
    import subprocess

    sql = (
        "select count(*) from recommendations_explained; "
        "select count(*) from eval_metrics; select count(*) from data_quality; "
        "select count(*) from eval_user_metrics; select version();"
    )
    result = subprocess.run(
        [exe, "-readonly", "-csv", str(built_db), "-c", sql],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Error" not in result.stdout + result.stderr


def test_recommend_prints_a_list(built_db, db_con):
    user_id = db_con.execute("select min(user_id) from recommendations").fetchone()[0]
    result = run_cli("recommend", str(user_id), "--db", str(built_db), "--n", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"top 5 for user {user_id} by als:"
    assert len(lines) == 2 + 5
    first_video = db_con.execute(
        "select video_id from recommendations where model = 'als' and user_id = ? and rank = 1",
        [user_id],
    ).fetchone()[0]
    assert lines[2].split()[1] == str(first_video)


def test_recommend_unknown_user_and_model(built_db):
    assert_one_line_error(
        run_cli("recommend", "987654321", "--db", str(built_db)), "unknown user id 987654321"
    )
    assert_one_line_error(
        run_cli("recommend", "1", "--model", "nope", "--db", str(built_db)), "no model 'nope'"
    )


def test_metrics_prints_the_leaderboard(built_db, db_con):
    result = run_cli("metrics", "--db", str(built_db))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ndcg@10" in lines[1]
    rows = {ln.split()[0]: ln.split()[1:] for ln in lines[2:]}
    assert set(rows) >= {"als", "popularity"}
    header = lines[1].split()[1:]
    ndcg = float(rows["als"][header.index("ndcg@10")])
    expected = db_con.execute(
        "select value from eval_metrics where model = 'als' and split = 'test' and k = 10 "
        "and metric = 'ndcg'"
    ).fetchone()[0]
    assert ndcg == pytest.approx(expected, abs=1e-4)


def test_metrics_without_database(tmp_path):
    assert_one_line_error(
        run_cli("metrics", "--db", str(tmp_path / "none.duckdb")), "build it first"
    )


# ---------------------------------------------------------------------------------------------
# data sources


def _zip_demo(demo_dir: Path, archive: Path, prefix: str = "KuaiRec 2.0/data/") -> Path:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, _ in SOURCES.values():
            zf.write(demo_dir / name, prefix + name)
    return archive


def test_build_from_zip_and_found_without_data_flag(tmp_path, small_demo_dir):
    _zip_demo(small_demo_dir, tmp_path / "KuaiRec.zip")
    result = run_cli("build", "--models", "popularity", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "SYNTHETIC" not in result.stderr
    con = duckdb.connect(str(tmp_path / "kuairec.duckdb"), read_only=True)
    info = dict(con.execute("select key, value from build_info").fetchall())
    assert info["data_kind"] == "kuairec_files"
    assert info["data_location"].endswith("KuaiRec.zip")
    digest = hashlib.sha256((tmp_path / "KuaiRec.zip").read_bytes()).hexdigest()
    assert info["file.big_matrix.csv.sha256"] == digest
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".kuairec.duckdb.lock",
        "KuaiRec.zip",
        "kuairec.duckdb",
    ]


def test_build_from_unpacked_archive_folder_and_env(tmp_path, small_demo_dir):
    data = tmp_path / "somewhere" / "KuaiRec 2.0" / "data"
    shutil.copytree(small_demo_dir, data)
    db = tmp_path / "out.duckdb"
    result = run_cli(
        "build",
        "--models",
        "popularity",
        "--db",
        str(db),
        cwd=tmp_path,
        env={"KUAIREC_DATA": str(tmp_path / "somewhere")},
    )
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    location = con.execute("select value from build_info where key = 'data_location'").fetchone()
    assert location[0] == str(data)


def test_crlf_files_are_read(tmp_path, small_demo_dir):
    data = tmp_path / "crlf"
    shutil.copytree(small_demo_dir, data)
    for name in ("item_categories.csv", "user_features.csv"):
        raw = (data / name).read_bytes().replace(b"\n", b"\r\n")
        (data / name).write_bytes(raw)
    db = tmp_path / "k.duckdb"
    result = run_cli("build", "--models", "popularity", "--data", str(data), "--db", str(db))
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    n = con.execute("select count(*) from stg_item_categories").fetchone()[0]
    assert n == sum(1 for _ in open(small_demo_dir / "item_categories.csv")) - 1


# ---------------------------------------------------------------------------------------------
# bad input: one line, non-zero exit, the previous database intact


def _rewrite(path: Path, edit) -> None:
    path.write_bytes(edit(path.read_bytes()))


def _nth_line(data: bytes, n: int, edit) -> bytes:
    lines = data.split(b"\n")
    lines[n - 1] = edit(lines[n - 1])
    return b"\n".join(lines)


BAD_INPUTS = {
    "missing_file": (
        lambda d: (d / "item_categories.csv").unlink(),
        ["missing KuaiRec file", "item_categories.csv"],
    ),
    "missing_column": (
        lambda d: _rewrite(
            d / "small_matrix.csv", lambda b: b.replace(b"watch_ratio", b"ratio", 1)
        ),
        ["small_matrix.csv", "line 1", "missing column", "watch_ratio"],
    ),
    "wrong_type": (
        lambda d: _rewrite(
            d / "big_matrix.csv",
            lambda b: _nth_line(b, 5, lambda ln: b"oops" + ln[ln.index(b",") :]),
        ),
        ["big_matrix.csv", "line 5", "column user_id", '"oops" is not an integer'],
    ),
    "bad_timestamp": (
        lambda d: _rewrite(
            d / "big_matrix.csv",
            lambda b: _nth_line(b, 7, lambda ln: ln.replace(b"2020-0", b"2020-x", 1)),
        ),
        ["big_matrix.csv", "line 7", "column time"],
    ),
    "truncated_last_line": (
        lambda d: _rewrite(d / "big_matrix.csv", lambda b: b[:-15]),
        ["big_matrix.csv", "last line", "cut short"],
    ),
    "short_line": (
        lambda d: _rewrite(
            d / "big_matrix.csv", lambda b: _nth_line(b, 9, lambda ln: ln[: ln.rindex(b",")])
        ),
        ["big_matrix.csv", "line 9", "7 fields where 8 were expected"],
    ),
    "empty_file": (
        lambda d: (d / "user_features.csv").write_bytes(b""),
        ["user_features.csv", "empty"],
    ),
    "header_only": (
        lambda d: _rewrite(d / "small_matrix.csv", lambda b: b[: b.index(b"\n") + 1]),
        ["small_matrix.csv", "no rows"],
    ),
    "not_utf8": (
        lambda d: _rewrite(
            d / "kuairec_caption_category.csv", lambda b: b + b'99999,x,"\xff\xfe",[],1,a,2,b,3,c\n'
        ),
        ["kuairec_caption_category.csv", "utf-8"],
    ),
    "truncated_caption_file": (
        lambda d: _rewrite(d / "kuairec_caption_category.csv", lambda b: b[: len(b) // 2]),
        ["kuairec_caption_category.csv", "line"],
    ),
}


@pytest.fixture()
def previous_db(tmp_path, built_db):
    """A good database at the target path, as a user would have from an earlier build."""
    db = tmp_path / "kuairec.duckdb"
    shutil.copy(built_db, db)
    return db


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_one_line_and_previous_database_intact(
    case, tmp_path, small_demo_dir, previous_db
):
    breaker, fragments = BAD_INPUTS[case]
    data = tmp_path / "data"
    shutil.copytree(small_demo_dir, data)
    breaker(data)
    before = md5(previous_db)
    result = run_cli("build", "--data", str(data), "--db", str(previous_db))
    assert_one_line_error(result, *fragments)
    assert md5(previous_db) == before
    assert leftovers(tmp_path) == []
    con = duckdb.connect(str(previous_db), read_only=True)
    assert con.execute("select count(*) from recommendations").fetchone()[0] > 0


def test_bad_zip_files(tmp_path, small_demo_dir, previous_db):
    garbage = tmp_path / "KuaiRec.zip"
    garbage.write_bytes(b"this is not a zip archive\n" * 10)
    assert_one_line_error(
        run_cli("build", "--data", str(garbage), "--db", str(previous_db)),
        "KuaiRec.zip",
        "not a zip",
    )
    good = _zip_demo(small_demo_dir, tmp_path / "good.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert_one_line_error(run_cli("build", "--data", str(cut), "--db", str(previous_db)), "cut.zip")
    partial = tmp_path / "partial.zip"
    with zipfile.ZipFile(partial, "w") as zf:
        zf.write(small_demo_dir / "big_matrix.csv", "KuaiRec 2.0/data/big_matrix.csv")
    assert_one_line_error(
        run_cli("build", "--data", str(partial), "--db", str(previous_db)),
        "partial.zip",
        "lacks",
        "small_matrix.csv",
    )
    assert leftovers(tmp_path) == []
    assert (
        duckdb.connect(str(previous_db), read_only=True)
        .execute("select count(*) from build_info")
        .fetchone()[0]
        > 0
    )


def test_bad_options(tmp_path):
    db = str(tmp_path / "x.duckdb")
    assert_one_line_error(
        run_cli("build", "--demo", "--db", db, "--models", "nope"), "unknown model", "nope"
    )
    assert_one_line_error(run_cli("build", "--demo", "--db", db, "--k", "5,500"), "--top-n")
    assert_one_line_error(
        run_cli("build", "--demo", "--db", db, "--set", "als.nope=1"), "als has no setting nope"
    )
    assert_one_line_error(
        run_cli("build", "--data", str(tmp_path / "none"), "--db", db), "no such file or folder"
    )
    assert not (tmp_path / "x.duckdb").exists()


def test_second_build_on_same_target_refuses_at_once(tmp_path):
    db = tmp_path / "kuairec.duckdb"
    with open(tmp_path / ".kuairec.duckdb.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242")
        held.flush()
        result = run_cli("build", "--demo", "--db", str(db), timeout=30)
    assert_one_line_error(result, "is busy", "another build")
    assert not db.exists()


def test_leftovers_of_a_killed_build_are_removed(tmp_path):
    (tmp_path / ".kuairec.duckdb.building-999999").write_bytes(b"partial")
    (tmp_path / ".kuairec.duckdb.work-999999").mkdir()
    result = run_cli("build", "--demo", "--models", "popularity", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert leftovers(tmp_path) == []
    assert "interrupted build" in result.stderr


# relations that record the run itself (timings, paths), not its results
RUN_RECORDS = ("build_info", "build_fingerprints", "build_lineage")


def test_same_data_and_settings_give_identical_relations_on_any_thread_count(
    tmp_path, demo_dir, built_db
):
    # built_db used every core; one thread changes the order in which a parallel aggregate or a
    # BLAS product adds its terms, which is what used to change the last bits of a double (and
    # so, at times, a ranking), even between two runs with the same thread count
    db = tmp_path / "again.duckdb"
    first = duckdb.connect(str(built_db), read_only=True)
    models = [r[0] for r in first.execute("select distinct model from recommendations").fetchall()]
    first.close()
    result = run_cli(
        "build",
        "--data",
        str(demo_dir),
        "--db",
        str(db),
        "--threads",
        "1",
        "--models",
        ",".join(sorted(models)),
    )
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    con.execute(f"attach '{built_db}' as first (read_only)")
    # tables by content, views by definition (a view is its SQL over the tables); the views
    # users read first by content as well (the bootstrap views take a minute to compare, and
    # the SQL they run over identical tables is the same)
    listing = (
        "select table_name, table_type from information_schema.tables "
        "where table_catalog = ? and table_schema = 'main'"
    )
    relations = {
        catalog: dict(con.execute(listing, [catalog]).fetchall()) for catalog in (db.stem, "first")
    }
    assert relations[db.stem] == relations["first"]
    views_by_content = {"eval_metrics", "data_profile", "data_quality", "eval_user_metrics"}
    compared = sorted(
        name
        for name, kind in relations["first"].items()
        if name not in RUN_RECORDS and (kind == "BASE TABLE" or name in views_by_content)
    )
    assert {"recommendations", "eval_rankings", "eval_metrics", "data_profile"} <= set(compared)
    assert views_by_content <= set(compared)
    definitions = {
        catalog: dict(
            con.execute(
                "select view_name, sql from duckdb_views() where database_name = ? "
                "and schema_name = 'main' and not internal",
                [catalog],
            ).fetchall()
        )
        for catalog in (db.stem, "first")
    }
    assert definitions[db.stem] == definitions["first"]
    assert len(definitions["first"]) == sum(k == "VIEW" for k in relations["first"].values())
    differ = {}
    for name in compared:
        n = con.execute(
            f"select count(*) from ((from {name} except all from first.{name}) "
            f"union all (from first.{name} except all from {name}))"
        ).fetchone()[0]
        if n:
            differ[name] = n
    assert differ == {}


def test_input_that_is_not_a_readable_file(tmp_path, small_demo_dir):
    # (Tests run as root in CI, where a chmod 000 file is still readable: use a folder instead.)
    data = tmp_path / "data"
    shutil.copytree(small_demo_dir, data)
    (data / "social_network.csv").unlink()
    (data / "social_network.csv").mkdir()
    assert_one_line_error(
        run_cli("build", "--data", str(data), "--db", str(tmp_path / "d")), "social_network.csv"
    )


def test_settings_file_is_applied_and_checked(tmp_path, small_demo_dir):
    db = tmp_path / "k.duckdb"
    good = tmp_path / "settings.toml"
    # a section for a model this build does not run is kept for later builds (a section naming
    # no model at all is an error: tests/test_safety.py)
    good.write_text("[als]\nfactors = 16\niterations = 2\n\n[bpr]\nfactors = 8\n")
    result = run_cli(
        "build",
        "--data",
        str(small_demo_dir),
        "--db",
        str(db),
        "--models",
        "als",
        "--config",
        str(good),
        "--set",
        "als.iterations=3",
    )
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    info = dict(con.execute("select key, value from build_info").fetchall())
    assert info["model.als.settings"] == '{"factors": 16, "iterations": 3, "regularization": 0.15}'
    assert info["param.config"] == str(good)
    dims = con.execute("select distinct len(factors) from model_user_factors").fetchall()
    assert dims == [(16,)]
    con.close()
    bad = tmp_path / "bad.toml"
    bad.write_text("[als]\nfactor = 16\n")
    assert_one_line_error(
        run_cli("build", "--demo", "--db", str(db), "--config", str(bad)),
        "bad.toml",
        "has no setting factor",
    )
    broken = tmp_path / "broken.toml"
    broken.write_text("[als\n")
    assert_one_line_error(
        run_cli("build", "--demo", "--db", str(db), "--config", str(broken)),
        "broken.toml",
        "not a valid TOML",
    )
