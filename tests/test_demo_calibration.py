"""The calibrated demo against the real KuaiRec sample, both profiled by the product itself.

The demo's small matrix (written to disk by ``demo``, read back by ``kuairec_db.profile``, the
code behind ``data_profile`` and the ``profile`` command) must land within the tolerances of
issue 9 of the real 83-videos-per-user sample in ``../shared/kuairec-real``. A structure the
real matrix does not have (taste by category, a low-rank interaction) fails this test.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kuairec_db import profile
from tests.conftest import run_cli

REAL = Path(__file__).resolve().parents[2] / "shared" / "kuairec-real"

# statistic -> (kind, tolerance): "relative" within the share of the real value, "absolute"
# within that distance of it, "at_most" the demo's value itself at most that.
TOLERANCES = {
    "watch_ratio_p50": ("relative", 0.15),
    "watch_ratio_p90": ("relative", 0.15),
    "watch_ratio_p99": ("relative", 0.15),
    "share_watch_ratio_gt_1": ("relative", 0.15),
    "share_watch_ratio_gt_2": ("relative", 0.15),
    "r2_user_means": ("absolute", 0.07),
    "r2_additive": ("absolute", 0.07),
    "user_category_component": ("at_most", 0.01),
    "factor_gain": ("at_most", 0.01),
    # with the shared penalty (5) a real low-rank signal is shrunk away on samples this size;
    # a penalty of 1 lets it show (the old demo: 0.16; the real sample: -0.12, overfitting)
    "factor_gain_lambda_1": ("at_most", 0.01),
    "ndcg10_video_mean": ("absolute", 0.1),
    "ndcg10_video_mean_category_affinity": ("absolute", 0.15),
}


def _real() -> Path:
    if not (REAL / "small_matrix_sample.csv").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the real KuaiRec pieces are missing at {REAL}")
        pytest.skip(f"the real KuaiRec pieces are not at {REAL} (CI=true makes this fail)")
    return REAL


def outside(demo: dict[str, float], real: dict[str, float]) -> list[str]:
    """The statistics of DEMO outside their tolerance around REAL, each with both values."""
    bad = []
    for name, (kind, tol) in TOLERANCES.items():
        d, r = demo[name], real[name]
        ok = {
            "relative": abs(d - r) <= tol * abs(r),
            "absolute": abs(d - r) <= tol,
            "at_most": d <= tol,
        }[kind]
        if not ok:
            bad.append(f"{name}: demo {d:.4f}, real {r:.4f} ({kind} {tol})")
    return bad


def test_the_tolerances_reject_the_old_demo_world():
    """The old demo's measured profile (issue 9's table) fails the check: it can fail."""
    real = {"watch_ratio_p50": 0.78, "r2_additive": 0.445, "user_category_component": 0.0}
    old = {"watch_ratio_p50": 0.77, "r2_additive": 0.218, "user_category_component": 0.42}
    names = dict(TOLERANCES)
    try:
        TOLERANCES.clear()
        TOLERANCES.update({k: names[k] for k in real})
        assert [b.split(":")[0] for b in outside(old, real)] == [
            "r2_additive",
            "user_category_component",
        ]
    finally:
        TOLERANCES.clear()
        TOLERANCES.update(names)


def test_demo_profile_is_within_tolerance_of_the_real_sample(tmp_path):
    real_dir = _real()
    real = profile.values(
        profile.profile_pairs(
            real_dir / "small_matrix_sample.csv", real_dir / "kuairec_caption_category.csv"
        )
    )
    out = tmp_path / "demo"
    result = run_cli("-q", "demo", "--out", str(out), "--scale", "0.3")
    assert result.returncode == 0, result.stderr
    demo = profile.values(profile.profile_folder(out))
    assert demo["n_users"] == 423 and demo["n_pairs"] == 423 * 83
    assert outside(demo, real) == []
