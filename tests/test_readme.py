"""What the README shows works as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli

README = (ROOT / "README.md").read_text(encoding="utf-8")
SQL_BLOCKS = re.findall(r"```sql\n(.*?)```", README, flags=re.S)


def test_readme_has_the_set_up_and_test_commands():
    shell = "\n".join(re.findall(r"```sh\n(.*?)```", README, flags=re.S))
    for command in ('pip install -e ".[dev]"', "python -m kuairec_db build", "python -m pytest"):
        assert command in shell
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -e ".[dev]"' in ci and "python -m pytest" in ci


@pytest.mark.parametrize("sql", SQL_BLOCKS, ids=[f"query{i}" for i in range(len(SQL_BLOCKS))])
def test_readme_queries_run_and_return_rows(sql, db_con):
    rows = db_con.execute(sql).fetchall()
    assert rows, sql


def test_readme_commands_on_a_built_database(built_db, tmp_path):
    metrics = run_cli("metrics", "--db", str(built_db))
    assert metrics.returncode == 0 and "als" in metrics.stdout
    recommend = run_cli("recommend", "14", "--db", str(built_db))
    assert recommend.returncode == 0, recommend.stderr
    assert len(recommend.stdout.splitlines()) == 12
    demo = run_cli("demo", "--out", str(tmp_path / "demo"), "--scale", "0.02")
    assert demo.returncode == 0, demo.stderr
    assert len(list(Path(tmp_path / "demo").glob("*.csv"))) == 7
