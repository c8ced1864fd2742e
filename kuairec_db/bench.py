"""``bench``: build the demo dataset at several scales and report time and memory.

For each scale it measures, in the same run and on the same files:
- the floor: a bare DuckDB scan of the two matrices (every column parsed) plus a bare ALS fit
  with the build's settings on the deduplicated big matrix, each in its own process;
- the build (``--models popularity,als``) in its own process: wall time, CPU time, peak RSS,
  and the per-stage and per-model seconds it records in build_info;
- the aggregation floor: DuckDB reading both CSVs into tables, one group-by to (user, video)
  pairs, the CSR matrix and the bare ALS fit, in one process;
- the seed notebook's pipeline written in pandas (``benchmarks/pandas_pipeline.py`` of the
  checkout, when it is there): wall time, CPU time and peak RSS, the yardstick a user compares
  with;
- a no-op rebuild (nothing changed) and the median latency of one user's recommendations.
At the largest scale up to 1.0 also the model yardsticks: one build with every model (wall
time, peak RSS, each model's seconds) and, for each model whose work is a library's (als, bpr,
ease, itemknn), the bare library fit and top-N of every user with the build's settings on the
build's own training matrix, and the model's ratio to it; then, on a copy of that build, the
rest of the workflow: exposure-study with its defaults and tune --models als --budget 2 (each
trial against the build's ALS fit). Scales above 1.0 (more users than
KuaiRec) show the growth: time and peak RSS per doubling of the data.
CPU seconds are reported beside wall seconds: on a shared machine they move less with the load.
Writes bench.json and bench.md into --out, after every scale.

Size: over 500 lines because each yardstick is a script run in its own process (for an
honest peak RSS), kept beside the code that reads its numbers back.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from kuairec_db.errors import UserError
from kuairec_db.schema import INTERACTION_COLUMNS

log = logging.getLogger(__name__)

BUILD_MODELS = "popularity,als"


class Run(NamedTuple):
    wall: float  # seconds
    rss_mb: float  # the child's peak RSS
    output: str
    cpu: float  # the child's user + system seconds: less sensitive than wall to other jobs


def _run_measured(args: list[str], cwd: Path | None = None) -> Run:
    """Run a Python subprocess; returns its wall time, peak RSS, output and CPU time."""
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=cwd, stdout=output, stderr=subprocess.STDOUT, text=True
        )
        # wait4 reports this child's own peak RSS (ru_maxrss is in kB on Linux).
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read()
    if proc.returncode != 0:
        last = (text.strip().splitlines() or ["no output"])[-1][:500]
        raise UserError(f"{' '.join(args[:4])} failed (exit {proc.returncode}): {last}")
    return Run(wall, usage.ru_maxrss / 1024, text, usage.ru_utime + usage.ru_stime)


_SCAN = """
import sys, time, duckdb
columns = {columns!r}
con = duckdb.connect(config={{"threads": "{threads}"}})
con.execute("set enable_progress_bar = false")
started = time.perf_counter()
for name in ("big_matrix.csv", "small_matrix.csv"):
    path = sys.argv[1] + "/" + name
    aggregates = ", ".join(f'count("{{c}}")' for c in columns)
    con.execute(
        f"select {{aggregates}} from read_csv('{{path}}', columns = {{columns}}, "
        "auto_detect = false, header = true, delim = ',', quote = '\\"', escape = '\\"')"
    ).fetchall()
print(f"SECONDS {{time.perf_counter() - started:.3f}}")
"""

_ALS = """
import sys, time, duckdb, numpy as np, scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits
con = duckdb.connect(config={{"threads": "{threads}"}})
con.execute("set enable_progress_bar = false")
columns = {columns!r}
source = sys.argv[1] + "/big_matrix.csv"
rows, cols, vals = con.execute(
    "select dense_rank() over (order by user_id) - 1, dense_rank() over (order by video_id) - 1, "
    "1 + {alpha} * ln(1 + sum(least(greatest(watch_ratio, 0), 5))) "
    "from read_csv('" + source + "', columns = " + str(columns) + ", auto_detect = false, "
    "header = true) group by user_id, video_id"
).fetchnumpy().values()
matrix = sp.csr_matrix((vals.astype(np.float32), (rows, cols)))
with threadpool_limits(1, "blas"):
    model = AlternatingLeastSquares(factors={factors}, regularization={regularization},
                                    iterations={iterations}, random_state=42,
                                    num_threads={threads}, calculate_training_loss=False)
    started = time.perf_counter()
    model.fit(matrix, show_progress=False)
print(f"SECONDS {{time.perf_counter() - started:.3f}}")
"""


_AGGREGATION_FLOOR = """
import sys, time, duckdb, numpy as np, scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits
started = time.perf_counter()
con = duckdb.connect(config={{"threads": "{threads}"}})
con.execute("set enable_progress_bar = false")
columns = {columns!r}
for name in ("big_matrix", "small_matrix"):
    con.execute(
        f"create table {{name}} as select * from read_csv('{{sys.argv[1]}}/{{name}}.csv', "
        f"columns = {{columns}}, auto_detect = false, header = true)"
    )
rows, cols, vals = con.execute(
    "select dense_rank() over (order by user_id) - 1, dense_rank() over (order by video_id) - 1, "
    "1 + {alpha} * ln(1 + sum(least(greatest(watch_ratio, 0), 5))) "
    "from big_matrix group by user_id, video_id"
).fetchnumpy().values()
matrix = sp.csr_matrix((vals.astype(np.float32), (rows, cols)))
with threadpool_limits(1, "blas"):
    model = AlternatingLeastSquares(factors={factors}, regularization={regularization},
                                    iterations={iterations}, random_state=42,
                                    num_threads={threads}, calculate_training_loss=False)
    model.fit(matrix, show_progress=False)
print(f"SECONDS {{time.perf_counter() - started:.3f}}")
"""

_MODEL_FLOOR = """
import json, sys, time, duckdb, numpy as np, scipy.sparse as sp
from threadpoolctl import threadpool_limits
db, name, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect(db, read_only=True)
info = dict(con.execute("select key, value from build_info").fetchall())
settings = json.loads(info["model." + name + ".settings"])
top_n = int(info.get("param.top_n", 100))
seed = int(info.get("param.seed", 42))
rows, cols, vals = con.execute(
    "select u.user_index, i.item_index, t.confidence::float from int_train_interactions as t "
    "inner join int_user_index as u using (user_id) inner join int_item_index as i using (video_id)"
).fetchnumpy().values()
shape = (con.execute("select count(*) from int_user_index").fetchone()[0],
         con.execute("select count(*) from int_item_index").fetchone()[0])
con.close()
matrix = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=shape)
users = np.arange(shape[0])
started = time.perf_counter()
if name in ("als", "bpr", "itemknn"):
    if name == "als":
        from implicit.cpu.als import AlternatingLeastSquares
        model = AlternatingLeastSquares(
            factors=settings["factors"], regularization=settings["regularization"],
            iterations=settings["iterations"], random_state=seed, num_threads=threads,
            calculate_training_loss=False)
    elif name == "bpr":
        from implicit.cpu.bpr import BayesianPersonalizedRanking
        from kuairec_db.runner import discover, load_module
        auto = load_module(discover()["bpr"]).auto_iterations(matrix.nnz)
        model = BayesianPersonalizedRanking(
            factors=settings["factors"], learning_rate=settings["learning_rate"],
            regularization=settings["regularization"],
            iterations=settings["iterations"] or auto, random_state=seed,
            num_threads=settings["fit_threads"], verify_negative_samples=True)
    else:
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
        model = (CosineRecommender(K=settings["K"], num_threads=threads)
                 if settings["weighting"] == "cosine" else
                 BM25Recommender(K=settings["K"], K1=settings["K1"], B=settings["B"],
                                 num_threads=threads))
    with threadpool_limits(1, "blas"):
        model.fit(matrix, show_progress=False)
        fitted = time.perf_counter()
        ids, scores = model.recommend(users, matrix[users], N=top_n,
                                      filter_already_liked_items=True)
elif name == "ease":
    from scipy.linalg import lapack
    with threadpool_limits(threads, "blas"):
        x = matrix.toarray()
        gram = x.T @ x
        gram[np.diag_indices_from(gram)] += settings["l2"]
        factor, _ = lapack.spotrf(gram.T, lower=True, overwrite_a=True, clean=False)
        inverse, _ = lapack.spotri(factor, lower=True, overwrite_c=True)
        inverse = np.tril(inverse) + np.tril(inverse, -1).T
        weights = inverse / -np.diag(inverse)
        np.fill_diagonal(weights, 0)
        fitted = time.perf_counter()
        for start in range(0, shape[0], 1024):
            batch = x[start:start + 1024] @ weights
            batch[x[start:start + 1024] != 0] = -np.inf
            top = np.argpartition(-batch, top_n - 1, axis=1)[:, :top_n]
            np.take_along_axis(batch, top, 1).argsort(axis=1)
else:
    raise SystemExit(f"no library floor for {name}")
done = time.perf_counter()
print(f"FIT {fitted - started:.3f}")
print(f"SECONDS {done - started:.3f}")
"""

# Models whose library work the bench repeats bare (_MODEL_FLOOR); the others (hybrid,
# video_quality, two_stage, the SQL models) are their own code, so their recorded fit is shown.
LIBRARY_FLOOR_MODELS = ("als", "bpr", "ease", "itemknn")

PANDAS_PIPELINE = Path(__file__).resolve().parents[1] / "benchmarks" / "pandas_pipeline.py"


def _seconds(output: str) -> float:
    found = re.findall(r"SECONDS ([0-9.]+)", output)
    if found:
        return float(found[-1])
    raise RuntimeError(f"no timing in: {output[-300:]}")


def _floor(data: Path, threads: int) -> dict[str, float]:
    from kuairec_db.build import BuildParams
    from kuairec_db.runner import discover, model_defaults

    params = BuildParams()
    settings = model_defaults(discover()["als"])
    scan = _SCAN.format(columns=INTERACTION_COLUMNS, threads=threads)
    als = _ALS.format(
        columns=INTERACTION_COLUMNS, threads=threads, alpha=params.confidence_alpha, **settings
    )
    _, scan_rss, out, _ = _run_measured(["-c", scan, str(data)])
    scan_s = _seconds(out)
    _, als_rss, out, _ = _run_measured(["-c", als, str(data)])
    fit_s = _seconds(out)
    aggregation = _AGGREGATION_FLOOR.format(
        columns=INTERACTION_COLUMNS, threads=threads, alpha=params.confidence_alpha, **settings
    )
    aggregation = _run_measured(["-c", aggregation, str(data)])
    return {
        "scan_seconds": scan_s,
        "als_fit_seconds": fit_s,
        "floor_seconds": scan_s + fit_s,
        "scan_peak_rss_mb": scan_rss,
        "als_peak_rss_mb": als_rss,
        "aggregation_floor_seconds": aggregation.wall,
        "aggregation_floor_peak_rss_mb": aggregation.rss_mb,
        "aggregation_floor_cpu_seconds": aggregation.cpu,
    }


def _pandas_pipeline(data: Path, threads: int) -> dict[str, float]:
    """The seed's pipeline in pandas, when the checkout's benchmarks/ folder is there."""
    if not PANDAS_PIPELINE.is_file():
        log.info("no %s (an installed package): the pandas yardstick is left out", PANDAS_PIPELINE)
        return {}
    run = _run_measured([str(PANDAS_PIPELINE), str(data), "--threads", str(threads)])
    return {
        "pandas_seconds": run.wall,
        "pandas_peak_rss_mb": run.rss_mb,
        "pandas_cpu_seconds": run.cpu,
    }


def _lookup_latency_ms(db: Path, n: int = 200) -> float:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    users = [
        r[0]
        for r in con.execute(
            "select distinct user_id from recommendations order by hash(user_id) limit ?", [n]
        ).fetchall()
    ]
    times = []
    for user_id in users:
        started = time.perf_counter()
        con.execute(
            "select rank, video_id, score from recommendations where model = ? and user_id = ? "
            "order by rank",
            ["als", user_id],
        ).fetchall()
        times.append((time.perf_counter() - started) * 1000)
    con.close()
    return statistics.median(times)


def _generate(data: Path, scale: float) -> None:
    """The demo data of SCALE in DATA, in a child process.

    A child's peak RSS starts from its parent's size at fork, so this process must stay small
    for the measurements. The full catalogue at every scale: rows (and work) grow in proportion
    to the scale, so growth is visible; above 1.0 there are more users than KuaiRec has.
    """
    script = (
        "import sys; from pathlib import Path; from kuairec_db import demo; "
        "demo.generate(Path(sys.argv[1]), scale=float(sys.argv[2]), full_catalogue=True)"
    )
    _run_measured(["-c", script, str(data), str(scale)])


def _build_args(data: Path, db: Path, models: str, threads: int, memory_limit: str | None):
    args = ["-m", "kuairec_db", "-q", "build", "--data", str(data), "--db", str(db)]
    args += ["--models", models, "--threads", str(threads)]
    return args + (["--memory-limit", memory_limit] if memory_limit else [])


def _fetch(db: Path, sql: str) -> list[tuple]:
    """The rows of SQL on the database DB, opened read-only."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _build_info(db: Path) -> dict[str, str]:
    return dict(_fetch(db, "select key, value from build_info"))


def _big_matrix_rows(db: Path) -> int:
    return int(_fetch(db, "select sum(n_log_rows) from int_big_matrix_events")[0][0])


def _timed(info: dict[str, str], prefix: str, suffix: str = ".seconds") -> dict[str, float]:
    return {
        k.split(".")[1]: float(v)
        for k, v in info.items()
        if k.startswith(prefix) and k.endswith(suffix)
    }


def model_yardsticks(
    data: Path, out: Path, scale: float, threads: int, memory_limit, names: list[str]
) -> dict:
    """The models NAMES in one build (wall, peak RSS, each model's seconds), then each library
    model's floor: the bare library fit and top-N of every user with the build's settings, on
    the build's own training matrix, in its own process."""
    db = out / f"bench-{scale}-all-models.duckdb"
    db.unlink(missing_ok=True)
    log.info("scale %s: build with every model (%s)", scale, ",".join(names))
    run = _run_measured(_build_args(data, db, ",".join(names), threads, memory_limit))
    info = _build_info(db)
    models = {}
    for name in names:
        seconds = float(info.get(f"model.{name}.seconds", "nan"))
        entry = {
            "seconds": seconds,
            "fit_seconds": float(info.get(f"model.{name}.fit_seconds", "nan")),
        }
        if name in LIBRARY_FLOOR_MODELS:
            log.info("scale %s: the bare library floor of %s", scale, name)
            _, floor_rss, text, _ = _run_measured(["-c", _MODEL_FLOOR, str(db), name, str(threads)])
            floor_seconds = _seconds(text)
            entry.update(
                floor_seconds=floor_seconds,
                floor_fit_seconds=float(re.findall(r"FIT ([0-9.]+)", text)[-1]),
                floor_peak_rss_mb=floor_rss,
                over_floor=seconds / floor_seconds,
            )
        models[name] = entry
    return {
        "all_models_build_seconds": run.wall,
        "all_models_build_peak_rss_mb": run.rss_mb,
        "all_models_build_cpu_seconds": run.cpu,
        "models": models,
        "workflow": workflow_yardsticks(db, out, scale, threads, memory_limit, info),
    }


def workflow_yardsticks(
    db: Path, out: Path, scale: float, threads: int, memory_limit, info: dict[str, str]
) -> dict:
    """The rest of the workflow on a copy of the every-model build, each in its own process:
    exposure-study with its defaults (wall, peak RSS, its own study and temporal seconds) and,
    when the build has ALS, tune --models als --budget 2, whose trials are compared with the
    build's ALS fit (a trial is a fit plus its tune-user evaluation)."""

    copy = out / f"bench-{scale}-workflow.duckdb"
    shutil.copyfile(db, copy)
    try:
        return _workflow_on(copy, out, scale, threads, memory_limit, info)
    finally:
        copy.unlink(missing_ok=True)


def _workflow_on(copy: Path, out: Path, scale: float, threads: int, memory_limit, info) -> dict:
    common = ["--db", str(copy), "--threads", str(threads)]
    common += ["--memory-limit", memory_limit] if memory_limit else []
    log.info("scale %s: exposure-study on the every-model build", scale)
    study = _run_measured(["-m", "kuairec_db", "-q", "exposure-study", *common])
    result: dict = {
        "exposure_study_seconds": study.wall,
        "exposure_study_peak_rss_mb": study.rss_mb,
    }
    facts = dict(_fetch(copy, "select key, value from eval_exposure_info"))
    result["exposure_study_repeats"] = int(facts["repeats"])
    for key in ("study_seconds", "temporal_seconds"):
        result[f"exposure_{key}"] = float(facts.get(key, "nan"))
    fit = float(info.get("model.als.fit_seconds", "nan"))
    if not math.isnan(fit):
        log.info("scale %s: tune --models als --budget 2", scale)
        settings = out / f"bench-{scale}-tuned-settings.toml"
        args = ["-m", "kuairec_db", "-q", "tune", *common, "--models", "als", "--budget", "2"]
        tune = _run_measured([*args, "--write", str(settings)])
        query = "select seconds from tuning_trials where model = 'als' order by trial"
        trials = [r[0] for r in _fetch(copy, query)]
        result.update(
            tune_seconds=tune.wall,
            tune_peak_rss_mb=tune.rss_mb,
            tune_trial_seconds=trials,
            als_fit_seconds=fit,
            tune_trial_over_als_fit=statistics.mean(trials) / fit,
        )
        settings.unlink(missing_ok=True)
    return result


def run_scale(
    scale: float,
    out: Path,
    threads: int,
    memory_limit: str | None,
    models: list[str] | None = None,
) -> dict:
    data = out / f"data-{scale}-full-catalogue"
    if not (data / "big_matrix.csv").is_file():
        log.info("scale %s: generating the demo data in %s", scale, data)
        _generate(data, scale)
    sizes = {p.name: p.stat().st_size for p in data.glob("*.csv")}
    log.info("scale %s: floor (bare scan + bare ALS fit)", scale)
    floor = _floor(data, threads)
    log.info("scale %s: the seed's pipeline in pandas", scale)
    pandas = _pandas_pipeline(data, threads)
    db = out / f"bench-{scale}.duckdb"
    db.unlink(missing_ok=True)
    build_args = _build_args(data, db, BUILD_MODELS, threads, memory_limit)
    log.info("scale %s: build", scale)
    wall, rss, _, cpu = _run_measured(build_args)
    log.info("scale %s: no-op rebuild and lookups", scale)
    noop_wall = _run_measured(build_args).wall
    info = _build_info(db)
    result = {
        "scale": scale,
        "csv_bytes": sum(sizes.values()),
        "big_matrix_rows": _big_matrix_rows(db),
        **floor,
        **pandas,
        "build_seconds": wall,
        "build_peak_rss_mb": rss,
        "build_cpu_seconds": cpu,
        "build_over_floor": wall / floor["floor_seconds"],
        "build_over_aggregation_floor": wall / floor["aggregation_floor_seconds"],
        "build_over_pandas": wall / pandas["pandas_seconds"] if pandas else None,
        "build_rss_over_pandas": rss / pandas["pandas_peak_rss_mb"] if pandas else None,
        "build_cpu_over_aggregation_floor": cpu / floor["aggregation_floor_cpu_seconds"],
        "build_cpu_over_pandas": cpu / pandas["pandas_cpu_seconds"] if pandas else None,
        "memory_limit": info.get("param.memory_limit"),
        "noop_rebuild_seconds": noop_wall,
        "lookup_median_ms": _lookup_latency_ms(db),
        "db_bytes": db.stat().st_size,
        "stage_seconds": _timed(info, "stage."),
        "model_seconds": _timed(info, "model."),
        "als_fit_in_build_seconds": float(info.get("model.als.fit_seconds", "nan")),
    }
    if models:
        result.update(model_yardsticks(data, out, scale, threads, memory_limit, models))
    return result


def growth(results: list[dict]) -> list[dict]:
    """Per step between consecutive scales: the factor per doubling of the data,
    (t2 / t1) ** (1 / log2(s2 / s1)), of the build's time and peak RSS and of the floor."""
    steps = []
    by_scale = sorted(results, key=lambda r: r["scale"])
    for small, large in zip(by_scale, by_scale[1:]):
        doublings = math.log2(large["scale"] / small["scale"])

        def per_doubling(key: str, small=small, large=large, doublings=doublings) -> float:
            return (large[key] / small[key]) ** (1 / doublings)

        steps.append(
            {
                "from_scale": small["scale"],
                "to_scale": large["scale"],
                "build_time_per_doubling": per_doubling("build_seconds"),
                "build_rss_per_doubling": per_doubling("build_peak_rss_mb"),
                "aggregation_floor_per_doubling": per_doubling("aggregation_floor_seconds"),
                "big_matrix_rows_per_doubling": per_doubling("big_matrix_rows"),
                "csv_bytes_per_doubling": per_doubling("csv_bytes"),
            }
        )
    return steps


def _markdown(results: list[dict], machine: str) -> str:
    lines = [
        f"Machine: {machine}",
        "",
        "| scale | floor s (scan + ALS fit) | build s | build / floor | peak RSS MB | "
        "no-op rebuild s | lookup median ms | database MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['scale']} | {r['floor_seconds']:.1f} ({r['scan_seconds']:.1f} + "
            f"{r['als_fit_seconds']:.1f}) | {r['build_seconds']:.1f} | "
            f"{r['build_over_floor']:.2f} | {r['build_peak_rss_mb']:.0f} | "
            f"{r['noop_rebuild_seconds']:.2f} | {r['lookup_median_ms']:.2f} | "
            f"{r['db_bytes'] / 1e6:.0f} |"
        )
    lines += [
        "",
        "| scale | aggregation floor s | build / aggregation floor | pandas pipeline s | "
        "pandas peak RSS MB | build / pandas (time) | build / pandas (peak RSS) | "
        "build / aggregation floor, CPU s | build / pandas, CPU s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        pandas = (
            f"{r['pandas_seconds']:.1f} | {r['pandas_peak_rss_mb']:.0f} | "
            f"{r['build_over_pandas']:.2f} | {r['build_rss_over_pandas']:.2f}"
            if r.get("pandas_seconds")
            else "- | - | - | -"
        )
        pandas_cpu = f"{r['build_cpu_over_pandas']:.2f}" if r.get("pandas_seconds") else "-"
        lines.append(
            f"| {r['scale']} | {r['aggregation_floor_seconds']:.1f} | "
            f"{r['build_over_aggregation_floor']:.2f} | {pandas} | "
            f"{r['build_cpu_over_aggregation_floor']:.2f} | {pandas_cpu} |"
        )
    for r in results:
        if "models" not in r:
            continue
        lines += [
            "",
            f"Every model at scale {r['scale']}: one build {r['all_models_build_seconds']:.1f} s, "
            f"peak RSS {r['all_models_build_peak_rss_mb']:.0f} MB. A library floor is the bare "
            "library fit and top-N of every user with the same settings, in its own process.",
            "",
            "| model | in the build s | its fit s | library floor s (fit) | model / floor |",
            "|---|---|---|---|---|",
        ]
        for name, m in sorted(r["models"].items(), key=lambda kv: -kv[1]["seconds"]):
            floor = (
                f"{m['floor_seconds']:.1f} ({m['floor_fit_seconds']:.1f}) | {m['over_floor']:.2f}"
                if "floor_seconds" in m
                else "- | -"
            )
            fit = "-" if math.isnan(m["fit_seconds"]) else f"{m['fit_seconds']:.1f}"
            lines.append(f"| {name} | {m['seconds']:.1f} | {fit} | {floor} |")
        w = r.get("workflow")
        if w:
            lines += [
                "",
                f"The workflow on that build: exposure-study ({w['exposure_study_repeats']} "
                f"repeats, the temporal split included) {w['exposure_study_seconds']:.1f} s, "
                f"peak RSS {w['exposure_study_peak_rss_mb']:.0f} MB.",
            ]
            if "tune_seconds" in w:
                trials = ", ".join(f"{t:.1f}" for t in w["tune_trial_seconds"])
                lines[-1] += (
                    f" tune --models als --budget 2: {w['tune_seconds']:.1f} s, peak RSS "
                    f"{w['tune_peak_rss_mb']:.0f} MB; trials {trials} s against the build's ALS "
                    f"fit {w['als_fit_seconds']:.1f} s: {w['tune_trial_over_als_fit']:.2f}x."
                )
    steps = growth(results)
    if steps:
        lines += [
            "",
            "| scales | build time per doubling | build peak RSS per doubling | "
            "aggregation floor per doubling | big-matrix rows per doubling |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {s['from_scale']} -> {s['to_scale']} | {s['build_time_per_doubling']:.2f}x | "
            f"{s['build_rss_per_doubling']:.2f}x | {s['aggregation_floor_per_doubling']:.2f}x | "
            f"{s['big_matrix_rows_per_doubling']:.2f}x |"
            for s in steps
        ]
    slowest = max(results, key=lambda r: r["scale"])
    lines += ["", f"Slowest stages of the popularity,als build at scale {slowest['scale']}:", ""]
    timed = sorted(
        {
            **slowest["stage_seconds"],
            **{f"model {k}": v for k, v in slowest["model_seconds"].items()},
        }.items(),
        key=lambda kv: -kv[1],
    )
    lines += [f"- {name}: {sec:.1f} s" for name, sec in timed[:8]]
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {mem_gb:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def bench(
    scales: list[float],
    out: Path,
    threads: int,
    memory_limit: str | None,
    models: list[str] | None = None,
) -> list[dict]:
    """Every scale in turn; the model yardsticks of MODELS (default every model; [] for none:
    their build and library floors) at the largest scale up to 1.0, the real KuaiRec shape."""
    from kuairec_db.runner import discover

    out.mkdir(parents=True, exist_ok=True)
    models = list(discover()) if models is None else models
    within = [s for s in scales if s <= 1.0]
    models_scale = max(within) if models and within else None
    results = []
    for scale in scales:
        try:
            result = run_scale(
                scale, out, threads, memory_limit, models if scale == models_scale else None
            )
        except UserError as exc:
            kept = f"; the scales before are in {out / 'bench.json'}" if results else ""
            raise UserError(f"bench at scale {scale}: {exc}{kept}") from None
        results.append(result)
        log.info(
            "scale %s: build %.1f s, floor %.1f s (ratio %.2f), peak RSS %.0f MB",
            scale,
            result["build_seconds"],
            result["floor_seconds"],
            result["build_over_floor"],
            result["build_peak_rss_mb"],
        )
        # written after every scale, so a long run that stops keeps what it measured
        _write(out, results)
    return results


def _write(out: Path, results: list[dict]) -> None:
    machine = machine_description()
    document = {"machine": machine, "results": results, "growth": growth(results)}
    (out / "bench.json").write_text(json.dumps(document, indent=2))
    (out / "bench.md").write_text(_markdown(results, machine))
