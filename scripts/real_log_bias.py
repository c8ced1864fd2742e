"""What the real KuaiRec pieces say about how a log's engagement can be biased (issue 14).

Prints statistics only (nothing row by row): the user effect of the real small-matrix sample by
user segment of the real user features, and the session structure of the one real log user.
Reads ../shared/kuairec-real at run time; nothing of it is stored here.

    .venv/bin/python scripts/real_log_bias.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from calibrate_demo import CAP, REAL, _codes, additive_fit  # noqa: E402

SESSION_GAP_S = 30 * 60


def user_effects(sample: pd.DataFrame) -> pd.DataFrame:
    """Per user: additive user effect on y, mean y, shares above 1 and 2 of watch_ratio."""
    y = np.log1p(np.minimum(sample["watch_ratio"].to_numpy(), CAP))
    u, n_u = _codes(sample["user_id"])
    v, n_v = _codes(sample["video_id"])
    _, a, _ = additive_fit(y, u, v, n_u, n_v)
    frame = sample.assign(y=y, gt1=sample["watch_ratio"] > 1, gt2=sample["watch_ratio"] > 2)
    per_user = frame.groupby("user_id").agg(
        mean_y=("y", "mean"), share_gt_1=("gt1", "mean"), share_gt_2=("gt2", "mean")
    )
    per_user["user_effect"] = a  # codes are sorted user ids, as groupby is
    return per_user


def _eta_squared(values: pd.Series, groups: pd.Series) -> float:
    """Share of the variance of VALUES explained by the means of GROUPS."""
    means = values.groupby(groups).transform("mean")
    return float(((means - values.mean()) ** 2).sum() / ((values - values.mean()) ** 2).sum())


def segments(per_user: pd.DataFrame, features: pd.DataFrame) -> None:
    joined = per_user.join(features.set_index("user_id"), how="inner")
    sd = joined["user_effect"].std()
    print(f"small-matrix sample users: {len(joined):,}; sd of the user effect on y {sd:.3f}")
    for column in ("user_active_degree", "is_lowactive_period", "is_live_streamer"):
        table = joined.groupby(column).agg(
            users=("user_effect", "size"),
            user_effect=("user_effect", "mean"),
            mean_y=("mean_y", "mean"),
            share_gt_1=("share_gt_1", "mean"),
            share_gt_2=("share_gt_2", "mean"),
        )
        eta = _eta_squared(joined["user_effect"], joined[column])
        print(f"\n{column} (eta^2 of the user effect {eta:.3f})")
        print(table.round(4).to_string())
    print("\nSpearman correlation of the user effect with")
    for column in ("follow_user_num", "fans_user_num", "friend_user_num", "register_days"):
        rho = joined["user_effect"].corr(joined[column], method="spearman")
        print(f"  {column:20} {rho:+.3f}")
    all_users = features["user_active_degree"].value_counts(normalize=True)
    small = joined["user_active_degree"].value_counts(normalize=True)
    print("\nactive degree share: all users / small-matrix users")
    for name in all_users.index:
        print(f"  {name:14} {all_users[name]:.3f} / {small.get(name, 0.0):.3f}")


def log_sessions(big: pd.DataFrame) -> None:
    """The one real log user: watch ratio by position in the session and on re-watches."""
    big = big.sort_values("timestamp").reset_index(drop=True)
    new_session = big["timestamp"].diff().fillna(np.inf) > SESSION_GAP_S
    position = big.groupby(new_session.cumsum()).cumcount()
    rewatch = big.duplicated("video_id")
    y = np.log1p(np.minimum(big["watch_ratio"], CAP))
    print(f"\nreal log user 0: {len(big)} views, {int(new_session.sum())} sessions")
    for name, mask in (
        ("first 5 of a session", position < 5),
        ("position 5-19", (position >= 5) & (position < 20)),
        ("position 20+", position >= 20),
        ("re-watches", rewatch),
        ("first views", ~rewatch),
    ):
        wr = big["watch_ratio"][mask]
        print(
            f"  {name:22} n {int(mask.sum()):4}  median watch_ratio {wr.median():.2f}"
            f"  mean y {y[mask].mean():.3f}  share > 2 {(wr > 2).mean():.3f}"
        )


def main() -> None:
    if not REAL.is_dir():
        sys.exit(f"error: the real KuaiRec pieces are not at {REAL}")
    sample = pd.read_csv(REAL / "small_matrix_sample.csv")
    features = pd.read_csv(REAL / "user_features.csv")
    segments(user_effects(sample), features)
    log_sessions(pd.read_csv(REAL / "big_matrix_1000.csv"))


if __name__ == "__main__":
    main()
