"""The bench command end to end on two tiny scales: real demo data, real floor and builds."""

from __future__ import annotations

import json

from tests.conftest import run_cli


def test_bench_measures_floor_build_noop_and_growth(tmp_path):
    out = tmp_path / "bench-out"
    result = run_cli("bench", "--scale", "0.01,0.02", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    assert report["machine"]
    results = {r["scale"]: r for r in report["results"]}
    assert set(results) == {0.01, 0.02}
    for r in results.values():
        assert r["floor_seconds"] == r["scan_seconds"] + r["als_fit_seconds"] > 0
        assert r["build_seconds"] > r["noop_rebuild_seconds"] > 0
        assert r["build_over_floor"] == r["build_seconds"] / r["floor_seconds"]
        assert r["build_peak_rss_mb"] > 50
        assert 0 < r["lookup_median_ms"] < 1000
        assert {"int_big_matrix_events", "int_train_interactions"} <= set(r["stage_seconds"])
        assert {"popularity", "als"} == set(r["model_seconds"])
        # the yardsticks of the same run: the aggregation floor and the pandas pipeline
        assert r["aggregation_floor_seconds"] > 0 and r["aggregation_floor_peak_rss_mb"] > 50
        assert r["build_over_aggregation_floor"] == (
            r["build_seconds"] / r["aggregation_floor_seconds"]
        )
        assert r["pandas_seconds"] > 0 and r["pandas_peak_rss_mb"] > 50
        assert r["build_over_pandas"] == r["build_seconds"] / r["pandas_seconds"]
        assert r["build_rss_over_pandas"] == r["build_peak_rss_mb"] / r["pandas_peak_rss_mb"]
    # the full catalogue at every scale: twice the users, about twice the data
    sizes = {
        scale: (out / f"data-{scale}-full-catalogue" / "big_matrix.csv").stat().st_size
        for scale in results
    }
    assert 1.6 < sizes[0.02] / sizes[0.01] < 2.4
    markdown = (out / "bench.md").read_text()
    assert "| 0.02 |" in markdown and "Growth 0.01 -> 0.02:" in markdown
    assert "build / pandas (time)" in markdown
    assert markdown in result.stdout
