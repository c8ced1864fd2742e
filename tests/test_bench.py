"""The bench command end to end on two tiny scales: real demo data, real floor and builds."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def test_bench_measures_floor_build_noop_growth_and_every_model(tmp_path):
    """One run of two tiny scales: the yardsticks of every scale, the growth between them, and
    the model yardsticks at the larger scale only (the largest up to 1.0)."""
    out = tmp_path / "bench-out"
    # the full catalogue even at 0.01: ease's 10,728-video inverse alone takes minutes, so the
    # test picks models (the default is every model)
    models = "popularity,als,itemknn,hybrid"
    result = run_cli(
        "bench", "--scale", "0.005,0.01", "--models", models, "--out", str(out), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "bench.json").read_text())
    assert report["machine"]
    results = {r["scale"]: r for r in report["results"]}
    assert set(results) == {0.005, 0.01}
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
        assert r["build_cpu_seconds"] > 0 and r["pandas_cpu_seconds"] > 0
        assert r["build_cpu_over_pandas"] == r["build_cpu_seconds"] / r["pandas_cpu_seconds"]
    # the full catalogue at every scale: twice the users, about twice the data
    sizes = {
        scale: (out / f"data-{scale}-full-catalogue" / "big_matrix.csv").stat().st_size
        for scale in results
    }
    assert 1.6 < sizes[0.01] / sizes[0.005] < 2.4
    # item 5: the growth from one scale to the next, per doubling of the data
    (step,) = report["growth"]
    assert (step["from_scale"], step["to_scale"]) == (0.005, 0.01)
    assert step["build_time_per_doubling"] == (
        results[0.01]["build_seconds"] / results[0.005]["build_seconds"]
    )
    assert 1.6 < step["big_matrix_rows_per_doubling"] < 2.4

    # the model yardsticks at 0.01 only: the models in one build, and each library model
    # against the bare library fit and top-N of every user with the same settings
    assert "models" not in results[0.005] and "workflow" not in results[0.005]
    full = results[0.01]
    assert full["all_models_build_seconds"] > 0 and full["all_models_build_peak_rss_mb"] > 50
    models = full["models"]
    assert set(models) == {"popularity", "als", "itemknn", "hybrid"}
    for name in ("als", "itemknn"):
        m = models[name]
        assert 0 < m["floor_fit_seconds"] <= m["floor_seconds"], name
        assert m["over_floor"] == m["seconds"] / m["floor_seconds"], name
    assert "floor_seconds" not in models["hybrid"] and "floor_seconds" not in models["popularity"]
    # the rest of the workflow on a copy of that build
    w = full["workflow"]
    assert w["exposure_study_repeats"] == 5
    assert 0 < w["exposure_study_seconds"] and w["exposure_study_peak_rss_mb"] > 50
    assert 0 < w["exposure_temporal_seconds"] <= w["exposure_study_seconds"]  # both 0.1 s
    assert (
        len(w["tune_trial_seconds"]) == 2 and w["als_fit_seconds"] == models["als"]["fit_seconds"]
    )
    assert w["tune_trial_over_als_fit"] == pytest.approx(
        sum(w["tune_trial_seconds"]) / 2 / w["als_fit_seconds"]
    )
    assert sorted(p.name for p in out.glob("*.duckdb")) == [
        "bench-0.005.duckdb",
        "bench-0.01-all-models.duckdb",
        "bench-0.01.duckdb",
    ]
    markdown = (out / "bench.md").read_text()
    assert "| 0.01 |" in markdown and "| 0.005 -> 0.01 |" in markdown
    assert "build / pandas (time)" in markdown
    assert markdown.count("| model / floor |") == 1 and "\n| itemknn |" in markdown
    assert "The workflow on that build: exposure-study (5 repeats" in markdown
    assert markdown in result.stdout


def test_bench_refuses_an_unknown_model(tmp_path):
    result = run_cli("bench", "--models", "als,nope", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert result.returncode != 0
    assert "nope" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()


def test_bench_refuses_a_scale_out_of_range(tmp_path):
    result = run_cli("bench", "--scale", "1,17", "--out", str(tmp_path / "b"), cwd=tmp_path)
    assert result.returncode == 2
    assert "scales must be in (0, 16]" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()


def test_a_failed_measured_run_is_one_line_with_the_childs_last_line():
    from kuairec_db.bench import _run_measured
    from kuairec_db.errors import UserError

    with pytest.raises(UserError, match=r"failed \(exit 3\): error: out of memory$"):
        _run_measured(
            ["-c", "import sys; print('progress'); print('error: out of memory'); sys.exit(3)"]
        )
