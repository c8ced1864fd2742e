"""The dataset's profile (``data_profile``) and the ``profile`` command.

``data_profile`` is SQL (``sql/public/data_profile.sql``) except for two fits SQL cannot do
exactly, written here by ``write_fits`` from ``int_profile_sample`` during the build:

- ``int_profile_fit``: the residual of each sampled pair under the least-squares fit
  y ~ mu + a_user + b_video, by backfitting until no effect moves more than 1e-6;
- ``int_profile_factor_gain``: per penalty (5, and 1 for a diagnostic) and rank 4, 8, 16, the
  held-out sums of squares of that additive
  fit and of the additive fit plus a rank-r regularised ALS model of its residuals, both fitted
  on the pairs not held out (``is_holdout``; a user or video with no such pair has effect and
  factors 0).

The same SQL profiles a folder of KuaiRec files or a bare ``user_id, video_id, watch_ratio`` file
with a caption file, in an in-memory DuckDB, without a build: ``profile_source``.
"""

from __future__ import annotations

import logging
import tempfile
import time
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from kuairec_db import sources, stages
from kuairec_db.errors import UserError
from kuairec_db.schema import SOURCES

log = logging.getLogger(__name__)

SAMPLE_TABLE = "int_profile_sample"
FIT_TABLE = "int_profile_fit"
GAIN_TABLE = "int_profile_factor_gain"
HOOK_TABLES = (FIT_TABLE, GAIN_TABLE)
PROFILE_VIEW = "data_profile"

ADDITIVE_TOLERANCE = 1e-6
FACTOR_RANKS = (4, 8, 16)
ALS_LAMBDA = 5.0
# A weaker penalty as a diagnostic row (factor_gain_lambda_1): lambda 5 can shrink a real
# low-rank signal of a sample this size to nothing; lambda 1 overfits noise (on the real sample).
DIAGNOSTIC_LAMBDAS = (1.0,)
ALS_ITERATIONS = 15
ALS_SEED = 0
PAIR_COLUMNS = ("user_id", "video_id", "watch_ratio")
SCOPES = ("big_matrix", "small_matrix", "small_matrix_sample")
# What the profile reads of a KuaiRec folder, in build order (the staging of each file first).
FOLDER_SOURCES = ("caption_category", "big_matrix", "small_matrix")
FOLDER_STAGES = (
    "stg_caption_category",
    "stg_big_matrix",
    "int_big_matrix_events",
    "stg_small_matrix",
    "int_small_matrix_events",
)


# ---------------------------------------------------------------------------------------------
# The fits


def additive_fit(
    y: np.ndarray,
    users: np.ndarray,
    videos: np.ndarray,
    n_users: int,
    n_videos: int,
    tolerance: float = ADDITIVE_TOLERANCE,
) -> tuple[float, np.ndarray, np.ndarray]:
    """Least squares y ~ mu + a[users] + b[videos] by backfitting.

    Parameters
    ----------
    y, users, videos : one entry per pair; users and videos are dense codes.
    n_users, n_videos : number of codes (a code without pairs gets effect 0).
    tolerance : stop when no effect moved more than this in one sweep.

    Returns
    -------
    mu, a, b : the grand mean and the user and video effects.
    """
    mu = float(y.mean()) if len(y) else 0.0
    a, b = np.zeros(n_users), np.zeros(n_videos)
    user_counts = np.maximum(np.bincount(users, minlength=n_users), 1)
    video_counts = np.maximum(np.bincount(videos, minlength=n_videos), 1)
    for _ in range(100_000):
        new_a = np.bincount(users, y - mu - b[videos], n_users) / user_counts
        new_b = np.bincount(videos, y - mu - new_a[users], n_videos) / video_counts
        moved = max(np.abs(new_a - a).max(initial=0), np.abs(new_b - b).max(initial=0))
        a, b = new_a, new_b
        if moved <= tolerance:
            break
    return mu, a, b


def _groups(rows: np.ndarray, n_rows: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The row codes with pairs, bucketed by their number of pairs (widths 1.25^k apart):
    per bucket the codes and a (codes, width) matrix of their pair positions, padded with
    len(rows) (a zero pair)."""
    order = np.argsort(rows, kind="stable")
    counts = np.bincount(rows, minlength=n_rows)
    starts = np.cumsum(counts) - counts
    steps = np.ceil(np.log(np.maximum(counts, 1)) / np.log(1.25))  # widths 1.25^k apart
    width = np.where(counts > 0, np.ceil(1.25**steps - 1e-9), 0).astype(int)
    width = np.maximum(width, counts)
    groups = []
    for w in np.unique(width[width > 0]):
        codes = np.flatnonzero(width == w)
        offsets = np.arange(w)[None, :]
        valid = offsets < counts[codes][:, None]
        positions = np.minimum(starts[codes][:, None] + offsets, len(rows) - 1)
        groups.append((codes, np.where(valid, order[positions], len(rows))))
    return groups


def _ridge_side(
    groups: list[tuple[np.ndarray, np.ndarray]],
    n_rows: int,
    other: np.ndarray,
    target: np.ndarray,
    lam: float,
) -> np.ndarray:
    """Per row code, the ridge solution x of: sum over its pairs of (target - other . x)^2
    + lam |x|^2 (0 for a code without pairs). other holds each pair's fixed factors."""
    rank = other.shape[1]
    other = np.vstack([other, np.zeros((1, rank))])
    target = np.append(target, 0.0)
    solution = np.zeros((n_rows, rank))
    for codes, positions in groups:
        f = other[positions]  # (codes, width, rank)
        gram = np.einsum("cwr,cws->crs", f, f, optimize=True) + lam * np.eye(rank)
        rhs = np.einsum("cwr,cw->cr", f, target[positions])
        solution[codes] = np.linalg.solve(gram, rhs[:, :, None])[:, :, 0]
    return solution


def als(
    target: np.ndarray,
    users: np.ndarray,
    videos: np.ndarray,
    n_users: int,
    n_videos: int,
    rank: int,
    lam: float = ALS_LAMBDA,
    iterations: int = ALS_ITERATIONS,
    seed: int = ALS_SEED,
) -> tuple[np.ndarray, np.ndarray]:
    """Regularised ALS of target ~ P[users] . Q[videos] on the observed pairs only.

    P then Q start as N(0, 0.1^2) draws of ``numpy.random.default_rng(seed)``; each iteration
    solves every user's ridge problem (lam * I) given Q, then every video's given P.
    """
    rng = np.random.default_rng(seed)
    p = rng.normal(0.0, 0.1, (n_users, rank))
    q = rng.normal(0.0, 0.1, (n_videos, rank))
    user_groups, video_groups = _groups(users, n_users), _groups(videos, n_videos)
    for _ in range(iterations):
        p = _ridge_side(user_groups, n_users, q[videos], target, lam)
        q = _ridge_side(video_groups, n_videos, p[users], target, lam)
    return p, q


def fits(sample: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two hook tables from the sample (columns user_id, video_id, y, is_holdout)."""
    sample = sample.sort_values(["user_id", "video_id"], kind="stable").reset_index(drop=True)
    user_ids, users = np.unique(sample["user_id"].to_numpy(), return_inverse=True)
    video_ids, videos = np.unique(sample["video_id"].to_numpy(), return_inverse=True)
    n_users, n_videos = len(user_ids), len(video_ids)
    y = sample["y"].to_numpy(dtype=float)
    mu, a, b = additive_fit(y, users, videos, n_users, n_videos)
    fit = pd.DataFrame(
        {
            "user_id": sample["user_id"].to_numpy(),
            "video_id": sample["video_id"].to_numpy(),
            "additive_residual": y - mu - a[users] - b[videos],
        }
    )
    held = sample["is_holdout"].to_numpy(dtype=bool)
    train = ~held
    gain_rows = []
    if held.any() and train.any():
        mu_t, a_t, b_t = additive_fit(y[train], users[train], videos[train], n_users, n_videos)
        residual_t = y[train] - mu_t - a_t[users[train]] - b_t[videos[train]]
        additive_held = mu_t + a_t[users[held]] + b_t[videos[held]]
        ss_total = float(((y[held] - y[held].mean()) ** 2).sum())
        ss_additive = float(((y[held] - additive_held) ** 2).sum())
        for lam in (ALS_LAMBDA, *DIAGNOSTIC_LAMBDAS):
            for rank in FACTOR_RANKS:
                p, q = als(residual_t, users[train], videos[train], n_users, n_videos, rank, lam)
                factor_held = additive_held + (p[users[held]] * q[videos[held]]).sum(axis=1)
                ss_factor = float(((y[held] - factor_held) ** 2).sum())
                gain_rows.append((lam, rank, int(held.sum()), ss_total, ss_additive, ss_factor))
    gains = pd.DataFrame(
        gain_rows,
        columns=[
            "als_lambda",
            "rank",
            "n_holdout_pairs",
            "ss_total_holdout",
            "ss_additive_holdout",
            "ss_factor_holdout",
        ],
    ).astype({"rank": "int32", "n_holdout_pairs": "int64"})
    return fit, gains


def write_fits(con: duckdb.DuckDBPyConnection) -> float:
    """Create int_profile_fit and int_profile_factor_gain from int_profile_sample; seconds."""
    started = time.perf_counter()
    sample = con.execute(
        f"select user_id, video_id, y, is_holdout from {SAMPLE_TABLE} order by user_id, video_id"
    ).df()
    fit, gains = fits(sample)
    for name, frame in ((FIT_TABLE, fit), (GAIN_TABLE, gains)):
        con.register("profile_hook_frame", frame)
        try:
            con.execute(f"create or replace table {name} as select * from profile_hook_frame")
        finally:
            con.unregister("profile_hook_frame")
    seconds = time.perf_counter() - started
    log.info("  %-28s table %12s rows %6.1f s", FIT_TABLE, f"{len(fit):,}", seconds)
    return seconds


# ---------------------------------------------------------------------------------------------
# Profiles outside a build


def _stage(name: str) -> stages.Stage:
    found = [s for s in stages.discover() if s.name == name]
    if not found:
        raise RuntimeError(f"no SQL stage {name}")
    return found[0]


def _create(con: duckdb.DuckDBPyConnection, name: str, src=None, source: str | None = None):
    from kuairec_db.csvread import csv_error_message

    stage = _stage(name)
    relation = "temp view" if stage.kind == "ephemeral" else "table"
    try:
        con.execute(f"create or replace {relation} {name} as {stages.select_body(stage.sql)}")
    except (duckdb.OutOfMemoryException, duckdb.IOException):
        raise
    except duckdb.Error as exc:
        if src is None or source is None:
            raise
        raise UserError(csv_error_message(exc, src, source)) from None


def _finish(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    _create(con, SAMPLE_TABLE)
    write_fits(con)
    body = stages.select_body(_stage(PROFILE_VIEW).sql)
    return con.execute(body).df()


def _csv_view(con, source: str, path: Path, header: list[str]) -> None:
    from kuairec_db.csvread import csv_view_sql as _csv_view_sql

    con.execute(_csv_view_sql(source, path, header))


def _captions(con, caption_csv: Path, work: Path, src: sources.DataSource) -> None:
    source = "caption_category"
    header = sources.check_header(source, caption_csv, str(caption_csv))
    safe = work / "captions.cr-safe.csv"
    read = safe if sources.neutralise_bare_cr(caption_csv, safe) else caption_csv
    src.files[source] = read
    src.display[source] = str(caption_csv)
    _csv_view(con, source, read, header)
    _create(con, "stg_caption_category", src, source)


def profile_folder(path: Path, threads: int | None = None) -> pd.DataFrame:
    """The profile of a KuaiRec folder or KuaiRec.zip (big matrix, small matrix, captions)."""
    with tempfile.TemporaryDirectory(prefix="kuairec-profile-") as tmp:
        work = Path(tmp)
        kind, found = sources.locate(Path(path))
        if kind == "zip":
            src = sources.resolve_path(found, work)
        else:
            src = sources.DataSource("kuairec_files", str(found))
            missing = []
            for source in FOLDER_SOURCES:
                file = found / SOURCES[source][0]
                if not file.is_file():
                    missing.append(file.name)
                src.files[source] = src.originals[source] = file
                src.display[source] = str(file)
            if missing:
                raise UserError(f"{found}: missing KuaiRec file(s): {', '.join(missing)}")
        con = _connect(work, threads)
        try:
            _captions(con, src.files["caption_category"], work, src)
            for source in ("big_matrix", "small_matrix"):
                file = src.files[source]
                header = sources.check_header(source, file, src.display[source])
                _csv_view(con, source, file, header)
            for name in FOLDER_STAGES[1:]:
                _create(con, name, src, "big_matrix" if "big" in name else "small_matrix")
            return _finish(con)
        finally:
            con.close()


def profile_pairs(pairs_csv: Path, caption_csv: Path, threads: int | None = None) -> pd.DataFrame:
    """The profile of a bare ``user_id, video_id, watch_ratio`` file of the fully observed matrix
    (one row per view; several rows of a pair are averaged) with its videos' caption file."""
    pairs_csv, caption_csv = Path(pairs_csv), Path(caption_csv)
    for file in (pairs_csv, caption_csv):
        if not file.is_file():
            raise UserError(f"{file}: no such file")
    header = _pairs_header(pairs_csv)
    with tempfile.TemporaryDirectory(prefix="kuairec-profile-") as tmp:
        work = Path(tmp)
        con = _connect(work, threads)
        try:
            src = sources.DataSource("kuairec_files", str(pairs_csv))
            _captions(con, caption_csv, work, src)
            types = {"user_id": "INTEGER", "video_id": "INTEGER", "watch_ratio": "DOUBLE"}
            columns = ", ".join(f"'{c}': '{types.get(c, 'VARCHAR')}'" for c in header)
            quoted = str(pairs_csv).replace("'", "''")
            try:
                con.execute(
                    "create table int_small_matrix_events as select user_id, video_id, "
                    "watch_ratio, 1 as n_log_rows from read_csv("
                    f"'{quoted}', columns = {{{columns}}}, auto_detect = false, header = true, "
                    "delim = ',', quote = '\"', escape = '\"', strict_mode = true)"
                )
            except duckdb.Error as exc:
                src.files["small_matrix"] = pairs_csv
                src.display["small_matrix"] = str(pairs_csv)
                from kuairec_db.csvread import csv_error_message

                raise UserError(csv_error_message(exc, src, "small_matrix")) from None
            nulls = con.execute(
                "select count(*) from int_small_matrix_events where user_id is null "
                "or video_id is null or watch_ratio is null"
            ).fetchone()[0]
            if nulls:
                raise UserError(
                    f"{pairs_csv}: {nulls:,} row(s) with an empty user_id, video_id or watch_ratio"
                )
            con.execute(
                "create table int_big_matrix_events as select * from int_small_matrix_events "
                "where false"
            )
            return _finish(con)
        finally:
            con.close()


def _pairs_header(path: Path) -> list[str]:
    import csv

    with open(path, "rb") as fh:
        first = fh.readline()
        has_row = bool(fh.readline().strip())
    try:
        line = first.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError:
        raise UserError(f"{path}: line 1: the header is not UTF-8 text") from None
    if not line.strip():
        raise UserError(f"{path}: the file is empty")
    header = [c.strip() for c in next(csv.reader([line]))]
    missing = [c for c in PAIR_COLUMNS if c not in header]
    if missing:
        raise UserError(
            f"{path}: line 1: missing column(s) {', '.join(missing)} (a pairs file has "
            f"user_id, video_id, watch_ratio; the header has: {', '.join(header[:12])})"
        )
    if not has_row:
        raise UserError(f"{path}: has a header but no rows")
    return header


def profile_database(db: Path) -> pd.DataFrame:
    """data_profile as stored in a built database."""
    from kuairec_db.cli.common import connect_read_only

    con = connect_read_only(str(db))
    try:
        known = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = current_database()"
            ).fetchall()
        }
        if PROFILE_VIEW not in known:
            raise UserError(
                f"{db}: no data_profile in this database (built by an older version); "
                f"rebuild it: python -m kuairec_db build --db {db}"
            )
        return con.execute(f"select * from {PROFILE_VIEW}").df()
    finally:
        con.close()


def _connect(work: Path, threads: int | None) -> duckdb.DuckDBPyConnection:
    from kuairec_db.params import PIPELINE_MEMORY_LIMIT

    config = {"temp_directory": str(work / "spill"), "memory_limit": PIPELINE_MEMORY_LIMIT}
    if threads:
        config["threads"] = str(threads)
    con = duckdb.connect(config=config)
    con.execute("set enable_progress_bar = false")
    stages.create_macros(con)  # the shared formulas data_profile calls (sql/macros/)
    return con


def _is_database(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(16)
    return head[8:12] == b"DUCK"


def profile_source(
    path: Path, captions: Path | None = None, threads: int | None = None
) -> pd.DataFrame:
    """The profile of a database, a KuaiRec folder or zip, or a bare pairs file (with captions)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.is_file() and _is_database(path):
        return profile_database(path)
    if path.is_file() and path.suffix.lower() == ".csv":
        if captions is None:
            raise UserError(
                f"{path}: a bare pairs file needs its videos' caption file: --captions FILE "
                "(kuairec_caption_category.csv)"
            )
        return profile_pairs(path, captions, threads)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise UserError(
            f"{path}: not a database, a pairs CSV (.csv) or KuaiRec.zip; a profile reads one of "
            "those or a folder of KuaiRec files"
        )
    return profile_folder(path, threads)


# ---------------------------------------------------------------------------------------------
# The command


def format_value(value: float | None, statistic: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if statistic.startswith("n_") or "views_per" in statistic:
        return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    if "share" in statistic or statistic == "density":
        return f"{value:.2%}"
    return f"{value:.4f}"


def values(frame: pd.DataFrame, scope: str = "small_matrix_sample") -> dict[str, float]:
    """A profile's statistics of one scope as {statistic: value}."""
    rows = frame[frame["scope"] == scope]
    return dict(zip(rows["statistic"], rows["value"].astype(float)))


def side_by_side(profiles: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per (section, scope, statistic), one value column per profile, then comment."""
    keys: list[tuple[str, str, str]] = []
    comments: dict[tuple[str, str, str], str] = {}
    values: dict[str, dict[tuple[str, str, str], float]] = {}
    for label, frame in profiles.items():
        values[label] = {}
        for row in frame.itertuples(index=False):
            key = (row.section, row.scope, row.statistic)
            if key not in comments:
                keys.append(key)
                comments[key] = row.comment
            values[label][key] = row.value
    # sections, then scopes, in their order; statistics in data_profile's order
    position: dict[tuple[str, str], int] = {}
    for section, _, statistic in keys:
        position.setdefault((section, statistic), len(position))
    keys.sort(key=lambda k: (k[0], SCOPES.index(k[1]), position[(k[0], k[2])]))
    rows = [[*key, *(values[label].get(key) for label in profiles), comments[key]] for key in keys]
    return pd.DataFrame(rows, columns=["section", "scope", "statistic", *profiles, "comment"])
