"""The seed notebook's pipeline written competently in pandas: the yardstick of the bench.

    python benchmarks/pandas_pipeline.py DATA_DIR [--threads N]

What it does, the notebook's way, on the files of DATA_DIR (a KuaiRec-format folder):
read both matrices (explicit dtypes, only the columns used), drop duplicate log rows (equal on
every event field), popularity per video (mean watch_ratio over the big matrix), implicit ALS
(128 factors, regularization 0.15, 15 iterations) on the big matrix with the project's
confidence (1 + 2 ln(1 + sum of watch ratios capped at 5)), then the top 100 unseen videos of
every big-matrix user and the popularity top 100. It prints one ``PHASE name seconds`` line per
phase and ``SECONDS total`` at the end; the bench runs it in its own process for wall time and
peak memory. Not part of the package: it measures what a user would otherwise write.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

EVENT_COLUMNS = ["user_id", "video_id", "play_duration", "video_duration", "timestamp"]
DTYPES = {
    "user_id": "int32",
    "video_id": "int32",
    "play_duration": "float64",
    "video_duration": "float64",
    "timestamp": "float64",
    "watch_ratio": "float64",
}
TOP_N = 100
CONFIDENCE_ALPHA = 2.0
WATCH_RATIO_CAP = 5.0


def read_matrix(path: Path) -> pd.DataFrame:
    """One matrix with its event fields, duplicate log rows dropped."""
    frame = pd.read_csv(path, usecols=list(DTYPES), dtype=DTYPES, engine="c")
    return frame.drop_duplicates(subset=EVENT_COLUMNS + ["watch_ratio"], ignore_index=True)


def confidence_matrix(big: pd.DataFrame) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Users x videos confidence (CSR) and the ids of its rows and columns."""
    capped = big["watch_ratio"].clip(lower=0, upper=WATCH_RATIO_CAP)
    pairs = (
        capped.groupby([big["user_id"], big["video_id"]], sort=False).sum().reset_index(name="s")
    )
    user_codes, user_ids = pd.factorize(pairs["user_id"], sort=True)
    video_codes, video_ids = pd.factorize(pairs["video_id"], sort=True)
    values = (1 + CONFIDENCE_ALPHA * np.log1p(pairs["s"].to_numpy())).astype(np.float32)
    matrix = sp.csr_matrix(
        (values, (user_codes, video_codes)), shape=(len(user_ids), len(video_ids))
    )
    return matrix, np.asarray(user_ids), np.asarray(video_ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--threads", type=int, default=0, help="ALS threads (0 = all cores)")
    args = parser.parse_args()

    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    phase_started = started

    def phase(name: str) -> None:
        nonlocal phase_started
        now = time.perf_counter()
        print(f"PHASE {name} {now - phase_started:.3f}", flush=True)
        phase_started = now

    big = read_matrix(args.data / "big_matrix.csv")
    phase("read_big")
    small = read_matrix(args.data / "small_matrix.csv")
    phase("read_small")

    popularity = big.groupby("video_id", sort=False)["watch_ratio"].mean()
    popular_top = popularity.sort_values(ascending=False, kind="stable").index[:TOP_N]
    phase("popularity")

    matrix, user_ids, video_ids = confidence_matrix(big)
    del big
    phase("matrix")

    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(
            factors=128,
            regularization=0.15,
            iterations=15,
            random_state=42,
            num_threads=args.threads,
            calculate_training_loss=False,
        )
        model.fit(matrix, show_progress=False)
    phase("als_fit")

    rows = np.arange(matrix.shape[0])
    ids, scores = model.recommend(rows, matrix, N=TOP_N, filter_already_liked_items=True)
    recommendations = pd.DataFrame(
        {
            "user_id": np.repeat(user_ids, TOP_N),
            "rank": np.tile(np.arange(1, TOP_N + 1), len(user_ids)),
            "video_id": video_ids[ids.ravel()],
            "score": scores.ravel(),
        }
    )
    phase("als_top_n")
    print(
        f"ROWS recommendations={len(recommendations)} small={len(small)} popular={len(popular_top)}"
    )
    print(f"SECONDS {time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main()
