"""``build_info``: the facts of a build (versions, parameters, settings, timings, input files),
and of an update (what it kept comes from the previous build_info)."""

from __future__ import annotations

import json
import logging
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from kuairec_db import __version__, runner
from kuairec_db.workspace import STORAGE_VERSION

log = logging.getLogger("kuairec_db.build")  # the build's log, whichever module writes it
BuildParams = Any  # kuairec_db.build.BuildParams (which imports this module)


def _memory_limit(params: BuildParams) -> str:
    return params.memory_limit or runner.PIPELINE_MEMORY_LIMIT


def _kept_facts(
    info: dict[str, str], previous: dict[str, str], kept: list[str], rebuilt: list[str]
) -> dict[str, str]:
    """build_info of an update: the facts of what it kept come from the previous build_info
    (build_seconds of the last full build, the kept models' and tables' timings), and the
    update itself is recorded apart (update_seconds, updated_at, update_rebuilt)."""
    out = dict(info)
    update_seconds = out.pop("build_seconds")
    out["build_seconds"] = previous.get("build_seconds", update_seconds)
    out["started_at"] = previous.get("started_at", out["started_at"])
    out["update_seconds"] = update_seconds
    out["updated_at"] = out.pop("finished_at")
    out["finished_at"] = previous.get("finished_at", out["updated_at"])
    out["update_rebuilt"] = ",".join(rebuilt)
    for name in kept:
        prefix = f"model.{name[6:]}." if name.startswith("model:") else f"stage.{name}."
        for key, value in previous.items():
            if key.startswith(prefix) and key not in out:
                out[key] = value
    return out


def _data_warnings(con) -> list[str]:
    out = []
    leaks = con.execute(
        "select n_rows from data_quality where step = 'leak_pairs' and source = 'big_matrix.csv'"
    ).fetchone()[0]
    if leaks:
        out.append(
            f"{leaks:,} (user, video) pairs are in both matrices: removed from training "
            "(see int_leak_pairs and data_quality)"
        )
    for message in out:
        log.warning("warning: %s", message)
    return out


def _build_info(
    params: BuildParams,
    settings_file: Path | None,
    data_kind: str,
    location: str,
    model_settings: dict[str, dict[str, Any]],
    model_timings: dict[str, dict[str, float]],
    stage_timings: dict[str, float],
    files_info: dict[str, str],
    started_at: datetime,
    seconds: float,
) -> dict[str, str]:
    import implicit
    import numpy

    info: dict[str, str] = {
        "kuairec_db_version": __version__,
        "duckdb_version": duckdb.__version__,
        "implicit_version": implicit.__version__,
        "numpy_version": numpy.__version__,
        "python_version": platform.python_version(),
        "storage_version": STORAGE_VERSION,
        "data_kind": data_kind,
        "data_location": location,
        "started_at": started_at.isoformat(timespec="seconds"),
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": f"{seconds:.1f}",
        "models": ",".join(model_settings),
    }
    info.update(params.info_rows())
    info["param.memory_limit"] = _memory_limit(params)
    info["param.db"] = str(params.db)
    info["param.data"] = str(params.data) if params.data else ""
    info["param.config"] = str(settings_file) if settings_file else ""
    for name, settings in model_settings.items():
        info[f"model.{name}.settings"] = json.dumps(settings, sort_keys=True)
        for key, value in model_timings.get(name, {}).items():  # seconds, and chosen.KEY
            info[f"model.{name}.{key}"] = value if isinstance(value, str) else f"{value:.2f}"
    for name, value in stage_timings.items():
        info[f"stage.{name}.seconds"] = f"{value:.2f}"
    info.update(files_info)
    return info
