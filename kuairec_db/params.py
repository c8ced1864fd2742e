"""The build's parameters, each declared once, as a field of :class:`BuildParams`.

A declaration (:func:`param`) gives the name (the field's), the default, the type and range of a
number (a ``validate.Setting``, checked before any work starts), the ``build`` option and its
help, and the SQL variables the stages read it from (``getvariable('top_n')``). From it come:

- the options of ``build`` (``kuairec_db/cli/build.py``; ``--threads`` and ``--memory-limit``
  also for ``tune`` and ``exposure-study``) and the defaults of :func:`kuairec_db.build`;
- ``BuildParams.sql_variables()``, which the build sets, and ``variables_from_build_info``,
  with which exposure-study and tune set the same variables from a database's build_info;
- the ``param.NAME`` rows of build_info and ``from_build_info``, which reads them back;
- the options tune repeats in the build command it suggests (``changed_options``).

To add a parameter: one field here (and its SQL, which reads the variable); nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from kuairec_db import validate
from kuairec_db.errors import UserError

LABELS = ("debiased", "ratio")
DEFAULT_DB = "kuairec.duckdb"
# DuckDB's memory for build, tune and exposure-study unless --memory-limit says otherwise: the
# SQL stages and the lean models fit in it (spilling to the work folder); a model that needs
# more declares it (runner.Model.memory_limit) and gets it while it runs (runner.model_memory).
PIPELINE_MEMORY_LIMIT = "1GB"


@dataclass(frozen=True)
class Parameter:
    """One build parameter as declared by :func:`param` (see the module docstring)."""

    name: str
    default: Any
    help: str = ""  # "{default}" in it becomes the default as one would type it
    option: str | None = None  # the build's option; None: the API and BuildParams only
    metavar: str | None = None
    check: validate.Setting | None = None
    parse: Callable[[str], Any] | None = None  # the option's text -> value (default: its type)
    action: str | None = None  # an argparse action (store_true, append)
    choices: tuple[str, ...] | None = None
    sql: tuple[str, ...] = ()  # the SQL variables that hold its value
    to_sql: Callable[[Any], Any] | None = None  # value -> variable (default: the checked type)
    restore: bool = True  # read back from build_info by from_build_info
    list_valued: bool = False  # a list (for one whose default is None)

    def default_text(self) -> str:
        value = self.default
        return ",".join(map(str, value)) if isinstance(value, list) else str(value)

    def help_text(self) -> str:
        """The help, its {default} filled in; the CLI fills in what needs the models
        ({opt_in}, {hungry}) when the help is shown."""
        known = {"default": self.default_text(), "pipeline": PIPELINE_MEMORY_LIMIT}
        return self.help.format_map(_KeepUnknown(known))

    def sql_value(self, value: Any) -> Any:
        if self.to_sql is not None:
            return self.to_sql(value)
        return self.check.type(value) if self.check is not None else value

    def info_text(self, value: Any) -> str:
        """The value as build_info records it (param.NAME)."""
        return json.dumps(value) if isinstance(value, list) else str(value)

    def from_info_text(self, text: str) -> Any:
        """The value back from its build_info text (the inverse of info_text)."""
        default = self.default
        if isinstance(default, bool):
            return text == "True"
        if isinstance(default, (int, float)):
            return type(default)(text)
        if isinstance(default, list) or self.list_valued:
            return json.loads(text)
        return text


class _KeepUnknown(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def param(default: Any, **declaration: Any) -> Any:
    """A BuildParams field and its declaration (the keywords of Parameter but its name).
    A callable default is called for each BuildParams; a list or dict default is copied."""
    metadata = {"param": declaration}
    if callable(default):
        return field(default_factory=default, metadata=metadata)
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def name_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def setting_override(text: str) -> tuple[str, str, str]:
    name, sep, value = text.partition("=")
    model, dot, key = name.partition(".")
    if not sep or not dot or not model or not key:
        raise argparse.ArgumentTypeError(f"expected MODEL.KEY=VALUE, got {text!r}")
    return model.strip(), key.strip(), value.strip()


def _cores() -> int:
    return os.cpu_count() or 1


@dataclass
class BuildParams:
    """Every setting of a build; all of them end up in build_info (param.NAME)."""

    db: Path = param(Path(DEFAULT_DB), restore=False)  # the shared --db of every command
    data: Path | None = param(
        None, option="--data", parse=Path, metavar="PATH", help="KuaiRec folder or KuaiRec.zip"
    )
    demo: bool = param(
        False,
        option="--demo",
        action="store_true",
        help="use the synthetic demo even if data exists",
    )
    demo_scale: float = param(
        0.1,
        option="--demo-scale",
        metavar="S",
        check=validate.Setting(float, 0, 1, low_open=True),
        help="demo size as a share of KuaiRec's users and videos (default {default})",
    )
    demo_seed: int = param(7, check=validate.Setting(int, 0))
    models: list[str] | None = param(  # None: every model that runs by default
        None,
        option="--models",
        parse=name_list,
        metavar="A,B",
        list_valued=True,
        help="models to run (default: every file in models/{opt_in})",
    )
    settings: dict[str, dict[str, Any]] = param(  # model -> overrides
        {},
        option="--set",
        parse=setting_override,
        action="append",
        metavar="MODEL.KEY=VALUE",
        restore=False,
        help="override a model setting, e.g. als.factors=64",
    )
    top_n: int = param(
        100,
        option="--top-n",
        metavar="N",
        check=validate.Setting(int, 1, 10_000),
        sql=("top_n",),
        help="videos per user in recommendations and eval_rankings (default {default})",
    )
    k: list[int] = param(
        [5, 10, 20, 50],
        option="--k",
        parse=int_list,
        metavar="K,K",
        sql=("eval_k",),
        to_sql=lambda cutoffs: sorted(set(cutoffs)),
        help="metric cutoffs (default {default})",
    )
    label: str = param(
        "debiased",
        option="--label",
        choices=LABELS,
        sql=("label",),
        help="relevance label of the small matrix (default {default}; see README)",
    )
    label_threshold: float = param(
        2.0,
        option="--label-threshold",
        metavar="X",
        check=validate.Setting(float, 0),
        sql=("label_threshold",),
        help="--label ratio: relevant when watch_ratio > X (default {default})",
    )
    label_quantile: float = param(
        0.8,
        option="--label-quantile",
        metavar="Q",
        check=validate.Setting(float, 0, 1, low_open=True, high_open=True),
        sql=("label_quantile",),
        help="--label debiased: relevant above this quantile of training views of "
        "videos of similar length (default {default})",
    )
    label_duration_buckets: int = param(
        10, check=validate.Setting(int, 1, 1000), sql=("label_duration_buckets",)
    )
    tune_percent: int = param(20, check=validate.Setting(int, 1, 99), sql=("tune_percent",))
    popularity_prior_views: float = param(
        20.0, check=validate.Setting(float, 0), sql=("popularity_prior_views",)
    )
    confidence_alpha: float = param(
        2.0,
        option="--confidence-alpha",
        metavar="A",
        check=validate.Setting(float, 0),
        sql=("confidence_alpha",),
        help="ALS confidence = 1 + A * ln(1 + capped watch ratio sum) (default {default})",
    )
    watch_ratio_cap: float = param(
        5.0, check=validate.Setting(float, 0, low_open=True), sql=("watch_ratio_cap",)
    )
    # the seed of the bootstrap and of the SQL models (random); the Python models get it too
    seed: int = param(42, check=validate.Setting(int, 0), sql=("bootstrap_seed", "model_seed"))
    bootstrap_replicates: int = param(
        1000,
        option="--bootstrap",
        metavar="N",
        check=validate.Setting(int, 1, 100_000),
        sql=("bootstrap_replicates",),
        help="bootstrap resamples behind eval_metrics_ci and eval_paired (default {default})",
    )
    threads: int = param(
        _cores,
        option="--threads",
        metavar="N",
        parse=int,
        help="threads for DuckDB and the models (default: all cores)",
    )
    memory_limit: str | None = param(  # None: PIPELINE_MEMORY_LIMIT and what models ask for
        None,
        option="--memory-limit",
        metavar="SIZE",
        restore=False,  # build_info records the limit in force, not the option
        help="DuckDB memory limit for the whole run, e.g. 4GB (default {pipeline}{hungry})",
    )
    config: Path | None = param(  # None: settings.toml of the models folder if present
        None,
        option="--config",
        parse=Path,
        metavar="FILE",
        help="model settings file (default: settings.toml of the models folder, ./models, "
        "written by tune)",
    )
    force: bool = param(  # rebuild everything, ignoring what the previous database holds
        False,
        option="--force",
        action="store_true",
        help="rebuild everything (by default only what changed since the last build is redone)",
    )

    def validate(self) -> None:
        if self.models is not None and not self.models:
            raise UserError("--models names no model; give at least one, e.g. --models als")
        if self.label not in LABELS:
            raise UserError(f"--label must be one of {', '.join(LABELS)}, not {self.label!r}")
        for p in PARAMETERS:
            if p.check is not None:
                setattr(self, p.name, p.check.convert(getattr(self, p.name), p.option or p.name))
        if not self.k or any(k < 1 for k in self.k):
            raise UserError("--k takes positive cutoffs, e.g. --k 5,10,20,50")
        if max(self.k) > self.top_n:
            raise UserError(f"--k {max(self.k)} is above --top-n {self.top_n}: rank more videos")
        validate.check_threads(self.threads)

    def sql_variables(self) -> dict[str, Any]:
        """The SQL variables of the build: name -> value."""
        return {
            variable: p.sql_value(getattr(self, p.name)) for p in PARAMETERS for variable in p.sql
        }

    def info_rows(self) -> dict[str, str]:
        """build_info's param.NAME rows but those the build words itself (db, data, config,
        memory_limit) and the model settings (model.NAME.settings)."""
        return {
            f"param.{p.name}": p.info_text(getattr(self, p.name))
            for p in PARAMETERS
            if p.name not in ("settings", "db", "data", "config")
        }


def _declared() -> tuple[Parameter, ...]:
    out = []
    for f in fields(BuildParams):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        out.append(Parameter(f.name, default, **f.metadata["param"]))
    return tuple(out)


PARAMETERS: tuple[Parameter, ...] = _declared()
BY_NAME = {p.name: p for p in PARAMETERS}
RESOURCE_OPTIONS = ("threads", "memory_limit")  # shared by build, tune and exposure-study


def from_build_info(info: dict[str, str]) -> BuildParams:
    """The BuildParams a database was built with, from its build_info param.* rows (those not
    recorded keep their defaults)."""
    params = BuildParams()
    for p in PARAMETERS:
        text = info.get(f"param.{p.name}")
        if not p.restore or text is None or text == "None":
            continue
        if isinstance(p.default, Path) or (p.default is None and not p.list_valued):
            continue
        setattr(params, p.name, p.from_info_text(text))
    return params


def variables_from_build_info(info: dict[str, str]) -> dict[str, Any]:
    """The build's SQL variables, read back from a database's build_info."""
    out = {}
    for p in PARAMETERS:
        if not p.sql:
            continue
        key = f"param.{p.name}"
        if key not in info:
            raise UserError(f"build_info has no {key}: rebuild the database with this version")
        value = p.sql_value(p.from_info_text(info[key]))
        out.update({variable: value for variable in p.sql})
    return out


def changed_options(params: BuildParams) -> list[str]:
    """``--option value`` of every option the SQL reads whose value is not the default: what a
    build must repeat to make the same tables."""
    defaults = BuildParams()
    out = []
    for p in PARAMETERS:
        value = getattr(params, p.name)
        if p.option and p.sql and value != getattr(defaults, p.name):
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            out.append(f"{p.option} {text}")
    return out
