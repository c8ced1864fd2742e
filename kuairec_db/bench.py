"""``bench``: build the demo dataset at several scales and report time and memory.

For each scale it measures, in the same run and on the same files:
- the floor: a bare DuckDB scan of the two matrices (every column parsed) plus a bare ALS fit
  with the build's settings on the deduplicated big matrix, each in its own process;
- the build (``--models popularity,als``) in its own process: wall time, peak RSS, and the
  per-stage and per-model seconds it records in build_info;
- the aggregation floor: DuckDB reading both CSVs into tables, one group-by to (user, video)
  pairs, the CSR matrix and the bare ALS fit, in one process;
- the seed notebook's pipeline written in pandas (``benchmarks/pandas_pipeline.py`` of the
  checkout, when it is there): wall time and peak RSS, the yardstick a user compares with;
- a no-op rebuild (nothing changed) and the median latency of one user's recommendations.
Writes bench.json and bench.md into --out.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from kuairec_db.schema import INTERACTION_COLUMNS

log = logging.getLogger(__name__)

BUILD_MODELS = "popularity,als"


def _run_measured(args: list[str], cwd: Path | None = None) -> tuple[float, float, str]:
    """Run a Python subprocess; returns (wall seconds, its peak RSS in MB, its output)."""
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
        raise RuntimeError(
            f"{' '.join(args[:4])} failed ({proc.returncode}): {text.strip()[-500:]}"
        )
    return wall, usage.ru_maxrss / 1024, text


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

PANDAS_PIPELINE = Path(__file__).resolve().parents[1] / "benchmarks" / "pandas_pipeline.py"


def _seconds(output: str) -> float:
    found = re.findall(r"SECONDS ([0-9.]+)", output)
    if found:
        return float(found[-1])
    raise RuntimeError(f"no timing in: {output[-300:]}")


def _floor(data: Path, threads: int) -> dict[str, float]:
    from kuairec_db.build import BuildParams
    from kuairec_db.hooks import discover, model_defaults

    params = BuildParams()
    settings = model_defaults(discover()["als"])
    scan = _SCAN.format(columns=INTERACTION_COLUMNS, threads=threads)
    als = _ALS.format(
        columns=INTERACTION_COLUMNS, threads=threads, alpha=params.confidence_alpha, **settings
    )
    _, scan_rss, out = _run_measured(["-c", scan, str(data)])
    scan_s = _seconds(out)
    _, als_rss, out = _run_measured(["-c", als, str(data)])
    fit_s = _seconds(out)
    aggregation = _AGGREGATION_FLOOR.format(
        columns=INTERACTION_COLUMNS, threads=threads, alpha=params.confidence_alpha, **settings
    )
    aggregation_wall, aggregation_rss, _ = _run_measured(["-c", aggregation, str(data)])
    return {
        "scan_seconds": scan_s,
        "als_fit_seconds": fit_s,
        "floor_seconds": scan_s + fit_s,
        "scan_peak_rss_mb": scan_rss,
        "als_peak_rss_mb": als_rss,
        "aggregation_floor_seconds": aggregation_wall,
        "aggregation_floor_peak_rss_mb": aggregation_rss,
    }


def _pandas_pipeline(data: Path, threads: int) -> dict[str, float]:
    """The seed's pipeline in pandas, when the checkout's benchmarks/ folder is there."""
    if not PANDAS_PIPELINE.is_file():
        log.info("no %s (an installed package): the pandas yardstick is left out", PANDAS_PIPELINE)
        return {}
    wall, rss, _ = _run_measured([str(PANDAS_PIPELINE), str(data), "--threads", str(threads)])
    return {"pandas_seconds": wall, "pandas_peak_rss_mb": rss}


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


def run_scale(scale: float, out: Path, threads: int, memory_limit: str | None) -> dict:
    data = out / f"data-{scale}-full-catalogue"
    if not (data / "big_matrix.csv").is_file():
        log.info("scale %s: generating the demo data in %s", scale, data)
        # In a child process: a child's peak RSS starts from its parent's size at fork, so
        # this process must stay small for the measurements below. The full catalogue at
        # every scale: rows (and work) grow in proportion to the scale, so growth is visible.
        _run_measured(
            ["-m", "kuairec_db", "-q", "demo", "--out", str(data), "--scale", str(scale)]
            + ["--full-catalogue"]
        )
    sizes = {p.name: p.stat().st_size for p in data.glob("*.csv")}
    log.info("scale %s: floor (bare scan + bare ALS fit)", scale)
    floor = _floor(data, threads)
    log.info("scale %s: the seed's pipeline in pandas", scale)
    pandas = _pandas_pipeline(data, threads)
    db = out / f"bench-{scale}.duckdb"
    db.unlink(missing_ok=True)
    build_args = [
        "-m",
        "kuairec_db",
        "-q",
        "build",
        "--data",
        str(data),
        "--db",
        str(db),
        "--models",
        BUILD_MODELS,
        "--threads",
        str(threads),
    ]
    if memory_limit:
        build_args += ["--memory-limit", memory_limit]
    log.info("scale %s: build", scale)
    wall, rss, _ = _run_measured(build_args)
    log.info("scale %s: no-op rebuild and lookups", scale)
    noop_wall, _, _ = _run_measured(build_args)
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    info = dict(con.execute("select key, value from build_info").fetchall())
    con.close()
    stage_seconds = {
        k.split(".")[1]: float(v)
        for k, v in info.items()
        if k.startswith("stage.") and k.endswith(".seconds")
    }
    model_seconds = {
        k.split(".")[1]: float(v)
        for k, v in info.items()
        if k.startswith("model.") and k.endswith(".seconds")
    }
    return {
        "scale": scale,
        "csv_bytes": sum(sizes.values()),
        **floor,
        **pandas,
        "build_seconds": wall,
        "build_peak_rss_mb": rss,
        "build_over_floor": wall / floor["floor_seconds"],
        "build_over_aggregation_floor": wall / floor["aggregation_floor_seconds"],
        "build_over_pandas": wall / pandas["pandas_seconds"] if pandas else None,
        "build_rss_over_pandas": rss / pandas["pandas_peak_rss_mb"] if pandas else None,
        "noop_rebuild_seconds": noop_wall,
        "lookup_median_ms": _lookup_latency_ms(db),
        "db_bytes": db.stat().st_size,
        "stage_seconds": stage_seconds,
        "model_seconds": model_seconds,
        "als_fit_in_build_seconds": float(info.get("model.als.fit_seconds", "nan")),
    }


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
        "pandas peak RSS MB | build / pandas (time) | build / pandas (peak RSS) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        pandas = (
            f"{r['pandas_seconds']:.1f} | {r['pandas_peak_rss_mb']:.0f} | "
            f"{r['build_over_pandas']:.2f} | {r['build_rss_over_pandas']:.2f}"
            if r.get("pandas_seconds")
            else "- | - | - | -"
        )
        lines.append(
            f"| {r['scale']} | {r['aggregation_floor_seconds']:.1f} | "
            f"{r['build_over_aggregation_floor']:.2f} | {pandas} |"
        )
    by_scale = sorted(results, key=lambda r: r["scale"])
    if len(by_scale) >= 2:
        # from the second largest scale to the largest (0.5 -> 1.0 by default)
        half, full = by_scale[-2], by_scale[-1]
        lines += [
            "",
            f"Growth {half['scale']} -> {full['scale']}: "
            f"{full['build_seconds'] / half['build_seconds']:.2f}x build time, "
            f"{full['floor_seconds'] / half['floor_seconds']:.2f}x floor, "
            f"{full['csv_bytes'] / half['csv_bytes']:.2f}x CSV bytes.",
        ]
    slowest = max(results, key=lambda r: r["scale"])
    lines += ["", f"Slowest stages at scale {slowest['scale']}:", ""]
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


def bench(scales: list[float], out: Path, threads: int, memory_limit: str | None) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for scale in scales:
        result = run_scale(scale, out, threads, memory_limit)
        results.append(result)
        log.info(
            "scale %s: build %.1f s, floor %.1f s (ratio %.2f), peak RSS %.0f MB",
            scale,
            result["build_seconds"],
            result["floor_seconds"],
            result["build_over_floor"],
            result["build_peak_rss_mb"],
        )
    machine = machine_description()
    (out / "bench.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    (out / "bench.md").write_text(_markdown(results, machine))
    return results
