"""The built wheel, installed into a fresh virtual environment outside the checkout, runs
build, metrics, export and the Python API (sql/ and models/ ship inside it).

Cheap by design: the fresh environment gets the already-installed dependencies through a .pth
line naming this environment's site-packages (read as a plain path, so this environment's
editable kuairec_db is not picked up), and the wheel goes in with --no-deps."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

API = """
import json, sys
import kuairec_db
from kuairec_db import resources
con = kuairec_db.connect("kuairec.duckdb")
user = con.execute("select min(user_id) from recommendations").fetchone()[0]
top = kuairec_db.recommend(user, model="als", n=3, db=con)
similar = kuairec_db.similar_videos(int(top.video_id[0]), model="als", n=3, db=con)
new_user = kuairec_db.recommend_for_history(top.video_id.tolist(), model="popularity", db=con)
board = kuairec_db.metrics(db=con)
print(json.dumps({
    "package": kuairec_db.__file__, "sql": str(resources.SQL_DIR),
    "models": str(resources.SHIPPED_MODELS_DIR), "n_top": len(top), "n_similar": len(similar),
    "n_new_user": len(new_user), "board_models": sorted(set(board.model)),
}))
"""


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("wheel")
    # from a copy of what the wheel is made of: setuptools leaves build/ in the source folder
    source = work / "source"
    for name in ("kuairec_db", "sql", "models"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(work)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = work.glob("kuairec_db-*.whl")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "kuairec-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, str(wheel)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    return python, wheel


def test_the_wheel_holds_every_sql_file_and_model(fresh_python):
    names = set(zipfile.ZipFile(fresh_python[1]).namelist())
    for folder, inside in (("sql", "_sql"), ("models", "_models")):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".sql", ".py", ".toml") and "__pycache__" not in path.parts:
                if path.name == "settings.toml":
                    continue  # written by tune, never shipped
                relative = path.relative_to(ROOT / folder).as_posix()
                assert f"kuairec_db/{inside}/{relative}" in names


def test_the_installed_wheel_builds_and_answers_outside_the_checkout(fresh_python, tmp_path):
    python = fresh_python[0]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(python), *args], cwd=tmp_path, capture_output=True, text=True, timeout=600
        )

    built = run(
        "-m",
        "kuairec_db",
        "build",
        "--demo",
        "--demo-scale",
        "0.03",
        "--models",
        "popularity,als",
        "--bootstrap",
        "50",
    )
    assert built.returncode == 0, built.stderr
    assert "5 audits passed" in built.stderr
    metrics = run("-m", "kuairec_db", "metrics", "--format", "json")
    assert metrics.returncode == 0, metrics.stderr
    assert {json.loads(line)["model"] for line in metrics.stdout.splitlines()} == {
        "als",
        "popularity",
    }
    exported = run("-m", "kuairec_db", "export", "--to", "out", "-q")
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "out" / "eval_metrics.parquet").is_file()
    api = run("-c", API)
    assert api.returncode == 0, api.stderr
    facts = json.loads(api.stdout)
    package = Path(facts["package"]).parent
    assert ROOT not in package.parents and package.parent.name == "site-packages"
    assert facts["sql"] == str(package / "_sql") and facts["models"] == str(package / "_models")
    assert facts["n_top"] == facts["n_similar"] == 3 and facts["n_new_user"] == 10
    assert facts["board_models"] == ["als", "popularity"]
