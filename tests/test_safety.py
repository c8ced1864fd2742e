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
    """SHA-256 of every file (and the target of every link) under the folders, by path; the
    build's own lock file (``.NAME.lock``, left in place by design) is not the user's."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.name.startswith(".") and path.name.endswith(".lock"):
                continue
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
def data(tmp_path, small_demo_dir) -> Path:
    """A private copy of the small demo's files (a test may damage or write into it)."""
    folder = tmp_path / "data"
    shutil.copytree(small_demo_dir, folder)
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


# ---------------------------------------------------------------------------------------------
# Resources


@pytest.mark.parametrize("command", ["build", "tune", "exposure-study"])
def test_absurd_thread_counts_are_refused(command, tmp_path, data, previous_db):
    before = snapshot(tmp_path)
    extra = ["--data", str(data)] if command == "build" else []
    result = run_cli(command, "--db", str(previous_db), *extra, "--threads", "100000", timeout=60)
    assert_refused(result, "--threads 100000", "per core")
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# Wrong or unhelpful messages


@pytest.mark.parametrize(
    ("n", "fragment"),
    [("0", "at least 1"), ("-3", "at least 1"), ("500", "holds 100 videos per user")],
)
def test_recommend_n_outside_what_the_database_holds(n, fragment, tmp_path, previous_db):
    before = snapshot(tmp_path)
    result = run_cli("recommend", "14", "--db", str(previous_db), "--model", "popularity", "--n", n)
    assert_refused(result, f"--n {n}", fragment)
    assert snapshot(tmp_path) == before


def _nth_line(data: bytes, n: int, edit) -> bytes:
    lines = data.split(b"\n")
    lines[n - 1] = edit(lines[n - 1])
    return b"\n".join(lines)


def _first_field(line: bytes, value: bytes) -> bytes:
    return value + line[line.index(b",") :]


def _second_field(line: bytes, value: bytes) -> bytes:
    fields = line.split(b",")
    return b",".join([fields[0], value, *fields[2:]])


def _big_quoted_caption(line: bytes) -> bytes:
    video_id, _, rest = line.partition(b",")
    return video_id + b',"' + b"z" * 50_000_000 + b'",' + rest.split(b",", 1)[1]


BAD_FILES = {
    "header_over_128_kib": (
        "small_matrix.csv",
        lambda b: _nth_line(b, 1, lambda ln: ln + b"," + b"x" * 200_000),
        ["line 1", "header is longer than 64 KiB"],
    ),
    "repeated_column": (
        "small_matrix.csv",
        lambda b: _nth_line(b, 1, lambda ln: ln + b",user_id"),
        ["line 1", "user_id appear more than once"],
    ),
    "quoted_field_of_50_mb": (
        "kuairec_caption_category.csv",
        lambda b: _nth_line(b, 3, _big_quoted_caption),
        ["line 3", "longer than 2 MB"],
    ),
    "unquoted_line_of_50_mb": (
        "big_matrix.csv",
        lambda b: _nth_line(b, 4, lambda ln: ln + b"9" * 50_000_000),
        ["line 4", "longer than 2 MB"],
    ),
    "line_of_3_mb": (
        "big_matrix.csv",
        lambda b: _nth_line(b, 4, lambda ln: ln + b"9" * 3_000_000),
        ["line 4", "longer than 2 MB"],
    ),
    "id_out_of_range": (
        "big_matrix.csv",
        lambda b: _nth_line(b, 4, lambda ln: _first_field(ln, b"3000000000")),
        ["line 4", "column user_id", "3000000000 is out of range"],
    ),
    "negative_user_id": (
        "big_matrix.csv",
        lambda b: _nth_line(b, 4, lambda ln: _first_field(ln, b"-5")),
        ["column user_id", "-5 is negative"],
    ),
    "negative_video_id": (
        "small_matrix.csv",
        lambda b: _nth_line(b, 6, lambda ln: _second_field(ln, b"-7")),
        ["column video_id", "-7 is negative"],
    ),
    "negative_id_in_a_stored_table": (
        "user_features.csv",
        lambda b: _nth_line(b, 2, lambda ln: _first_field(ln, b"-1")),
        ["column user_id", "-1 is negative"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_gets_its_own_line(case, tmp_path, data, previous_db):
    name, edit, fragments = BAD_FILES[case]
    path = data / name
    path.write_bytes(edit(path.read_bytes()))
    before = snapshot(tmp_path)
    result = run_cli("-q", "build", "--data", str(data), "--db", str(previous_db))
    assert_refused(result, f"{name}:", *fragments)
    assert snapshot(tmp_path) == before


def test_zip_member_without_line_ends_is_not_read_whole(tmp_path, data, previous_db):
    import zipfile

    archive = tmp_path / "KuaiRec.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(data.iterdir()):
            if path.name == "social_network.csv":
                # 256 MiB without a line end, written in blocks (compresses to a few hundred KB)
                with zf.open(f"KuaiRec 2.0/data/{path.name}", "w", force_zip64=True) as out:
                    for _ in range(256):
                        out.write(b"y" * (1 << 20))
            else:
                zf.write(path, f"KuaiRec 2.0/data/{path.name}")
    shutil.rmtree(data)
    before = snapshot(tmp_path)
    result = run_cli("-q", "build", "--data", str(archive), "--db", str(previous_db))
    assert_refused(result, "KuaiRec.zip:KuaiRec 2.0/data/social_network.csv", "line 1", "64 KiB")
    assert snapshot(tmp_path) == before


def test_zip_headers_are_checked_before_anything_is_extracted(tmp_path, data, previous_db):
    import zipfile

    social = data / "social_network.csv"
    social.write_bytes(b"user_id,friends\n" + social.read_bytes().split(b"\n", 1)[1])
    archive = tmp_path / "KuaiRec.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(data.iterdir()):
            zf.write(path, f"KuaiRec 2.0/data/{path.name}")
    shutil.rmtree(data)
    before = snapshot(tmp_path)
    result = run_cli("build", "--data", str(archive), "--db", str(previous_db))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "social_network.csv: line 1: missing column" in last
    # the big matrix (hundreds of MB in the real archive) was never written out
    assert "extracting" not in result.stderr, result.stderr
    assert snapshot(tmp_path) == before


def test_blank_line_after_the_header_is_not_an_empty_file(tmp_path, data):
    path = data / "small_matrix.csv"
    plain = run_cli(
        "build", "--data", str(data), "--db", str(tmp_path / "a.duckdb"), "--models", "popularity"
    )
    assert plain.returncode == 0, plain.stderr
    path.write_bytes(_nth_line(path.read_bytes(), 2, lambda ln: b"\n" + ln))
    blank = run_cli(
        "build", "--data", str(data), "--db", str(tmp_path / "b.duckdb"), "--models", "popularity"
    )
    assert blank.returncode == 0, blank.stderr
    counts = []
    for name in ("a.duckdb", "b.duckdb"):
        con = duckdb.connect(str(tmp_path / name), read_only=True)
        counts.append(con.execute("select count(*) from int_ground_truth").fetchone()[0])
        con.close()
    assert counts[0] == counts[1] > 0


@pytest.fixture()
def tiny_disk(tmp_path):
    """A 3 MB tmpfs: the database of the demo cannot be written there."""
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_disk_full_names_the_target_folder_not_an_input_file(tiny_disk, tmp_path, data):
    db = tiny_disk / "kuairec.duckdb"
    before = snapshot(data)
    result = run_cli("-q", "build", "--data", str(data), "--db", str(db), "--models", "popularity")
    line = assert_refused(result, "disk full", str(tiny_disk))
    assert ".csv" not in line.split("(")[0], line
    assert snapshot(data) == before
    assert sorted(p.name for p in tiny_disk.iterdir()) == [".kuairec.duckdb.lock"]


def test_ctrl_c_inside_a_duckdb_query_is_interrupted_130(tmp_path, demo_dir, previous_db):
    # the default scale: the evaluation views of the small demo may end before the signal
    import signal
    import subprocess
    import sys

    before = snapshot(tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kuairec_db",
            "build",
            "--data",
            str(demo_dir),
            "--db",
            str(previous_db),
            "--force",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        # as at a terminal: a shell's background job (nohup, &) starts with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("evaluation views"):  # from here on DuckDB does the work
            proc.send_signal(signal.SIGINT)
            break
    rest = proc.stderr.read()
    proc.wait(timeout=120)
    lines = rest.strip().splitlines()
    assert proc.returncode == 130, "".join(seen) + rest
    assert lines[-1] == "error: interrupted", rest
    assert "internal error" not in rest and "Traceback" not in rest
    assert snapshot(tmp_path) == before


def test_exposure_study_busy_line_says_busy_once(tmp_path, previous_db):
    import fcntl

    before = snapshot(tmp_path)
    lock = tmp_path / ".kuairec.duckdb.lock"
    with open(lock, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_cli("exposure-study", "--db", str(previous_db), timeout=60)
    line = assert_refused(result, str(previous_db), "is busy")
    assert line.count("is busy") == 1, line
    lock.unlink()
    assert snapshot(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# Settings that used to be accepted but wrong

BAD_SETTINGS = {
    "als_factors_negative": (["--set", "als.factors=-4"], "als.factors"),
    "als_factors_zero": (["--set", "als.factors=0"], "als.factors"),
    "als_iterations_negative": (["--set", "als.iterations=-1"], "als.iterations"),
    "als_regularization_nan": (["--set", "als.regularization=nan"], "als.regularization"),
    "hybrid_l2_text": (["--set", "hybrid.l2=abc"], "hybrid.l2"),
    "ease_dtype": (["--set", "ease.dtype=float16"], "ease.dtype"),
    "itemknn_b_above_one": (["--set", "itemknn.B=2"], "itemknn.B"),
    "bpr_fit_threads_huge": (
        ["--models", "bpr", "--set", "bpr.fit_threads=100000"],  # bpr is opt-in
        "bpr.fit_threads",
    ),
    "confidence_alpha_nan": (["--confidence-alpha", "nan"], "--confidence-alpha"),
    "confidence_alpha_minus_inf": (["--confidence-alpha=-inf"], "--confidence-alpha"),
    "label_threshold_nan": (["--label-threshold", "nan"], "--label-threshold"),
    "demo_scale_nan": (["--demo", "--demo-scale", "nan"], "--demo-scale"),
    "label_quantile_one": (["--label-quantile", "1"], "--label-quantile"),
    "bootstrap_zero": (["--bootstrap", "0"], "--bootstrap"),
}


@pytest.mark.parametrize("case", sorted(BAD_SETTINGS))
def test_bad_setting_is_refused_before_any_work(case, tmp_path, data, previous_db):
    args, named = BAD_SETTINGS[case]
    if "--demo" not in args:
        args = ["--data", str(data), *args]
    before = snapshot(tmp_path)
    result = run_cli("build", "--db", str(previous_db), *args)
    assert_refused(result, named, "expected")
    assert snapshot(tmp_path) == before


def test_config_section_for_a_model_that_does_not_exist(tmp_path, data, previous_db):
    config = tmp_path / "settings.toml"
    config.write_text("[als]\nfactors = 16\n\n[alz]\nfactors = 16\n")
    before = snapshot(tmp_path)
    result = run_cli(
        "build", "--data", str(data), "--db", str(previous_db), "--config", str(config)
    )
    assert_refused(result, str(config), "[alz]", "name no model")
    assert snapshot(tmp_path) == before


def test_settings_file_values_are_range_checked(tmp_path, data, previous_db):
    config = tmp_path / "settings.toml"
    config.write_text("[als]\nfactors = 0\n")
    before = snapshot(tmp_path)
    result = run_cli(
        "build", "--data", str(data), "--db", str(previous_db), "--config", str(config)
    )
    assert_refused(result, str(config), "als.factors", "from 1 to 4096", "got 0")
    assert snapshot(tmp_path) == before


def test_every_python_model_declares_each_setting():
    from kuairec_db import hooks

    for model in hooks.discover().values():
        if model.is_sql:
            continue
        module = hooks.load_module(model)
        assert set(module.SETTING_TYPES) == set(module.DEFAULTS), model.name
        for key, value in module.DEFAULTS.items():
            assert module.SETTING_TYPES[key].convert(value, key) == value, (model.name, key)


def test_setting_declaration_checks_type_and_range():
    from kuairec_db.errors import UserError
    from kuairec_db.validate import Setting

    assert Setting(int, 1, 10).convert("3", "x") == 3
    assert Setting(float, 0, words=("auto",)).convert("AUTO", "x") == "auto"
    assert Setting(bool).convert("yes", "x") is True
    for setting, value in [
        (Setting(int, 1, 10), "11"),
        (Setting(int, 1, 10), "2.5"),
        (Setting(float, 0, low_open=True), 0),
        (Setting(float), "inf"),
        (Setting(float), True),
        (Setting(str, words=("a", "b")), "c"),
    ]:
        with pytest.raises(UserError, match="^x: expected"):
            setting.convert(value, "x")


# ---------------------------------------------------------------------------------------------
# Files the project writes beside the database


def test_planted_lock_link_is_refused_and_its_target_kept(tmp_path, data, previous_db):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = tmp_path / ".kuairec.duckdb.lock"
    link.symlink_to(victim)
    before = snapshot(tmp_path)
    result = run_cli("build", "--data", str(data), "--db", str(previous_db))
    assert_refused(result, str(link), "symbolic link")
    assert snapshot(tmp_path) == before
    assert link.is_symlink() and victim.read_text() == "precious\n"


def test_planted_part_link_is_refused_and_its_target_kept(tmp_path):
    source = tmp_path / "source.zip"
    source.write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"precious")
    dest = tmp_path / "dl"
    dest.mkdir()
    link = dest / "KuaiRec.zip.part"
    link.symlink_to(victim)
    before = snapshot(tmp_path)
    result = run_cli("download", "--to", str(dest), "--url", source.as_uri(), "--md5", md5)
    assert_refused(result, str(link), "symbolic link")
    assert snapshot(tmp_path) == before
    assert victim.read_bytes() == b"precious"


READERS = {
    "recommend": ["recommend", "14"],
    "metrics": ["metrics"],
    "report": ["report", "--out", "REPORT"],
    "tune": ["tune"],
    "exposure-study": ["exposure-study"],
}


@pytest.mark.parametrize("command", sorted(READERS))
def test_readers_refuse_a_sqlite_file_before_connecting(command, tmp_path):
    db = _sqlite_db(tmp_path / "mine.db")
    args = [str(tmp_path / "report.html") if a == "REPORT" else a for a in READERS[command]]
    before = snapshot(tmp_path)
    # no network: an attempt to install DuckDB's sqlite extension would fail loudly, not hang
    env = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = run_cli(*args, "--db", str(db), env=env, timeout=60)
    assert_refused(result, str(db), "a SQLite database", "not a DuckDB database")
    assert snapshot(tmp_path) == before
