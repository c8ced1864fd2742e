"""``export``: write relations of a built database to Parquet or CSV files for other tools
(pandas, Spark, R, BI tools that read files). One file per relation, named after it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kuairec_db.api import connect
from kuairec_db.errors import UserError

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv")
# What `export` writes when no relation is named: the public relations of the README (those
# the database has; the exposure study's only after exposure-study ran, the re-ranker's only
# when two_stage was built). tests/test_cli.py holds the README's table to this list.
PUBLIC_RELATIONS = (
    "recommendations",
    "recommendations_explained",
    "model_user_factors",
    "model_item_factors",
    "model_video_scores",
    "model_video_neighbours",
    "model_candidate_scores",
    "model_feature_importances",
    "eval_ground_truth",
    "eval_rankings",
    "eval_user_metrics",
    "eval_metrics",
    "eval_metrics_ci",
    "eval_paired",
    "eval_beyond_accuracy",
    "eval_segment_metrics",
    "eval_exposure_study",
    "eval_temporal_split",
    "data_quality",
    "data_profile",
    "build_info",
    "build_lineage",
)


def export(
    db: str | os.PathLike, to: str | os.PathLike, fmt: str = "parquet", relations=None
) -> list[tuple[Path, int]]:
    """Write RELATIONS (default: the public ones) of DB into folder TO as NAME.parquet or
    NAME.csv; returns (file, rows) per relation. Each file is written beside its final name
    and renamed into place, so a reader never sees half a file."""
    if fmt not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    folder = Path(to).expanduser()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--to {to}: is a file, not a folder")
    con = connect(db)
    try:
        present = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = current_database() and table_schema = 'main'"
            ).fetchall()
        }
        if relations:
            unknown = [r for r in relations if r not in present]
            if unknown:
                raise UserError(
                    f"no relation {', '.join(unknown)} in {db}; public ones: "
                    + ", ".join(r for r in PUBLIC_RELATIONS if r in present)
                )
            chosen = list(dict.fromkeys(relations))
        else:
            chosen = [r for r in PUBLIC_RELATIONS if r in present]
        folder.mkdir(parents=True, exist_ok=True)
        written = []
        for name in chosen:
            final = folder / f"{name}.{fmt}"
            partial = folder / f".{name}.{fmt}.partial"
            options = "format parquet, compression zstd" if fmt == "parquet" else "header true"
            quoted = str(partial).replace("'", "''")
            con.execute(f"copy (select * from {name}) to '{quoted}' ({options})")
            os.replace(partial, final)
            n = con.execute(f"select count(*) from {name}").fetchone()[0]
            log.info("  %s: %s rows", final, f"{n:,}")
            written.append((final, n))
        return written
    finally:
        con.close()
