"""The Python API: build a database, open it, and read recommendations, metrics and similar
videos as pandas DataFrames. Exposed as ``kuairec_db.build``, ``kuairec_db.connect``, ...

Every reading function takes ``db``: a path to the database (opened read-only for the call)
or a connection from :func:`connect` (reused, left open).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from kuairec_db import resources
from kuairec_db.errors import UserError
from kuairec_db.params import DEFAULT_DB, BuildParams
from kuairec_db.stages import select_body

_BUILD = BuildParams()  # the defaults of build(), declared in kuairec_db/params.py
Database = str | os.PathLike | duckdb.DuckDBPyConnection


def build(
    db: str | os.PathLike = DEFAULT_DB,
    *,
    data: str | os.PathLike | None = None,
    demo: bool = _BUILD.demo,
    demo_scale: float = _BUILD.demo_scale,
    models: Sequence[str] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
    top_n: int = _BUILD.top_n,
    k: Sequence[int] = tuple(_BUILD.k),
    label: str = _BUILD.label,
    label_threshold: float = _BUILD.label_threshold,
    label_quantile: float = _BUILD.label_quantile,
    confidence_alpha: float = _BUILD.confidence_alpha,
    bootstrap: int = _BUILD.bootstrap_replicates,
    threads: int | None = None,
    memory_limit: str | None = None,
    config: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    force: bool = _BUILD.force,
):
    """Build (or update) the database, like ``python -m kuairec_db build``.

    Parameters
    ----------
    db : path, default "kuairec.duckdb"
        The database file to write (``--db``).
    data : path, optional
        A KuaiRec folder or ``KuaiRec.zip`` (``--data``); by default found as the README says,
        else the synthetic demo.
    demo, demo_scale : bool, float
        Force the synthetic demo, and its size as a share of KuaiRec's users and videos.
    models : list of str, optional
        Models to run (``--models``); default every shipped model plus the user's own.
    settings : dict, optional
        Per-model setting overrides, ``{"als": {"factors": 64}}`` (``--set als.factors=64``).
    top_n, k, label, label_threshold, label_quantile, confidence_alpha, bootstrap
        As the CLI options of the same names.
    threads, memory_limit : int, str, optional
        DuckDB's threads (default all cores) and memory limit (default 1GB, see README).
    config : path, optional
        Model settings file (default ``settings.toml`` in the models folder).
    models_dir : path, optional
        Folder of the user's own models (``--models-dir``; default ``./models`` if it exists).
    force : bool
        Rebuild everything, not only what changed.

    Returns
    -------
    BuildResult
        ``db`` (the absolute path), ``up_to_date`` (nothing needed rebuilding), ``rebuilt``
        and ``kept`` (the tables and ``model:NAME`` entries recomputed and reused),
        ``data_kind``, ``data_location``, ``seconds`` and ``warnings``.

    Examples
    --------
    >>> result = kuairec_db.build("demo.duckdb", demo=True, models=["popularity", "als"])
    >>> result.db, result.rebuilt[:2]
    """
    from kuairec_db.build import build as run_build

    params = BuildParams(
        db=Path(db),
        data=Path(data) if data is not None else None,
        demo=demo,
        demo_scale=demo_scale,
        models=list(models) if models is not None else None,
        settings={m: dict(v) for m, v in (settings or {}).items()},
        top_n=top_n,
        k=list(k),
        label=label,
        label_threshold=label_threshold,
        label_quantile=label_quantile,
        confidence_alpha=confidence_alpha,
        bootstrap_replicates=bootstrap,
        threads=threads or os.cpu_count() or 1,
        memory_limit=memory_limit,
        force=force,
        config=Path(config) if config is not None else None,
    )
    previous = resources.user_models_dir() if models_dir is not None else None
    if models_dir is not None:
        resources.set_models_dir(models_dir)
    try:
        return run_build(params)
    finally:
        if models_dir is not None:
            resources.set_models_dir(previous)


def connect(db: str | os.PathLike = DEFAULT_DB) -> duckdb.DuckDBPyConnection:
    """Open a built database read-only.

    Parameters
    ----------
    db : path, default "kuairec.duckdb"

    Returns
    -------
    duckdb.DuckDBPyConnection
        Query it with ``.sql("from eval_metrics").df()``; close it when done.

    Raises
    ------
    kuairec_db.UserError
        When there is no database at ``db`` or it cannot be opened.
    """
    path = Path(db)
    if not path.is_file():
        raise UserError(f"{db}: no database here; build it first: python -m kuairec_db build")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{db}: cannot open the database ({first})") from None


@contextlib.contextmanager
def _opened(db: Database) -> Iterator[duckdb.DuckDBPyConnection]:
    if isinstance(db, duckdb.DuckDBPyConnection):
        yield db
        return
    con = connect(db)
    try:
        yield con
    finally:
        con.close()


def _models_in(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    rows = con.execute(f"select distinct model from {relation} order by 1").fetchall()
    return [r[0] for r in rows]


def recommend(
    user_id: int, model: str = "als", n: int = 10, *, db: Database = DEFAULT_DB
) -> pd.DataFrame:
    """One big-matrix user's top-``n`` videos by ``model``, with captions.

    Parameters
    ----------
    user_id : int
        A user of the big matrix (training data).
    model : str, default "als"
    n : int, default 10
        At most the build's ``--top-n``.
    db : path or connection

    Returns
    -------
    pandas.DataFrame
        One row per video, best first: ``rank, video_id, score, caption,
        first_level_category_name, video_duration_s, train_n_users``.
    """
    if n < 1:
        raise UserError("n must be at least 1")
    with _opened(db) as con:
        models = _models_in(con, "recommendations")
        if model not in models:
            raise UserError(f"no model {model!r} in the database; it has: {', '.join(models)}")
        frame = con.execute(
            """
            select rank, video_id, score, caption, first_level_category_name,
                   video_duration_s, train_n_users
            from recommendations_explained
            where model = ? and user_id = ? and rank <= ?
            order by rank
            """,
            [model, int(user_id), int(n)],
        ).df()
        if frame.empty:
            known = con.execute(
                "select count(distinct user_id) from recommendations where model = ?", [model]
            ).fetchone()[0]
            raise UserError(f"unknown user id {user_id}: not among the {known:,} big-matrix users")
    return frame


def metrics(
    split: str = "test",
    k: int | Iterable[int] | None = 10,
    with_ci: bool = True,
    *,
    db: Database = DEFAULT_DB,
) -> pd.DataFrame:
    """The leaderboard: every model's mean metrics over a split's users.

    Parameters
    ----------
    split : {"test", "tune", "all"}, default "test"
    k : int, list of int or None, default 10
        Cutoffs to keep (None: all the build computed).
    with_ci : bool, default True
        Add the 95% bootstrap percentile interval (``ci_low``, ``ci_high``, from
        ``eval_metrics_ci``; about a second at full scale).
    db : path or connection

    Returns
    -------
    pandas.DataFrame
        One row per model, k and metric: ``model, split, k, metric, value, n_users`` (and
        ``ci_low, ci_high``), sorted by model, k, metric.
    """
    if split not in ("test", "tune", "all"):
        raise UserError(f"split must be test, tune or all, not {split!r}")
    ks = None if k is None else ([int(k)] if isinstance(k, int) else [int(x) for x in k])
    relation = "eval_metrics_ci" if with_ci else "eval_metrics"
    columns = "model, split, k, metric, value, n_users" + (", ci_low, ci_high" if with_ci else "")
    with _opened(db) as con:
        frame = con.execute(
            f"select {columns} from {relation} where split = ? "
            "and (?::integer[] is null or list_contains(?::integer[], k)) "
            "order by model, k, metric",
            [split, ks, ks],
        ).df()
        if frame.empty:
            have = [
                r[0]
                for r in con.execute("select distinct k from eval_metrics order by 1").fetchall()
            ]
            raise UserError(f"no metrics for split {split} at k {ks}; the database has k {have}")
    return frame


def _similar(
    con: duckdb.DuckDBPyConnection, video_ids: list[int], model: str, n: int
) -> tuple[pd.DataFrame, str]:
    if n < 1:
        raise UserError("n must be at least 1")
    if not video_ids:
        raise UserError("give at least one video id")
    known = {
        r[0]
        for r in con.execute(
            "select video_id from feat_video_content where list_contains(?, video_id)",
            [video_ids],
        ).fetchall()
    }
    unknown = [v for v in video_ids if v not in known]
    if unknown:
        raise UserError(f"unknown video id(s) {', '.join(map(str, unknown))}")
    all_models = _models_in(con, "recommendations")
    if model not in all_models:
        raise UserError(f"no model {model!r} in the database; it has: {', '.join(all_models)}")
    if model in _models_in(con, "model_item_factors"):
        method = "factors"
    elif model in _models_in(con, "model_video_neighbours"):
        method = "neighbours"
    else:
        method = "coviews"
    api_dir = resources.SQL_DIR / "api"
    scores_sql = select_body((api_dir / f"similar_by_{method}.sql").read_text(encoding="utf-8"))
    con.execute("set variable api_model = ?", [model])
    con.execute("set variable api_video_ids = ?::integer[]", [video_ids])
    con.execute("set variable api_n = ?::bigint", [n])
    # the scores, then the one decoration both methods share (a template over api_scores)
    con.execute(f"create or replace temp table api_scores as {scores_sql}")
    try:
        frame = con.execute((api_dir / "similar_videos.sql").read_text(encoding="utf-8")).df()
    finally:
        con.execute("drop table if exists temp.api_scores")
    frame.insert(0, "rank", range(1, len(frame) + 1))
    return frame, method


def similar_videos(
    video_id: int, model: str = "als", n: int = 10, *, db: Database = DEFAULT_DB
) -> pd.DataFrame:
    """The ``n`` videos most like ``video_id``.

    A model with item factors (als, bpr) compares factors by cosine; a model that stores its
    item-item similarities (itemknn, ``model_video_neighbours``) uses them; any other model uses
    the item neighbours of the training data (cosine of the videos' sets of viewers), all in SQL
    (``sql/api/similar_by_factors.sql``, ``similar_by_neighbours.sql``,
    ``similar_by_coviews.sql``).

    Parameters
    ----------
    video_id : int
    model : str, default "als"
    n : int, default 10
    db : path or connection

    Returns
    -------
    pandas.DataFrame
        ``rank, video_id, score, caption, first_level_category_name, video_duration_s,
        train_n_users``, most similar first; ``attrs["method"]`` is "factors", "neighbours"
        or "coviews".
    """
    with _opened(db) as con:
        frame, method = _similar(con, [int(video_id)], model, int(n))
    frame.attrs["method"] = method
    return frame


def recommend_for_history(
    video_ids: Iterable[int], model: str = "als", n: int = 10, *, db: Database = DEFAULT_DB
) -> pd.DataFrame:
    """Recommendations for someone who is not in the data, from the videos they watched.

    Each unwatched video scores the mean of its similarity to the watched ones (item factors
    for a factor model, the stored similarities for itemknn, training co-views otherwise, as
    :func:`similar_videos`).

    Parameters
    ----------
    video_ids : iterable of int
        The videos the new user watched (or liked).
    model : str, default "als"
    n : int, default 10
    db : path or connection

    Returns
    -------
    pandas.DataFrame
        As :func:`similar_videos`, the watched videos left out.
    """
    ids = list(dict.fromkeys(int(v) for v in video_ids))
    with _opened(db) as con:
        frame, method = _similar(con, ids, model, int(n))
    frame.attrs["method"] = method
    return frame
