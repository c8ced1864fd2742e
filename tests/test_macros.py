"""The shared formulas of sql/macros/: the layout rule, each macro on literal rows, and the
build's handling of them (created first, commented, in the lineage and the fingerprints)."""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import random
import re

import duckdb
import pandas as pd
import pytest
from scipy.stats import kendalltau

from kuairec_db import build, fingerprints, hooks, stages
from kuairec_db.build import BuildParams

MACRO_STAGES = [s for s in stages.discover() if s.kind == "macro"]
RELATIONS = {s.name for s in stages.discover() if s.kind != "macro"} | set(stages.CONTRACT_TABLES)


def macro_con(threads: int = 1, **variables) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": str(threads)})
    for name, value in variables.items():
        con.execute(f"set variable {name} = ?", [value])
    stages.create_macros(con)
    return con


@pytest.mark.parametrize("stage", MACRO_STAGES, ids=lambda s: s.name)
def test_a_macro_file_is_one_create_macro_named_like_it_over_its_arguments_only(stage):
    code = stages.strip_comments(stage.sql).strip()
    assert re.match(rf"create or replace macro {stage.name}\(", code), stage.path
    assert ";" not in code.rstrip(";"), f"{stage.path}: one statement"
    words = set(re.findall(r"[a-z_][a-z0-9_]*", code.lower()))
    assert not words & RELATIONS, f"{stage.path} names relations {words & RELATIONS}"
    assert stage.sql.startswith(f"-- {stage.name}("), "the header names the macro's signature"


def test_macros_come_first_and_their_callers_depend_on_them():
    ordered = stages.ordered(stages.discover())
    first_other = next(i for i, s in enumerate(ordered) if s.kind != "macro")
    assert all(s.kind == "macro" for s in ordered[:first_other])
    assert {s.name for s in ordered[:first_other]} == {s.name for s in MACRO_STAGES}
    by_name = {s.name: s for s in ordered}
    known = set(by_name)
    assert "user_metric_values" in stages.dependencies(by_name["eval_user_metrics"], known)
    assert "ideal_dcgs" in stages.dependencies(by_name["int_ideal_dcg"], known)
    assert "tie_sign" in stages.dependencies(by_name["kendall_tau_b"], known)
    models = hooks.discover()
    assert "top_n_and_candidates" in build.model_dependencies(models["content"], known)


def _hits(con, rows):
    con.execute(
        "create or replace table hits (user_id integer, rank integer, is_relevant boolean, "
        "n_hits_so_far hugeint)"
    )
    frame = pd.DataFrame(rows, columns=["user_id", "rank", "is_relevant", "n_hits_so_far"])
    con.register("hit_rows", frame)
    con.execute("insert into hits select * from hit_rows")
    con.unregister("hit_rows")


USER_METRICS_SQL = """
    select
        hits.user_id,
        unnest(
            user_metric_values(
                hits.rank, hits.is_relevant, hits.n_hits_so_far, ?::bigint, ?::integer, ?
            ),
            recursive := true
        )
    from hits
    where hits.rank <= ?
    group by hits.user_id
"""


def test_user_metric_values_on_a_hand_computed_list():
    # ranks 1..5, relevant at 2 and 4; R = 3 relevant videos, k = 5
    con = macro_con()
    relevant = [False, True, False, True, False]
    running = [sum(relevant[: i + 1]) for i in range(5)]
    _hits(con, [(1, i + 1, relevant[i], running[i]) for i in range(5)])
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    got = dict(
        (metric, value)
        for _, metric, value in con.execute(USER_METRICS_SQL, [3, 5, ideal, 5]).fetchall()
    )
    assert got == pytest.approx(
        {
            "precision": 2 / 5,
            "recall": 2 / 3,
            "map": (1 / 2 + 2 / 4) / 3,
            "ndcg": (1 / math.log2(3) + 1 / math.log2(5)) / ideal,
            "hit_rate": 1.0,
            "mrr": 1 / 2,
        },
        rel=1e-15,
    )


def test_user_metric_values_sums_in_rank_order_whatever_order_the_rows_come_in():
    """The sums are exact double additions in rank order: the same bits as a loop adding the
    terms from rank 1 on, whatever the rows' order and the number of threads."""
    rng = random.Random(3)
    k = 100
    users = {u: [rng.random() < 0.4 for _ in range(k)] for u in range(1, 401)}
    in_rank_order = {}
    reversed_differs = 0
    for user, labels in users.items():
        terms = [1 / math.log2(rank + 1) for rank, hit in enumerate(labels, 1) if hit]
        in_rank_order[user] = functools.reduce(operator.add, terms, 0.0)
        reversed_differs += functools.reduce(operator.add, terms[::-1], 0.0) != in_rank_order[user]
    # the order matters for these sums, so a test of the order can fail
    assert reversed_differs > 50
    rows = [
        (user, rank, hit, sum(labels[:rank]))
        for user, labels in users.items()
        for rank, hit in enumerate(labels, 1)
    ]
    for threads, seed in ((1, 1), (4, 2)):
        rng.seed(seed)
        rng.shuffle(rows)
        con = macro_con(threads)
        _hits(con, rows)
        # n_relevant = k and ideal_dcg = 1: ndcg is the DCG itself
        got = {
            user: value
            for user, metric, value in con.execute(USER_METRICS_SQL, [k, k, 1.0, k]).fetchall()
            if metric == "ndcg"
        }
        assert got == in_rank_order  # exact, not approximately


def test_exact_sum_and_avg_on_hand_computed_values():
    con = macro_con()
    con.execute("create table t (g integer, x double)")
    con.execute("insert into t values (1, 0.1), (1, 0.2), (1, 0.3), (2, 1e17), (2, 1), (2, -1e17)")
    con.execute("insert into t values (3, null), (4, 2.5), (4, null)")
    got = {
        g: (s, a)
        for g, s, a in con.execute(
            "select g, exact_sum(x), exact_avg(x) from t group by g"
        ).fetchall()
    }
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 in doubles; exactly it is 0.6
    assert got[1] == (0.6, 0.6 / 3)
    # a double sum in this order loses the 1 (1e17 + 1 rounds to 1e17)
    assert got[2] == (1.0, 1 / 3)
    assert got[3] == (None, None)
    assert got[4] == (2.5, 2.5)  # NULLs are skipped, as by sum() and avg()


def test_exact_sum_is_the_same_bits_whatever_the_row_order_and_threads():
    """Two shuffles of the rows, on 1 and 4 threads: the same bits from exact_sum and exact_avg,
    other bits from a plain sum() (so the comparison can fail), and within rounding of the
    correctly rounded sum (math.fsum, an independent implementation)."""
    rng = random.Random(5)
    groups = {
        g: [rng.uniform(-50, 50) * 10 ** rng.randint(-6, 3) for _ in range(500)] for g in range(40)
    }
    rows = [(g, x) for g, xs in groups.items() for x in xs]
    results = []
    for threads, seed in ((1, 1), (4, 2)):
        rng.seed(seed)
        rng.shuffle(rows)
        con = macro_con(threads)
        con.execute("create table t (g integer, x double)")
        con.executemany("insert into t values (?, ?)", rows)
        results.append(
            {
                g: (exact, mean, plain)
                for g, exact, mean, plain in con.execute(
                    "select g, exact_sum(x), exact_avg(x), sum(x) from t group by g"
                ).fetchall()
            }
        )
    first, second = results
    assert sum(first[g][2] != second[g][2] for g in groups) > 10  # plain sums differ
    assert {g: v[:2] for g, v in first.items()} == {g: v[:2] for g, v in second.items()}
    for g, xs in groups.items():
        scale = sum(abs(x) for x in xs)
        assert first[g][0] == pytest.approx(math.fsum(xs), rel=0, abs=1e-15 * scale)
        assert first[g][1] == first[g][0] / len(xs)


def test_a_user_without_rows_scores_zero_on_every_metric():
    con = macro_con()
    con.execute("create table users as select 7 as user_id")
    _hits(con, [])
    rows = con.execute(
        "select metric, value from (select unnest(user_metric_values(hits.rank, "
        "hits.is_relevant, hits.n_hits_so_far, 2, 10, 1.5), recursive := true) "
        "from users left join hits on users.user_id = hits.user_id group by users.user_id)"
    ).fetchall()
    metrics = ("precision", "recall", "map", "ndcg", "hit_rate", "mrr")
    assert dict(rows) == dict.fromkeys(metrics, 0.0)
    assert len(rows) == 6


def test_ideal_dcgs_is_the_running_sum_of_the_discounts():
    con = macro_con()
    rows = con.execute("select n_hits, ideal_dcg from ideal_dcgs(30) order by n_hits").fetchall()
    assert [n for n, _ in rows] == list(range(1, 31))
    for n, value in rows:
        assert value == pytest.approx(sum(1 / math.log2(i + 1) for i in range(1, n + 1)), 1e-14)


def test_kendall_tau_b_matches_scipy_with_ties():
    rng = random.Random(11)
    con = macro_con()
    checked = 0
    for _ in range(40):
        n = rng.randint(2, 7)
        # values on a coarse grid, so that ties (within 1e-9) happen on both sides
        sparse = [rng.randint(0, 4) / 4 + rng.choice([0, 1e-12]) for _ in range(n)]
        full = [rng.randint(0, 4) / 4 for _ in range(n)]
        pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
        tau = con.execute(
            "select kendall_tau_b(d, f) from (select unnest(?) as d, unnest(?) as f)",
            [[sparse[a] - sparse[b] for a, b in pairs], [full[a] - full[b] for a, b in pairs]],
        ).fetchone()[0]
        expected = kendalltau([round(v, 9) for v in sparse], full).statistic
        if math.isnan(expected):
            assert tau is None
        else:
            assert tau == pytest.approx(expected, abs=1e-12)
            checked += 1
    assert checked > 20


def test_top_n_and_candidates_keeps_the_ranked_top_n_and_every_candidate_once():
    con = macro_con(top_n=2)
    con.execute(
        "create table scored (user_id integer, video_id integer, score double, "
        "is_ranked boolean, is_candidate boolean)"
    )
    con.executemany(
        "insert into scored values (?, ?, ?, ?, ?)",
        [
            (1, 10, 0.9, True, False),
            (1, 11, 0.5, True, False),  # tied with 12: the smaller video_id wins
            (1, 12, 0.5, True, False),
            (1, 13, 0.1, True, False),
            (1, 11, 0.5, False, True),  # a candidate already in the top 2: once
            (1, 20, 0.99, False, True),  # a candidate not ranked (seen): not in the top
            (2, 30, 0.3, True, True),
        ],
    )
    rows = con.execute(
        "select user_id, unnest(top_n_and_candidates(video_id, score, is_ranked, "
        "is_candidate), recursive := true) from scored group by user_id order by all"
    ).fetchall()
    assert rows == [(1, 10, 0.9), (1, 11, 0.5), (1, 20, 0.99), (2, 30, 0.3)]


def test_editing_a_macro_changes_the_fingerprints_of_what_calls_it(tmp_path):
    all_stages = stages.ordered(stages.discover())
    models = [hooks.discover()[name] for name in ("content", "popularity")]
    settings = {m.name: {} for m in models}
    params = BuildParams()

    def plan(stage_list):
        return fingerprints.plan(
            stage_list, models, settings, params.sql_variables(), params.top_n, params.seed, {}
        ).fingerprints

    before = plan(all_stages)

    def edited(name: str) -> list[stages.Stage]:
        out = []
        for stage in all_stages:
            if stage.name == name:
                copy = tmp_path / f"{name}.sql"
                copy.write_text(stage.sql.replace("create or replace", "create  or replace"))
                stage = dataclasses.replace(stage, path=copy)
            out.append(stage)
        return out

    after = plan(edited("top_n_and_candidates"))
    changed = {key for key in before if before[key] != after.get(key)}
    assert changed == {"top_n_and_candidates", "model:content"}
    after = plan(edited("ideal_dcgs"))
    changed = {key for key in before if before[key] != after.get(key)}
    assert changed == {"ideal_dcgs", "int_ideal_dcg"}


def test_the_built_database_has_the_macros_commented_and_in_its_lineage(db_con):
    found = dict(
        db_con.execute(
            "select function_name, comment from duckdb_functions() "
            "where database_name = current_database() and not internal "
            "and function_type in ('macro', 'table_macro')"
        ).fetchall()
    )
    assert set(found) == {s.name for s in MACRO_STAGES}
    assert all(found.values()), found
    lineage = dict(
        db_con.execute(
            "select relation, materialization from build_lineage where relation in "
            "(select unnest(?))",
            [list(found)],
        ).fetchall()
    )
    assert set(lineage) == set(found) and all(v.startswith("macro") for v in lineage.values())
    reads = db_con.execute(
        "select reads from build_lineage where relation = 'eval_user_metrics'"
    ).fetchone()[0]
    assert "user_metric_values" in reads
    # the stored views call the macros: they answer in a read-only connection
    assert db_con.execute("select count(*) from eval_user_metrics").fetchone()[0] > 0
