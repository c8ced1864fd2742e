"""data_profile and the profile command: statistics on literal rows against values computed by
hand, the whole profile against an independent numpy implementation, and the command on a
database, a folder and a bare pairs file."""

from __future__ import annotations

import hashlib
import math
import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from kuairec_db import demo, profile
from kuairec_db.stages import create_macros, discover, select_body
from tests.conftest import run_cli

SAMPLE_SIZE = 83
EVENT_COLUMNS = "user_id integer, video_id integer, watch_ratio double, n_log_rows bigint"


def _stage_sql(name: str) -> str:
    return select_body(next(s for s in discover() if s.name == name).sql)


def _profile_of(big: list[tuple], small: list[tuple], categories: dict[int, int | None]):
    """data_profile of literal rows: big and small are (user, video, watch_ratio, n_log_rows)
    events; categories maps video -> first-level category (None = -124 in the file, i.e. null
    after staging; a video missing from the dict has no caption row)."""
    con = duckdb.connect()
    create_macros(con)
    for name, rows in (("int_big_matrix_events", big), ("int_small_matrix_events", small)):
        con.execute(f"create table {name} ({EVENT_COLUMNS})")
        if rows:
            con.executemany(f"insert into {name} values (?, ?, ?, ?)", rows)
    con.execute(
        "create table stg_caption_category (video_id integer, first_level_category_id bigint)"
    )
    if categories:
        con.executemany("insert into stg_caption_category values (?, ?)", [*categories.items()])
    con.execute(f"create table int_profile_sample as {_stage_sql('int_profile_sample')}")
    profile.write_fits(con)
    frame = con.execute(_stage_sql("data_profile")).df()
    return con, {(r.scope, r.statistic): r.value for r in frame.itertuples()}, frame


def _wr(y: float) -> float:
    """The watch_ratio whose y = ln(1 + watch_ratio) is y."""
    return math.exp(y) - 1


# Two users x four videos, y values:
#   user 1: 2, 1, 0, 1     user 2: 0, 1, 2, 0     (videos 10, 11, 12, 13)
# videos 10, 11, 12 in category 5, video 13 without a caption row (category -124).
# user 2's pair (2, 11) has two events whose watch ratios average to e - 1.
Y = {1: [2, 1, 0, 1], 2: [0, 1, 2, 0]}
VIDEOS = [10, 11, 12, 13]


def _literal_small() -> list[tuple]:
    rows = []
    for user, ys in Y.items():
        for video, y in zip(VIDEOS, ys):
            if (user, video) == (2, 11):
                rows += [(2, 11, _wr(1) - 0.5, 1), (2, 11, _wr(1) + 0.5, 1)]
            else:
                rows.append((user, video, _wr(y), 1))
    return rows


def test_structure_statistics_by_hand():
    con, values, frame = _profile_of([], _literal_small(), {10: 5, 11: 5, 12: 5})
    s = {stat: v for (scope, stat), v in values.items() if scope == "small_matrix_sample"}
    assert s["n_users"] == 2 and s["n_videos"] == 4 and s["n_pairs"] == 8
    # grand mean 7/8; SS_tot = 4.875; user means 1 and 0.75 leave SS 4.75
    assert s["r2_user_means"] == pytest.approx(1 - 4.75 / 4.875)
    # complete 2 x 4 table: fitted = user mean + video mean - grand mean; SS_res = 4.375
    assert s["r2_additive"] == pytest.approx(1 - 4.375 / 4.875, abs=1e-9)
    residuals = dict(
        ((u, v), e) for u, v, e in con.execute("select * from int_profile_fit").fetchall()
    )
    assert residuals[(1, 10)] == pytest.approx(0.875, abs=1e-7)
    assert residuals[(2, 12)] == pytest.approx(1.125, abs=1e-7)
    # cells (user, category 5) hold residuals (.875, -.125, -1.125) and (-.875, .125, 1.125):
    # (sum e)^2 - sum e^2 = -1.90625 each, n (n - 1) = 6 each; video 13 alone in -124;
    # divided by var_pop(y) = 4.875 / 8
    assert s["user_category_component"] == pytest.approx(-3.8125 / 12 / (4.875 / 8), abs=1e-7)
    # label y = 2 (watch_ratio e^2 - 1 > 2): user 1 video 10, user 2 video 12.
    # video mean: user 1 scores (0, 1, 2, 0) -> video 10 at rank 3 (tie with 13 by id);
    # user 2 scores (2, 1, 0, 1) -> video 12 at rank 4
    assert s["ndcg10_video_mean"] == pytest.approx((1 / math.log2(4) + 1 / math.log2(5)) / 2)
    # affinity: user 1 scores (-1, 1, 3, 0) -> video 10 at rank 4; user 2 (3, 1, -1, 1) -> 4
    assert s["ndcg10_video_mean_category_affinity"] == pytest.approx(1 / math.log2(5))
    # the pair with two events enters with the mean of its watch ratios
    assert con.execute(
        "select watch_ratio from int_profile_sample where user_id = 2 and video_id = 11"
    ).fetchone()[0] == pytest.approx(_wr(1))
    categories = dict(
        con.execute("select video_id, first_level_category_id from int_profile_sample").fetchall()
    )
    assert categories == {10: 5, 11: 5, 12: 5, 13: -124}
    assert s["share_watch_ratio_gt_2"] == pytest.approx(2 / 8)
    assert s["share_watch_ratio_gt_1"] == pytest.approx(5 / 8)  # y >= 1: e - 1 > 1
    ratios = sorted([_wr(y) for ys in Y.values() for y in ys])
    assert s["watch_ratio_p50"] == pytest.approx((ratios[3] + ratios[4]) / 2)
    # every statistic has its comment
    assert frame["comment"].notna().all()


def test_shape_statistics_by_hand():
    # user 1: video 10 viewed twice (a re-watch), video 11 once from two identical log lines;
    # user 2: video 10 once
    big = [(1, 10, 0.5, 1), (1, 10, 1.5, 1), (1, 11, 3.0, 2), (2, 10, 2.5, 1)]
    _, values, _ = _profile_of(big, _literal_small(), {10: 5})
    b = {stat: v for (scope, stat), v in values.items() if scope == "big_matrix"}
    assert (b["n_users"], b["n_videos"], b["n_rows"], b["n_events"], b["n_pairs"]) == (
        2,
        2,
        5,
        4,
        3,
    )
    assert b["density"] == pytest.approx(3 / 4)
    assert b["n_duplicate_rows"] == 1 and b["duplicate_share"] == pytest.approx(1 / 5)
    assert b["n_rewatch_events"] == 1 and b["rewatch_share"] == pytest.approx(1 / 4)
    # events per user 3 and 1; per video 3 and 1
    assert (b["views_per_user_min"], b["views_per_user_p50"], b["views_per_user_max"]) == (1, 2, 3)
    assert b["views_per_user_p10"] == pytest.approx(1.2)
    assert b["views_per_video_p90"] == pytest.approx(2.8)
    # watch ratios 0.5, 1.5, 2.5, 3.0: median 2.0; p90 = 2.5 + 0.7 * 0.5
    assert b["watch_ratio_p50"] == pytest.approx(2.0)
    assert b["watch_ratio_p90"] == pytest.approx(2.85)
    assert b["watch_ratio_max"] == 3.0
    assert b["share_watch_ratio_gt_1"] == pytest.approx(3 / 4)
    assert b["share_watch_ratio_gt_2"] == pytest.approx(2 / 4)
    small = {stat: v for (scope, stat), v in values.items() if scope == "small_matrix"}
    assert small["n_rows"] == 9 and small["n_pairs"] == 8 and small["density"] == 1.0


def test_sample_takes_the_83_smallest_md5_keys_and_a_fixed_holdout():
    rows = [(u, v, 0.1 * (v % 7), 1) for u in (3, 4) for v in range(100 + u * 10)]
    rows += [(5, v, 1.0, 1) for v in range(40)]  # fewer than 83: all of them
    con, values, _ = _profile_of([], rows, {})
    got = con.execute(
        "select user_id, video_id, is_holdout from int_profile_sample order by all"
    ).fetchall()
    expected = []
    for user in (3, 4, 5):
        videos = sorted(
            (v for u, v, _, _ in rows if u == user),
            key=lambda v: hashlib.md5(f"{user}-{v}".encode()).hexdigest(),
        )[:SAMPLE_SIZE]
        for v in videos:
            digest = hashlib.md5(f"holdout-{user}-{v}".encode()).hexdigest()
            expected.append((user, v, int(digest[:8], 16) % 5 == 0))
    assert got == sorted(expected)
    assert values[("small_matrix_sample", "n_pairs")] == 83 * 2 + 40


# ---------------------------------------------------------------------------------------------
# The whole structure section against an independent implementation


def _independent_structure(pairs: pd.DataFrame, categories: dict[int, int]) -> dict[str, float]:
    """Every structure statistic by other means: hashlib sample, exact least squares by
    numpy.linalg.lstsq, ALS one user at a time, NDCG by sorting Python lists."""
    pairs = pairs.groupby(["user_id", "video_id"], as_index=False)["watch_ratio"].mean()
    chosen = []
    for user, group in pairs.groupby("user_id"):
        keys = [hashlib.md5(f"{user}-{v}".encode()).hexdigest() for v in group["video_id"]]
        chosen.append(group.assign(key=keys).sort_values("key").head(SAMPLE_SIZE))
    sample = pd.concat(chosen).sort_values(["user_id", "video_id"]).reset_index(drop=True)
    wr = sample["watch_ratio"].to_numpy()
    y = np.log(1 + np.minimum(wr, 50))
    user_ids = sorted(sample["user_id"].unique())
    video_ids = sorted(sample["video_id"].unique())
    u = sample["user_id"].map({x: i for i, x in enumerate(user_ids)}).to_numpy()
    v = sample["video_id"].map({x: i for i, x in enumerate(video_ids)}).to_numpy()
    cat = np.array([categories.get(x, -124) for x in sample["video_id"]])
    n_u, n_v = len(user_ids), len(video_ids)
    ss_tot = ((y - y.mean()) ** 2).sum()
    out = {
        "watch_ratio_p50": np.quantile(wr, 0.5),
        "watch_ratio_p99": np.quantile(wr, 0.99),
        "share_watch_ratio_gt_2": (wr > 2).mean(),
    }
    user_mean = pd.Series(y).groupby(u).transform("mean").to_numpy()
    out["r2_user_means"] = 1 - ((y - user_mean) ** 2).sum() / ss_tot

    def lstsq_fit(rows: np.ndarray) -> np.ndarray:
        design = np.zeros((rows.sum(), 1 + n_u + n_v))
        design[:, 0] = 1
        design[np.arange(rows.sum()), 1 + u[rows]] = 1
        design[np.arange(rows.sum()), 1 + n_u + v[rows]] = 1
        coef = np.linalg.lstsq(design, y[rows], rcond=None)[0]
        return coef  # minimum norm; predictions are unique

    def predict(coef: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return coef[0] + coef[1 + u[rows]] + coef[1 + n_u + v[rows]]

    every = np.ones(len(y), dtype=bool)
    e = y - predict(lstsq_fit(every), every)
    out["r2_additive"] = 1 - (e**2).sum() / ss_tot
    num = den = 0.0
    for key in set(zip(u, cat)):
        cell = e[(u == key[0]) & (cat == key[1])]
        if len(cell) >= 2:
            num += cell.sum() ** 2 - (cell**2).sum()
            den += len(cell) * (len(cell) - 1)
    out["user_category_component"] = num / den / y.var()

    held = np.array(
        [
            int(hashlib.md5(f"holdout-{a}-{b}".encode()).hexdigest()[:8], 16) % 5 == 0
            for a, b in zip(sample["user_id"], sample["video_id"])
        ]
    )
    train = ~held
    # every user and video keeps training pairs, so the additive predictions are unique
    assert np.isin(np.arange(n_u), u[train]).all() and np.isin(np.arange(n_v), v[train]).all()
    coef = lstsq_fit(train)
    base_train, base_held = predict(coef, train), predict(coef, held)
    residual = y[train] - base_train
    ss_tot_h = ((y[held] - y[held].mean()) ** 2).sum()
    ss_add = ((y[held] - base_held) ** 2).sum()

    def gain(rank: int, lam: float) -> float:
        rng = np.random.default_rng(0)
        p = rng.normal(0, 0.1, (n_u, rank))
        q = rng.normal(0, 0.1, (n_v, rank))
        for _ in range(15):
            for i in range(n_u):
                m = u[train] == i
                f = q[v[train][m]]
                p[i] = np.linalg.solve(f.T @ f + lam * np.eye(rank), f.T @ residual[m])
            for j in range(n_v):
                m = v[train] == j
                f = p[u[train][m]]
                q[j] = np.linalg.solve(f.T @ f + lam * np.eye(rank), f.T @ residual[m])
        fac = base_held + (p[u[held]] * q[v[held]]).sum(axis=1)
        return (ss_add - ((y[held] - fac) ** 2).sum()) / ss_tot_h

    out["factor_gain"] = max(gain(rank, 5.0) for rank in (4, 8, 16))
    out["factor_gain_lambda_1"] = max(gain(rank, 1.0) for rank in (4, 8, 16))

    s_v = np.bincount(v, y, n_v)
    c_v = np.bincount(v, minlength=n_v)
    loo = np.array(
        [(s_v[j] - yy) / (c_v[j] - 1) if c_v[j] > 1 else y.mean() for j, yy in zip(v, y)]
    )
    dev = y - loo
    affinity = np.zeros(len(y))
    for idx in range(len(y)):
        same = (u == u[idx]) & (cat == cat[idx])
        same[idx] = False
        affinity[idx] = dev[same].mean() if same.any() else 0.0

    def ndcg(score: np.ndarray) -> float:
        values = []
        for i in range(n_u):
            idx = np.flatnonzero(u == i)
            order = sorted(idx, key=lambda k: (-score[k], sample["video_id"][k]))
            liked = [wr[k] > 2 for k in order]
            if not any(liked):
                continue
            dcg = sum(1 / math.log2(r + 2) for r, hit in enumerate(liked[:10]) if hit)
            ideal = sum(1 / math.log2(r + 2) for r in range(min(sum(liked), 10)))
            values.append(dcg / ideal)
        return float(np.mean(values))

    out["ndcg10_video_mean"] = ndcg(loo)
    out["ndcg10_video_mean_category_affinity"] = ndcg(loo + affinity)
    return out


@pytest.fixture(scope="module")
def planted_pairs(tmp_path_factory):
    """120 users x 150 videos with video quality, user bias, category taste, low-rank taste and
    heavy tails (some watch ratios above the cap of 50), some pairs viewed twice."""
    rng = np.random.default_rng(11)
    n_users, n_videos = 120, 150
    quality = rng.normal(0, 0.5, n_videos)
    bias = rng.normal(0, 0.2, n_users)
    category = rng.integers(0, 6, n_videos)
    taste = rng.normal(0, 0.3, (n_users, 6))
    low_rank = rng.normal(0, 0.6, (n_users, 3)) @ rng.normal(0, 0.6, (3, n_videos))
    rows = []
    for user in range(n_users):
        for video in rng.choice(n_videos, size=rng.integers(60, 130), replace=False):
            log_wr = (
                quality[video] + bias[user] + taste[user, category[video]] + low_rank[user, video]
            )
            wr = float(np.exp(log_wr + rng.normal(0, 0.6)) - 0.3)
            wr = max(wr, 0.0) if rng.random() > 0.01 else 80.0 + rng.random() * 100
            rows.append((user + 100, video, wr))
            if rng.random() < 0.03:
                rows.append((user + 100, video, wr * 1.5))
    pairs = pd.DataFrame(rows, columns=["user_id", "video_id", "watch_ratio"])
    categories = {v: int(category[v]) for v in range(n_videos) if v % 17}  # a few unknown
    folder = tmp_path_factory.mktemp("planted")
    pairs.to_csv(folder / "pairs.csv", index=False)
    caption = pd.DataFrame(
        {
            "video_id": range(n_videos),
            "manual_cover_text": "UNKNOWN",
            "caption": "x",
            "topic_tag": "[]",
            "first_level_category_id": [categories.get(v, -124) for v in range(n_videos)],
            "first_level_category_name": "c",
            "second_level_category_id": -124,
            "second_level_category_name": "UNKNOWN",
            "third_level_category_id": -124,
            "third_level_category_name": "UNKNOWN",
        }
    )
    caption.to_csv(folder / "captions.csv", index=False)
    return folder, pairs, categories


def test_profile_matches_an_independent_implementation(planted_pairs):
    folder, pairs, categories = planted_pairs
    frame = profile.profile_pairs(folder / "pairs.csv", folder / "captions.csv")
    got = profile.values(frame)
    expected = _independent_structure(pairs, categories)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-5), name
    # the planted structure is there to be found (so the comparison is not of zeros)
    assert got["user_category_component"] > 0.02 and got["factor_gain"] > 0.005
    assert got["r2_additive"] > got["r2_user_means"] > 0
    assert got["ndcg10_video_mean_category_affinity"] != got["ndcg10_video_mean"]


def test_factor_model_fits_a_planted_low_rank_matrix():
    rng = np.random.default_rng(3)
    p_true, q_true = rng.normal(0, 1, (40, 2)), rng.normal(0, 1, (50, 2))
    users, videos = np.divmod(np.arange(40 * 50), 50)
    target = (p_true[users] * q_true[videos]).sum(axis=1)
    p, q = profile.als(target, users, videos, 40, 50, rank=4, lam=0.01, iterations=50)
    fitted = (p[users] * q[videos]).sum(axis=1)
    assert np.abs(fitted - target).max() < 0.05
    # more regularisation shrinks the fit
    p, q = profile.als(target, users, videos, 40, 50, rank=4, lam=500.0)
    assert np.abs((p[users] * q[videos]).sum(axis=1)).mean() < 0.5 * np.abs(target).mean()


# ---------------------------------------------------------------------------------------------
# The command


@pytest.fixture(scope="module")
def small_build(tmp_path_factory):
    folder = tmp_path_factory.mktemp("profile-build")
    data = folder / "data"
    demo.generate(data, scale=0.04, seed=5)
    db = folder / "kuairec.duckdb"
    result = run_cli("build", "--data", str(data), "--db", str(db), "--models", "popularity")
    assert result.returncode == 0, result.stderr
    return data, db


def test_database_and_folder_profiles_agree(small_build, tmp_path):
    data, db = small_build
    stored = profile.profile_database(db)
    assert set(stored["scope"]) == {"big_matrix", "small_matrix", "small_matrix_sample"}
    assert stored["value"].notna().all()
    out = tmp_path / "profile.csv"
    result = run_cli("profile", str(db), str(data), "--csv", str(out))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    assert list(table.columns) == ["section", "scope", "statistic", db.name, data.name, "comment"]
    assert len(table) == len(stored)
    np.testing.assert_allclose(table[db.name], table[data.name], rtol=1e-9, atol=1e-12)
    assert "factor_gain" in result.stdout and "views_per_user_p50" in result.stdout


def test_bare_pairs_file_side_by_side_with_a_folder(small_build, tmp_path):
    data, _ = small_build
    events = pd.read_csv(data / "small_matrix.csv")
    events[["user_id", "video_id", "watch_ratio"]].to_csv(tmp_path / "pairs.csv", index=False)
    out = tmp_path / "both.csv"
    result = run_cli(
        "profile",
        str(tmp_path / "pairs.csv"),
        str(data),
        "--captions",
        str(data / "kuairec_caption_category.csv"),
        "--csv",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(out)
    sample = table[table["scope"] == "small_matrix_sample"]
    # the same small matrix through both doors: the same structure statistics
    np.testing.assert_allclose(sample["pairs.csv"], sample["data"], rtol=1e-9)
    # a bare pairs file has no big matrix
    assert table.loc[table["scope"] == "big_matrix", "pairs.csv"].isna().all()
    assert table.loc[table["scope"] == "big_matrix", "data"].notna().all()
    # rows in data_profile's order, whichever source has them first
    assert table["scope"].map(profile.SCOPES.index).is_monotonic_increasing


def test_bad_inputs_are_one_line(tmp_path, small_build):
    data, _ = small_build
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user_id,video_id,watch_ratio\n1,2,0.5\n")
    cases = {
        (str(pairs),): "needs its videos' caption file",
        (str(tmp_path / "nothing"),): "no such file or folder",
    }
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("user,video,ratio\n1,2,0.5\n")
    cases[(str(wrong), "--captions", str(data / "kuairec_caption_category.csv"))] = (
        "missing column(s) user_id, video_id, watch_ratio"
    )
    text = tmp_path / "text.csv"
    text.write_text("user_id,video_id,watch_ratio\n1,2,lots\n")
    cases[(str(text), "--captions", str(data / "kuairec_caption_category.csv"))] = (
        'column watch_ratio: "lots" is not a number'
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    cases[(str(empty),)] = "no KuaiRec files here"
    other = tmp_path / "notes.duckdb"
    other.write_text("not a database\n")
    cases[(str(other),)] = "not a database, a pairs CSV (.csv) or KuaiRec.zip"
    # a folder needs the two matrices and the caption file, and reads them as the build does
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(data / "big_matrix.csv", partial)
    cases[(str(partial),)] = (
        "missing KuaiRec file(s): kuairec_caption_category.csv, small_matrix.csv"
    )
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("big_matrix.csv", "kuairec_caption_category.csv"):
        shutil.copy(data / name, broken)
    lines = (data / "small_matrix.csv").read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[1], "oops", 1)
    (broken / "small_matrix.csv").write_text("\n".join(lines) + "\n")
    cases[(str(broken),)] = 'small_matrix.csv: line 4: column video_id: "oops" is not an integer'
    for args, message in cases.items():
        result = run_cli("profile", *args)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], (args, result.stderr)


def test_every_statistic_has_its_own_place_in_the_order():
    """data_profile orders rows by (section, scope, statistic_order): two statistics with one
    number would come out in either order from run to run."""
    text = (Path(__file__).parent.parent / "sql" / "public" / "data_profile.sql").read_text()
    places = re.findall(r"\(\s*'(shape|structure)',\s*(\d+),\s*'(\w+)'", text)
    assert len(places) > 30
    order = [(section, int(number)) for section, number, _ in places]
    assert len(set(order)) == len(order), sorted(o for o in order if order.count(o) > 1)


def test_without_a_source_it_profiles_the_database_like_every_other_command(small_build, tmp_path):
    data, db = small_build
    folder = db.parent
    default = run_cli("profile", "--csv", str(tmp_path / "default.csv"), cwd=folder)
    assert default.returncode == 0, default.stderr
    named = run_cli("profile", "--db", str(db), "--csv", str(tmp_path / "named.csv"))
    assert named.returncode == 0, named.stderr
    default_table = pd.read_csv(tmp_path / "default.csv")
    named_table = pd.read_csv(tmp_path / "named.csv")
    assert list(default_table.columns)[3] == db.name
    pd.testing.assert_frame_equal(default_table, named_table)
    # --db comes after the SOURCEs, side by side
    both = run_cli("profile", str(data), "--db", str(db), "--csv", str(tmp_path / "both.csv"))
    assert both.returncode == 0, both.stderr
    assert list(pd.read_csv(tmp_path / "both.csv").columns)[3:5] == [data.name, db.name]
    # no database: the words every command uses, one line, exit 2
    for args, cwd in (((), tmp_path), (("--db", str(tmp_path / "none.duckdb")), None)):
        result = run_cli("profile", *args, cwd=cwd)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "no database here; build it first" in lines[0], result.stderr


def test_help_has_an_example():
    result = run_cli("profile", "--help")
    assert result.returncode == 0
    assert "python -m kuairec_db profile" in result.stdout


def test_report_has_the_profile_section(small_build, tmp_path):
    _, db = small_build
    out = tmp_path / "report.html"
    result = run_cli("report", "--db", str(db), "--out", str(out))
    assert result.returncode == 0, result.stderr
    page = out.read_text(encoding="utf-8")
    section = page.split('<section id="profile">', 1)[1].split("</section>", 1)[0]
    stored = profile.profile_database(db).set_index(["scope", "statistic"])["value"]
    for scope, statistic in (("small_matrix_sample", "r2_additive"), ("big_matrix", "density")):
        shown = profile.format_value(stored[(scope, statistic)], statistic)
        assert f"<td>{statistic}</td>" in section and shown in section, statistic
    assert "<th>big_matrix</th><th>small_matrix</th>" in section
