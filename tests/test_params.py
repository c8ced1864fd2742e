"""The build's parameters are declared once (kuairec_db/params.py): the CLI, BuildParams, the
API, build_info, the SQL variables and what tune and exposure-study read back all follow the
declaration, checked here on real files, a real parser and a real database."""

from __future__ import annotations

import inspect
import json
import re

import duckdb
import pytest

from kuairec_db import api, params
from kuairec_db.cli import build_parser
from kuairec_db.errors import UserError
from kuairec_db.params import PARAMETERS, BuildParams
from kuairec_db.stages import SQL_DIR
from tests.conftest import ROOT, run_cli

# Variables set per run by the code, not by the build's parameters.
PER_RUN = {"model_name"}
PER_COMMAND_PREFIXES = ("exposure_", "api_")


def _variables_read() -> dict[str, list[str]]:
    """SQL variable -> the files of sql/ and models/ that read it."""
    found: dict[str, list[str]] = {}
    for path in [*SQL_DIR.rglob("*.sql"), *(ROOT / "models").glob("*.sql")]:
        text = re.sub(r"--.*", "", path.read_text(encoding="utf-8"))  # not the comments
        for name in re.findall(r"getvariable\(\s*'(\w+)'", text):
            found.setdefault(name, []).append(path.name)
    return found


def test_every_variable_the_sql_reads_is_declared_once():
    declared = [v for p in PARAMETERS for v in p.sql]
    assert len(declared) == len(set(declared)), "a variable declared by two parameters"
    read = _variables_read()
    assert {"top_n", "eval_k", "label", "bootstrap_replicates"} <= set(read)  # the scan works
    undeclared = {
        name: files
        for name, files in read.items()
        if name not in declared
        and name not in PER_RUN
        and not name.startswith(PER_COMMAND_PREFIXES)
    }
    assert not undeclared, f"read in SQL but declared by no parameter: {undeclared}"
    assert set(BuildParams().sql_variables()) == set(declared)


def test_build_options_are_the_declared_ones():
    parser = build_parser()
    build = parser._subparsers._group_actions[0].choices["build"]  # noqa: SLF001
    by_dest = {a.dest: a for a in build._actions if a.option_strings}  # noqa: SLF001
    for p in PARAMETERS:
        if p.option is None:
            continue
        action = by_dest[p.name]
        assert action.option_strings == [p.option]
        if p.action != "append":
            assert action.default == p.default, p.name
        assert action.help == p.help_text()
    declared = {p.name for p in PARAMETERS if p.option} | {"db"}
    own = {"help", "quiet", "debug", "models_dir", "explain"}  # explain: the command's own
    assert set(by_dest) - own == declared


def test_the_api_defaults_are_the_declared_ones():
    signature = inspect.signature(api.build).parameters
    names = {"bootstrap": "bootstrap_replicates"}
    checked = 0
    for name, argument in signature.items():
        field = names.get(name, name)
        if field not in params.BY_NAME or argument.default is None:
            continue
        default = params.BY_NAME[field].default
        if isinstance(default, list):
            default = tuple(default)
        assert argument.default == (str(default) if field == "db" else default), name
        checked += 1
    assert checked >= 10


def test_changed_options_name_what_the_sql_reads():
    changed = BuildParams(label="ratio", bootstrap_replicates=200, k=[10], demo_scale=0.3)
    assert params.changed_options(changed) == ["--k 10", "--label ratio", "--bootstrap 200"]
    assert params.changed_options(BuildParams()) == []


def test_build_info_round_trip_and_exposure_variables(built_db):
    """What exposure-study and tune read back from a real build_info is what the build set:
    every variable, bootstrap's two included (exposure.BUILD_VARIABLES lacked them)."""
    con = duckdb.connect(str(built_db), read_only=True)
    try:
        info = dict(con.execute("select key, value from build_info").fetchall())
    finally:
        con.close()
    restored = params.from_build_info(info)
    assert restored.models is not None and "als" in restored.models
    for p in PARAMETERS:
        if p.restore and f"param.{p.name}" in info and p.name not in ("data", "config"):
            assert p.info_text(getattr(restored, p.name)) == info[f"param.{p.name}"], p.name
    variables = params.variables_from_build_info(info)
    assert variables == restored.sql_variables()
    assert variables["bootstrap_replicates"] == 1000 and variables["bootstrap_seed"] == 42


def test_variables_from_an_old_build_info_are_refused():
    info = {f"param.{p.name}": p.info_text(p.default) for p in PARAMETERS}
    del info["param.bootstrap_replicates"]
    with pytest.raises(UserError, match="build_info has no param.bootstrap_replicates"):
        params.variables_from_build_info(info)


def test_help_names_the_opt_in_and_hungry_models_from_their_files(tmp_path):
    """build --help lists the models that do not run by default, as their files say: a model
    of one's own folder that says RUNS_BY_DEFAULT = False and MEMORY_LIMIT joins the lists."""
    shipped = run_cli("build", "--help", cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    text = " ".join(shipped.stdout.split())
    assert "every file in models/ but the opt-in bpr and content)" in text
    assert "3GB while a model that asks for it runs: content)" in text
    models = tmp_path / "models"
    models.mkdir()
    (models / "zzz_mine.py").write_text(
        'DEFAULTS = {}\nRUNS_BY_DEFAULT = False\nMEMORY_LIMIT = "2GB"\n\n\ndef run(ctx):\n'
        "    pass\n"
    )
    own = run_cli("build", "--help", cwd=tmp_path)
    assert own.returncode == 0, own.stderr
    text = " ".join(own.stdout.split())
    assert "but the opt-in bpr, content and zzz_mine)" in text
    assert "runs: content 3GB, zzz_mine 2GB)" in text
    for command in ("tune", "exposure-study"):  # the same option, declared once
        other = run_cli(command, "--help", cwd=tmp_path)
        assert "zzz_mine 2GB)" in " ".join(other.stdout.split())


def test_settings_reach_build_info_as_declared(tmp_path):
    """--bootstrap (an option whose name is not its field's) and --set arrive in build_info."""
    db = tmp_path / "k.duckdb"
    result = run_cli(
        "build",
        "--demo",
        "--demo-scale",
        "0.05",
        "--db",
        str(db),
        "--models",
        "popularity",
        "--bootstrap",
        "7",
        "--k",
        "10,5",
        "--threads",
        "1",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        info = dict(con.execute("select key, value from build_info").fetchall())
        replicates = con.execute("select count(distinct replicate) from int_resampling_weights")
        n_replicates = replicates.fetchone()[0]
    finally:
        con.close()
    assert info["param.bootstrap_replicates"] == "7"
    assert json.loads(info["param.k"]) == [10, 5]
    assert params.variables_from_build_info(info)["eval_k"] == [5, 10]
    assert n_replicates == 7
