"""two_stage on planted KuaiRec-format data, built by the CLI.

The planted interaction: high_active users engage with long videos, middle_active users with
short ones, and nothing else differs. The candidate models here (popularity,
popularity_engagement, video_quality) give every user the same order, and the hybrid is a
linear blend of features that do not hold the product of segment and duration: only the
re-ranker, whose trees can split on the segment and then on the duration, can use it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import run_cli
from tests.planted import write_kuairec

SHORT = list(range(100, 120))  # 5 s
LONG = list(range(200, 220))  # 60 s
EXTRA = list(range(300, 310))  # what test users watched in training
INPUTS = "popularity,popularity_engagement,video_quality"


def segment_world(folder):
    """Training users 0..299, test users 1000..1119; even users high_active, odd middle."""
    rng = np.random.default_rng(11)
    durations = {**dict.fromkeys(SHORT, 5_000), **dict.fromkeys(LONG + EXTRA, 60_000)}
    for v in EXTRA[::2]:
        durations[v] = 5_000

    def ratio(user: int, video: int) -> float:
        high = user % 2 == 0
        match = (high and durations[video] == 60_000) or (not high and durations[video] == 5_000)
        return float(np.exp(0.9 * match + rng.normal(0, 0.5)))

    big, small = [], []
    for user in range(300):
        big += [(user, v, ratio(user, v)) for v in SHORT + LONG if rng.random() < 0.5]
    for user in range(1000, 1120):
        big += [(user, v, ratio(user, v)) for v in EXTRA]
        small += [(user, v, ratio(user, v)) for v in SHORT + LONG]
    degrees = {u: "high_active" if u % 2 == 0 else "middle_active" for u in range(1120)}
    return write_kuairec(folder, big, small, durations, degrees=degrees)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return segment_world(tmp_path_factory.mktemp("segments") / "data")


def build(folder, data, models: str, *extra: str):
    db = folder / "k.duckdb"
    result = run_cli("build", "--data", str(data), "--db", str(db), "--models", models, *extra)
    assert result.returncode == 0, result.stderr
    return db, result


@pytest.fixture(scope="module")
def built(tmp_path_factory, world):
    db, result = build(tmp_path_factory.mktemp("built"), world, f"{INPUTS},hybrid,two_stage")
    return db, result


def ndcg(con, split: str) -> dict[str, float]:
    return dict(
        con.execute(
            "select model, value from eval_metrics where split = ? and k = 10 and metric = 'ndcg'",
            [split],
        ).fetchall()
    )


def test_only_the_re_ranker_uses_the_planted_interaction(built):
    db, result = built
    con = duckdb.connect(str(db), read_only=True)
    test = ndcg(con, "test")
    best_other = max(v for m, v in test.items() if m != "two_stage")
    assert test["two_stage"] > best_other + 0.2, test
    assert test["two_stage"] > test["hybrid"] + 0.2, test
    gains = dict(
        con.execute(
            "select feature, gain from model_feature_importances where model = 'two_stage'"
        ).fetchall()
    )
    top_two = sorted((f for f in gains if f != "holdout_ndcg_at_10"), key=lambda f: -gains[f])[:2]
    assert set(top_two) == {"user_segment", "video_log_duration_s"}, gains
    assert gains["holdout_ndcg_at_10"] > best_other + 0.2
    assert "two_stage: candidates from popularity, popularity_engagement, video_quality" in (
        result.stderr
    )
    con.close()


def test_its_lists_are_candidates_and_never_training_videos(built):
    con = duckdb.connect(str(built[0]), read_only=True)
    seen = con.execute(
        "select count(*) from recommendations as r inner join int_train_interactions as t "
        "on r.user_id = t.user_id and r.video_id = t.video_id where r.model = 'two_stage'"
    ).fetchone()[0]
    assert seen == 0
    n_recs = con.execute(
        "select count(distinct user_id) from recommendations where model = 'two_stage'"
    ).fetchone()[0]
    assert n_recs == con.execute("select count(*) from int_user_index").fetchone()[0]
    con.close()


def test_the_same_data_gives_the_same_rows(tmp_path, built, world):
    again, _ = build(tmp_path, world, f"{INPUTS},two_stage")
    rows = []
    for db in (built[0], again):
        con = duckdb.connect(str(db), read_only=True)
        rows.append(
            con.execute(
                "select * from eval_rankings where model = 'two_stage' order by all"
            ).fetchall()
            + con.execute(
                "select * from model_feature_importances where model = 'two_stage' order by all"
            ).fetchall()
        )
        con.close()
    assert rows[0] == rows[1]


def test_scoring_in_batches_of_users_gives_the_same_lists(tmp_path, built, world):
    batched, _ = build(tmp_path, world, f"{INPUTS},two_stage", "--set", "two_stage.batch_users=50")
    rows = []
    for db in (built[0], batched):
        con = duckdb.connect(str(db), read_only=True)
        rows.append(
            con.execute(
                "select * from recommendations where model = 'two_stage' order by all"
            ).fetchall()
        )
        con.close()
    assert len(rows[0]) > 0 and rows[0] == rows[1]


def test_without_candidate_models_it_says_so(tmp_path, world):
    db = tmp_path / "k.duckdb"
    result = run_cli("build", "--data", str(world), "--db", str(db), "--models", "two_stage")
    assert result.returncode != 0
    assert "two_stage: re-ranks other models, but this build runs no other model" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_too_few_tune_users_it_falls_back_to_the_video_effect(tmp_path):
    tiny = Path(__file__).parent / "fixtures" / "tiny"
    db = tmp_path / "k.duckdb"
    result = run_cli(
        "build", "--data", str(tiny), "--db", str(db), "--top-n", "5", "--k", "1,3",
        "--models", "popularity,video_quality,two_stage",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ranks the candidates by the video_quality effect alone" in result.stderr
    con = duckdb.connect(str(db), read_only=True)
    counts = con.execute(
        "select (select count(*) from eval_rankings where model = 'two_stage'), "
        "(select count(*) from eval_rankings where model = 'video_quality'), "
        "(select count(*) from model_feature_importances)"
    ).fetchall()[0]
    assert counts[0] == counts[1] > 0 and counts[2] == 0
    con.close()


def test_the_sql_file_a_python_model_runs_is_part_of_its_fingerprint(tmp_path):
    from kuairec_db import build as build_module
    from kuairec_db import hooks

    sql = tmp_path / "features.sql"
    sql.write_text("select * from feat_user_category_affinity\n")
    code = tmp_path / "m.py"
    code.write_text(f"SQL_FILES = [{str(sql)!r}]\n\n\ndef run(ctx):\n    pass\n")
    model = hooks.Model("m", code)
    before = model.source_text
    known = {"feat_user_category_affinity", "feat_video_content"}
    assert "feat_user_category_affinity" in build_module.model_dependencies(model, known)
    sql.write_text("select * from feat_video_content\n")
    assert model.source_text != before
    assert "feat_video_content" in build_module.model_dependencies(model, known)
    assert "two_stage_features" in hooks.discover()["two_stage"].source_text
