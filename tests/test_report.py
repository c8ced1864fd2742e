"""report: one self-contained HTML file from the database alone, and how it looks in a browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from kuairec_db.report import SECTIONS
from tests.conftest import ROOT, run_cli

OPTIONAL_VIEWS = ("eval_metrics_ci", "eval_paired", "eval_beyond_accuracy", "eval_segment_metrics")


@pytest.fixture(scope="module")
def studied_db(built_db, tmp_path_factory) -> Path:
    """The demo database with a small exposure study (two models) and its temporal split."""
    db = tmp_path_factory.mktemp("report") / "kuairec.duckdb"
    shutil.copyfile(built_db, db)
    result = run_cli(
        "exposure-study",
        "--db",
        str(db),
        "--models",
        "popularity,als",
        "--densities",
        "0.2,0.6",
        "--repeats",
        "3",
    )
    assert result.returncode == 0, result.stderr
    return db


@pytest.fixture(scope="module")
def studied_report(studied_db, tmp_path_factory) -> Path:
    """The report of studied_db, written once for the tests that read or render it."""
    out = tmp_path_factory.mktemp("studied-report") / "report.html"
    result = run_cli("report", "--db", str(studied_db), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _images(page: str) -> list[str]:
    return re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_report_of_a_studied_database_has_every_section_and_plot(studied_report):
    page = studied_report.read_text(encoding="utf-8")
    for _, title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    images = _images(page)
    # leaderboard, popularity, coverage, exposure curves, tau, temporal (two scales), segments
    assert len(images) >= 8
    assert all(len(data) > 2000 for data in images)
    assert 'src="http' not in page and "<script" not in page  # nothing to fetch
    assert "The exposure study has not been run" not in page
    assert "Kendall" in page and "temporal split" in page
    # p-values at the permutation floor, Holm beside them, the resamples said
    assert "Holm p" in page and "&lt; 0.001" in page and "1,000 random sign vectors" in page
    # models left out of the study are said in the section and in its figures' titles
    assert "Not in the study:" in page and "not asked for (--models)" in page
    # every table of values with intervals, and the users they are over
    assert page.count('<span class="ci">') > 50
    assert "3 times</b> each" in page  # --repeats 3 of the fixture
    assert "small-matrix test users" in page and "big-matrix users" in page


def test_report_without_study_says_how_to_run_it(built_db, tmp_path):
    out = tmp_path / "plain.html"
    result = run_cli("report", "--db", str(built_db), "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    for _, title in SECTIONS:
        assert f"<h2>{title}</h2>" in page, title
    assert "The exposure study has not been run" in page
    assert "python -m kuairec_db exposure-study --db" in page
    assert len(_images(page)) >= 4


def test_missing_optional_views_give_notes_not_errors(built_db, tmp_path):
    db = tmp_path / "bare.duckdb"
    shutil.copyfile(built_db, db)
    con = duckdb.connect(str(db))
    for view in OPTIONAL_VIEWS + ("data_quality",):
        con.execute(f"drop view if exists {view}")
    con.close()
    out = tmp_path / "bare.html"
    result = run_cli("report", "--db", str(db), "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    for view in OPTIONAL_VIEWS:
        assert f"no <code>{view}</code>" in page, view
    assert len(_images(page)) >= 2  # leaderboard and popularity still plotted


def test_missing_database_is_one_line(tmp_path):
    result = run_cli("report", "--db", str(tmp_path / "none.duckdb"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no database here" in result.stderr


def test_database_without_eval_tables_is_one_line(tmp_path):
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table build_info (key varchar, value varchar)")
    con.close()
    result = run_cli("report", "--db", str(db), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "not a kuairec_db database" in result.stderr
    assert not (tmp_path / "r.html").exists()


def test_help():
    result = run_cli("report", "--help")
    assert result.returncode == 0 and "examples:" in result.stdout


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(studied_report, tmp_path):
    from PIL import Image  # comes with matplotlib

    png = tmp_path / "report.png"
    subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "screenshot_report.sh"),
            str(studied_report),
            str(png),
            "1280x3000",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = Image.open(png).convert("L")
    assert image.size == (1280, 3000)
    pixels = list(image.tobytes())
    dark = sum(1 for p in pixels if p < 200) / len(pixels)
    assert 0.01 < dark < 0.6  # text, tables and plots; neither blank nor a solid block
    assert len(set(pixels)) > 50  # anti-aliased text and plots, not a flat page


def _last_ink_row(image) -> int:
    width, height = image.size
    pixels = image.load()
    for y in range(height - 1, -1, -1):
        if any(pixels[x, y] < 235 for x in range(0, width, 3)):
            return y
    return -1


@pytest.mark.skipif(_chromium() is None, reason="no chromium (apt-get install chromium)")
def test_screenshot_takes_the_whole_page_by_default(studied_report, tmp_path):
    from PIL import Image

    png = tmp_path / "whole.png"
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "screenshot_report.sh"), str(studied_report), str(png)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    image = Image.open(png).convert("L")
    width, height = image.size
    assert width == 1280 and height > 6000  # eight figures and their tables
    # the page ends inside the picture: its last line of text sits just above the bottom
    # margin (64 px of padding), not cut off at the window's edge
    last = _last_ink_row(image)
    assert height - 200 < last < height - 20, (last, height)
