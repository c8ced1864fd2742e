"""Shared fixtures: the demo data and one database built from it by the real CLI."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run ``python -m kuairec_db ARGS`` as a real subprocess; returns CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k != "KUAIREC_DATA"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "kuairec_db", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """The demo dataset at the default scale, written once per test session."""
    from kuairec_db import demo

    out = tmp_path_factory.mktemp("demo") / "data"
    demo.generate(out, scale=0.1, seed=7)
    return out


@pytest.fixture(scope="session")
def small_demo_dir(tmp_path_factory) -> Path:
    """The demo at scale 0.02 (144 users, 215 videos), written once per test session: for tests
    of what a build redoes, keeps or refuses, where the numbers do not matter and a build of
    the default scale would only cost time."""
    from kuairec_db import demo

    out = tmp_path_factory.mktemp("small-demo") / "data"
    demo.generate(out, scale=0.02, seed=7)
    return out


@pytest.fixture(scope="session")
def built_db(tmp_path_factory, demo_dir) -> Path:
    """A database built by the CLI from the demo files (every model, the opt-in ones too,
    default settings)."""
    from kuairec_db import hooks

    # one build for all xdist workers (the tests only read it): the first to take the lock
    # builds, the others wait for it rather than build the same file at the same time
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    folder = shared / "built-every-model"
    folder.mkdir(exist_ok=True)
    db = folder / "kuairec.duckdb"
    with open(shared / "built-every-model.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "done").exists():
            every_model = ",".join(hooks.discover())
            result = run_cli(
                "build", "--data", str(demo_dir), "--db", str(db), "--models", every_model,
                cwd=folder,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            (folder / "done").touch()
    return db


@pytest.fixture()
def db_con(built_db):
    import duckdb

    con = duckdb.connect(str(built_db), read_only=True)
    yield con
    con.close()
