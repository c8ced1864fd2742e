"""A build on tiny hand-written files in the real KuaiRec format (not the demo generator's)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from tests.conftest import run_cli

TINY = Path(__file__).parent / "fixtures" / "tiny"


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny")
    db = folder / "kuairec.duckdb"
    result = run_cli("build", "--data", str(TINY), "--db", str(db), "--top-n", "5", "--k", "1,3")
    assert result.returncode == 0, result.stderr
    assert "SYNTHETIC" not in result.stderr
    return db


def test_every_row_is_accounted_for(tiny_db):
    con = duckdb.connect(str(tiny_db), read_only=True)
    rows = {
        (s, step): n
        for s, step, n in con.execute("select source, step, n_rows from data_quality").fetchall()
    }
    # 17 lines: one exact duplicate, one duplicate filed under another date -> 15 events
    assert rows[("big_matrix.csv", "read")] == 17
    assert rows[("big_matrix.csv", "duplicate_rows_dropped")] == 2
    assert rows[("big_matrix.csv", "kept")] == 15
    assert rows[("big_matrix.csv", "duplicates_filed_under_two_dates")] == 1
    assert rows[("big_matrix.csv", "rewatched_pairs")] == 1  # user 0 watched video 11 twice
    assert rows[("small_matrix.csv", "rows_without_timestamp")] == 2
    assert rows[("small_matrix.csv", "relevant_pairs")] == 3
    assert rows[("kuairec_caption_category.csv", "read")] == 9
    assert rows[("kuairec_caption_category.csv", "captions_with_carriage_return")] == 1


def test_values_survive_the_trip(tiny_db):
    con = duckdb.connect(str(tiny_db), read_only=True)
    captions = dict(con.execute("select video_id, caption from feat_video_content").fetchall())
    assert captions[11] == '今天吃火锅,太香了 "真的" 😂'
    assert captions[12] == "第一行\n第二行 #舞蹈"
    assert captions[18] == "carriage\rreturn"
    assert captions[15] is None  # UNKNOWN
    assert con.execute(
        "select n_follows_range, onehot_feats[3] from stg_user_features where user_id = 0"
    ).fetchall() == [("(0,10]", None)]
    assert (
        con.execute(
            "select log_date, event_at from int_small_matrix_events "
            "where user_id = 0 and video_id = 15"
        )
        .fetchall()[0][0]
        .isoformat()
        == "2020-07-05"
    )
    friends = con.execute("select friend_user_ids from stg_social_network where user_id = 1")
    assert friends.fetchall() == [([0, 2],)]


def test_every_model_ranks_every_user(tiny_db):
    con = duckdb.connect(str(tiny_db), read_only=True)
    per_model = con.execute(
        "select model, count(distinct user_id) from recommendations group by model"
    ).fetchall()
    assert per_model and all(n == 4 for _, n in per_model)
    # a build without --models leaves out the opt-in models (they lose to random on the demo)
    assert {"popularity", "als", "video_quality"} <= {m for m, _ in per_model}
    assert not {"bpr", "content"} & {m for m, _ in per_model}
    eval_users = con.execute(
        "select model, count(distinct user_id) from eval_rankings group by model"
    ).fetchall()
    # every model is evaluated, on the two small-matrix users of the tiny files
    assert eval_users and {m for m, _ in eval_users} == {m for m, _ in per_model}
    assert all(n == 2 for _, n in eval_users)
    ks = con.execute("select distinct k from eval_metrics order by k").fetchall()
    assert ks == [(1,), (3,)]
