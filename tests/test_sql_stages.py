"""Unit tests of single SQL stages: an in-memory DuckDB, a handful of literal input rows, one
stage's SELECT, and its rows compared with rows written out by hand.

Each test creates the relations the stage reads (with the columns and types the real upstream
stages give them; the rows fill the columns that matter), sets the build variables, and runs the
file through ``kuairec_db.stages.select_body`` as the build does. Staging reads src_* tables
made from text fields converted to the read types of kuairec_db.schema, as the CSV reader does.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
import random
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest

from kuairec_db.build import BuildParams
from kuairec_db.schema import CR_PLACEHOLDER, SOURCES
from kuairec_db.stages import (
    MODELS_DIR,
    RANKING_DIR,
    SQL_DIR,
    TABLE_PHASE,
    create_macros,
    discover,
    ordered,
    select_body,
)

STG_VIEWS = (
    "user_id, video_id, play_duration_ms, video_duration_ms, event_at, log_yyyymmdd, event_unix_s, "
    "watch_ratio"
)
EVENT_FIELDS = (
    "user_id, video_id, play_duration_ms, video_duration_ms, event_unix_s, watch_ratio, "
    "event_at, log_date, n_log_rows, last_log_date"
)
BUCKETS = "duration_bucket, from_duration_ms, to_duration_ms, n_train_views, ratio_threshold"
RANKED = "model, user_id, rank, video_id, score"

D5, D6 = date(2020, 7, 5), date(2020, 7, 6)


# ---------------------------------------------------------------------------------------------
# Helpers


def stage_path(name: str) -> Path:
    """The SQL file of a stage, a ranking template or a SQL model."""
    found = [
        *SQL_DIR.glob(f"*/{name}.sql"),
        *RANKING_DIR.glob(f"{name}.sql"),
        *MODELS_DIR.glob(f"{name}.sql"),
    ]
    assert len(set(found)) == 1, f"{name}: {found}"
    return found[0]


def stage_body(name: str) -> str:
    return select_body(stage_path(name).read_text(encoding="utf-8"))


def run_stage(
    con: duckdb.DuckDBPyConnection, name: str, columns: str = "*", order_by: str = "all"
) -> list[tuple]:
    """Rows of a stage's SELECT (the chosen columns, sorted)."""
    return con.execute(f"select {columns} from ({stage_body(name)}) order by {order_by}").fetchall()


def materialise(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Create the stage as the build does before the models run: a table, or a view for files
    marked 'materialized: view' or 'ephemeral'."""
    kind = next(s.kind for s in discover() if s.name == name)
    if kind == "macro":  # the file is its create macro statement
        con.execute(stage_body(name))
        return
    relation = "table" if kind == "table" else "view"
    con.execute(f"create or replace {relation} {name} as {stage_body(name)}")


def make_table(con: duckdb.DuckDBPyConnection, name: str, columns: str, rows: list[tuple]) -> None:
    """Create NAME (COLUMNS, with their types) holding ROWS."""
    con.execute(f"create table {name} ({columns})")
    if rows:
        marks = ", ".join("?" for _ in rows[0])
        con.executemany(f"insert into {name} values ({marks})", rows)


def build_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Materialise every table stage in dependency order (from the src_* tables)."""
    for stage in ordered(discover()):
        if stage.kind in TABLE_PHASE:
            materialise(con, stage.name)


@functools.cache
def pipeline_schema() -> dict[str, list[tuple[str, str]]]:
    """table stage -> its (column, type) list, from the real stages run on empty sources."""
    con = duckdb.connect()
    set_variables(con)
    for source, (_, types) in SOURCES.items():
        columns = ", ".join(f'"{column}" {t}' for column, t in types.items())
        con.execute(f"create temp table src_{source} ({columns})")
    build_tables(con)
    schema: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in con.execute(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'main' order by table_name, ordinal_position"
    ).fetchall():
        schema.setdefault(table, []).append((column, data_type))
    con.close()
    return schema


def make_input(con: duckdb.DuckDBPyConnection, name: str, columns: str, rows: list[tuple]) -> None:
    """Table NAME with every column the real stage NAME has (same types); ROWS fill COLUMNS
    (comma-separated names), the other columns stay null."""
    all_columns = pipeline_schema()[name]
    given = [c.strip() for c in columns.split(",")]
    unknown = set(given) - {c for c, _ in all_columns}
    assert not unknown, f"{name} has no column {unknown}"
    make_table(con, name, ", ".join(f'"{c}" {t}' for c, t in all_columns), [])
    if rows:
        marks = ", ".join("?" for _ in given)
        quoted = ", ".join(f'"{c}"' for c in given)
        con.executemany(f"insert into {name} ({quoted}) values ({marks})", rows)


def make_source(con: duckdb.DuckDBPyConnection, source: str, rows: list[tuple]) -> None:
    """Temp table src_SOURCE as the build's CSV reader gives it: the text fields of ROWS (None
    for an empty field) converted to the read types of kuairec_db.schema."""
    _, types = SOURCES[source]
    quoted = [f'"{column}"' for column in types]
    make_table(con, f"raw_{source}", ", ".join(f"{q} varchar" for q in quoted), rows)
    casts = ", ".join(f"{q}::{t} as {q}" for q, t in zip(quoted, types.values()))
    con.execute(f"create temp table src_{source} as select {casts} from raw_{source}")


def source_row(source: str, **fields: str) -> tuple:
    """A CSV line of SOURCE as text fields: FIELDS given, every other field empty."""
    _, types = SOURCES[source]
    assert set(fields) <= set(types)
    return tuple(fields.get(column) for column in types)


def set_variables(con: duckdb.DuckDBPyConnection, **overrides) -> None:
    """The build's SQL variables (defaults of BuildParams) with OVERRIDES, and model_name."""
    values = {**BuildParams().sql_variables(), "model_name": "test_model", **overrides}
    for name, value in values.items():
        con.execute(f"set variable {name} = ?", [value])


def assert_rows(actual: list[tuple], expected: list[tuple]) -> None:
    """Equal row by row; floats compared to 1e-12 relative."""
    assert len(actual) == len(expected), f"{len(actual)} rows: {actual}"
    for got, want in zip(actual, expected):
        assert len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            if isinstance(w, float):
                assert g == pytest.approx(w, rel=1e-12, abs=1e-12), (got, want)
            else:
                assert g == w, (got, want)


@pytest.fixture()
def con():
    connection = duckdb.connect(config={"threads": "1"})
    set_variables(connection)
    create_macros(connection)
    yield connection
    connection.close()


# ---------------------------------------------------------------------------------------------
# Staging


@pytest.mark.parametrize("source", ["big_matrix", "small_matrix"])
def test_stg_matrix_casts_and_dates(con, source):
    make_source(
        con,
        source,
        [
            # user, video, play_duration, video_duration, time, date, timestamp, watch_ratio
            ("14", "148", "4381", "6067", "2020-07-05 05:27:48.378", "20200705",
             "1593898068.378", "0.722103"),
            ("14", "183", "11635.0", "6100.0", "2020-07-05 05:28:00.057", "20200705.0",
             "1593898080.057", "1.907377"),
            ("14", "183", "100", "6100", "2020-07-06 23:59:59", "20200706.0", "1594051199.0",
             "0.016393"),
            ("19", "148", "7000", "6067", None, None, None, "1.153783"),
        ],
    )  # fmt: skip
    rows = run_stage(con, f"stg_{source}")
    assert_rows(
        rows,
        [
            (14, 148, 4381, 6067, datetime(2020, 7, 5, 5, 27, 48, 378000), 20200705,
             1593898068.378, 0.722103),
            (14, 183, 100, 6100, datetime(2020, 7, 6, 23, 59, 59), 20200706, 1594051199.0,
             0.016393),
            (14, 183, 11635, 6100, datetime(2020, 7, 5, 5, 28, 0, 57000), 20200705,
             1593898080.057, 1.907377),
            (19, 148, 7000, 6067, None, None, None, 1.153783),
        ],
    )  # fmt: skip
    types = con.execute(f"describe select * from ({stage_body(f'stg_{source}')})").fetchall()
    assert [(t[0], t[1]) for t in types] == [
        ("user_id", "INTEGER"),
        ("video_id", "INTEGER"),
        ("play_duration_ms", "BIGINT"),
        ("video_duration_ms", "BIGINT"),
        ("event_at", "TIMESTAMP"),
        ("log_yyyymmdd", "INTEGER"),
        ("event_unix_s", "DOUBLE"),
        ("watch_ratio", "DOUBLE"),
    ]


def test_stg_caption_category_restores_carriage_returns_and_nulls_unknowns(con):
    assert CR_PLACEHOLDER == chr(57357)
    make_source(
        con,
        "caption_category",
        [
            ("1", f"cover{CR_PLACEHOLDER}text", f"line one{CR_PLACEHOLDER}line two",
             "[tag1,tag2]", "8.0", "颜值", "673", "颜值随拍", "-124.0", "UNKNOWN"),
            ("2", None, "plain caption", "[]", "-124", "UNKNOWN", "-124", "UNKNOWN", "-124",
             "UNKNOWN"),
            ("3", "", "", None, "5", "美食", "2", "美食教程", "727.0", "烘焙"),
        ],
    )  # fmt: skip
    rows = run_stage(con, "stg_caption_category")
    assert_rows(
        rows,
        [
            (1, "cover\rtext", "line one\rline two", "[tag1,tag2]", 8, "颜值", 673, "颜值随拍",
             None, None),
            (2, None, "plain caption", "[]", None, None, None, None, None, None),
            (3, "", "", None, 5, "美食", 2, "美食教程", 727, "烘焙"),
        ],
    )  # fmt: skip
    columns = [c[0] for c in con.execute(f"describe ({stage_body('stg_caption_category')})")
               .fetchall()]  # fmt: skip
    assert columns[3] == "topic_tag_text"


# ---------------------------------------------------------------------------------------------
# Deduplication, leak pairs, training


@pytest.mark.parametrize("matrix", ["big_matrix", "small_matrix"])
def test_matrix_events_drop_exact_duplicates_and_keep_rewatches(con, matrix):
    t0 = datetime(2020, 7, 5, 10, 0, 0)
    t1 = datetime(2020, 7, 6, 9, 0, 0)
    make_input(
        con,
        f"stg_{matrix}",
        STG_VIEWS,
        [
            (1, 10, 5000, 10000, t0, 20200705, 100.0, 0.5),
            (1, 10, 5000, 10000, t0, 20200706, 100.0, 0.5),  # the same event filed under 07-06
            (1, 10, 5000, 10000, t0, 20200705, 100.0, 0.5),  # and once more under 07-05
            (1, 10, 3000, 10000, t1, 20200706, 200.0, 0.3),  # a re-watch: another timestamp
            (2, 10, 5000, 10000, t0, 20200705, 100.0, 0.5),  # the same fields, another user
            (3, 10, 5000, 10000, t0, 20200231, 100.0, 0.5),  # no such date: null
            (3, 11, 5000, 10000, t0, None, 100.0, 0.5),  # an empty date: null
        ],
    )
    rows = run_stage(con, f"int_{matrix}_events", EVENT_FIELDS)
    assert_rows(
        rows,
        [
            (1, 10, 3000, 10000, 200.0, 0.3, t1, D6, 1, D6),
            (1, 10, 5000, 10000, 100.0, 0.5, t0, D5, 3, D6),
            (2, 10, 5000, 10000, 100.0, 0.5, t0, D5, 1, D5),
            (3, 10, 5000, 10000, 100.0, 0.5, t0, None, 1, None),
            (3, 11, 5000, 10000, 100.0, 0.5, t0, None, 1, None),
        ],
    )


def test_leak_pairs_are_removed_from_training_and_other_pairs_stay(con):
    make_input(
        con,
        "int_big_matrix_events",
        "user_id, video_id, event_unix_s, watch_ratio",
        [
            (1, 10, 100.0, 0.5),
            (1, 10, 200.0, 0.7),  # (1, 10) is also in the small matrix: both views go
            (1, 11, 300.0, 1.0),
            (2, 10, 400.0, 2.0),  # user 2 saw 10 in big, 11 in small: no leak
            (3, 12, 500.0, 0.1),  # user 3 saw 12 in big, 10 in small: no leak
        ],
    )
    make_input(
        con,
        "int_small_matrix_events",
        "user_id, video_id, event_unix_s, watch_ratio",
        [(1, 10, 900.0, 1.0), (1, 10, 950.0, 2.0), (2, 11, 960.0, 0.4), (3, 10, 990.0, 0.2)],
    )
    # n_big_events counts big-matrix events, not multiplied by the small matrix's two views
    assert_rows(run_stage(con, "int_leak_pairs"), [(1, 10, 2)])
    materialise(con, "int_leak_pairs")
    assert_rows(
        run_stage(con, "int_train_events", "user_id, video_id, event_unix_s, watch_ratio"),
        [(1, 11, 300.0, 1.0), (2, 10, 400.0, 2.0), (3, 12, 500.0, 0.1)],
    )
    # every event column passes through
    kept = con.execute(
        "select * from int_big_matrix_events where not (user_id = 1 and video_id = 10) order by all"
    ).fetchall()
    assert run_stage(con, "int_train_events") == kept


@pytest.mark.parametrize(
    ("alpha", "cap", "capped_sums"),
    [
        # cap 5:  (1, 10): 0.5 + 1.5 = 2.0;  (1, 11): max(-0.2, 0) = 0;  (2, 10): 5 + 4 + 5 = 14
        (2.0, 5.0, {(1, 10): 2.0, (1, 11): 0.0, (2, 10): 14.0}),
        # cap 1:  (1, 10): 0.5 + 1.0 = 1.5;  (1, 11): 0;  (2, 10): 1 + 1 + 1 = 3
        (0.5, 1.0, {(1, 10): 1.5, (1, 11): 0.0, (2, 10): 3.0}),
    ],
)
def test_train_interactions_aggregate_and_confidence(con, alpha, cap, capped_sums):
    set_variables(con, confidence_alpha=alpha, watch_ratio_cap=cap)
    t1, t2, t3, t4 = (datetime(2020, 7, 5, h) for h in (1, 2, 3, 4))
    make_input(
        con,
        "int_train_events",
        "user_id, video_id, watch_ratio, event_at",
        [
            (1, 10, 1.5, t3),
            (1, 10, 0.5, t1),
            (1, 11, -0.2, t2),  # a negative ratio counts 0 towards confidence
            (2, 10, 12.0, t1),  # above the cap
            (2, 10, 4.0, t2),
            (2, 10, 500.0, t4),  # a 500x re-play counts no more than the cap
        ],
    )
    rows = run_stage(
        con,
        "int_train_interactions",
        "user_id, video_id, n_views, max_watch_ratio, capped_watch_ratio_sum, last_view_at, "
        "confidence",
    )
    # confidence = 1 + alpha * ln(1 + capped sum)
    assert_rows(
        rows,
        [
            (1, 10, 2, 1.5, capped_sums[1, 10], t3, 1 + alpha * math.log(1 + capped_sums[1, 10])),
            (1, 11, 1, -0.2, 0.0, t2, 1.0),
            (2, 10, 3, 500.0, capped_sums[2, 10], t4, 1 + alpha * math.log(1 + capped_sums[2, 10])),
        ],
    )  # fmt: skip
    # the defaults written out: 1 + 2 ln 3 and 1 + 2 ln 15
    if (alpha, cap) == (2.0, 5.0):
        assert rows[0][-1] == pytest.approx(3.1972245773362196)
        assert rows[2][-1] == pytest.approx(6.416100402204419)


# ---------------------------------------------------------------------------------------------
# Labels, ground truth, split


def test_label_buckets_are_duration_quantiles_with_a_watch_ratio_threshold(con):
    set_variables(con, label_duration_buckets=3, label_quantile=0.8)
    make_input(
        con,
        "int_train_events",
        "video_duration_ms, watch_ratio",
        [(6000, 0.4), (1000, 1.0), (3000, 0.5), (5000, 0.2), (2000, 3.0), (4000, 0.7), (4000, 0.1)],
    )
    # Cut points: quantile_disc at 1/3 and 2/3 of the 7 sorted durations takes the values at
    # positions ceil(7/3) - 1 = 2 and ceil(14/3) - 1 = 4 (0-based): 3000 and 4000. Buckets are
    # [1000, 3000), [3000, 4000), [4000, inf): both 4000 ms views share bucket 3.
    # quantile_cont(p = 0.8) of sorted values: linear between neighbours at position 0.8 (n - 1).
    assert_rows(
        run_stage(con, "int_label_buckets"),
        [
            (1, 1000, 3000, 2, 1.0 + 0.8 * 2.0),
            (2, 3000, 4000, 1, 0.5),
            (3, 4000, None, 4, 0.4 + 0.4 * 0.3),  # ratios 0.1, 0.2, 0.4, 0.7; position 2.4
        ],
    )


@pytest.mark.parametrize("n_buckets", [2, 3, 7, 10, 13])
def test_label_bucket_cut_points_from_counts_equal_quantile_disc(con, n_buckets):
    """The cut points come from per-duration counts, not from quantile_disc (which holds every
    view in memory): the same values as DuckDB's quantile_disc, ties and all."""
    rng = random.Random(n_buckets)
    durations = [rng.choice([1000, 2000, 2500, 4000, 9000]) for _ in range(40)]
    durations += [rng.randint(500, 60000) for _ in range(rng.randint(1, 300))]
    set_variables(con, label_duration_buckets=n_buckets, label_quantile=0.5)
    make_input(
        con, "int_train_events", "video_duration_ms, watch_ratio", [(d, 1.0) for d in durations]
    )
    got = [r[1] for r in run_stage(con, "int_label_buckets")]
    steps = [i / n_buckets for i in range(1, n_buckets)]
    cuts = con.execute(
        "select quantile_disc(video_duration_ms, ?) from int_train_events", [steps]
    ).fetchone()[0]
    assert got == sorted({min(durations), *cuts})


@pytest.mark.parametrize("seed", range(8))
def test_label_bucket_thresholds_equal_quantile_cont(con, seed):
    """The thresholds come from counts per ratio bin and a sort of only the bins that hold the
    quantile's two neighbours, not from quantile_cont (which holds every ratio in memory): the
    values of DuckDB's quantile_cont and of numpy's linear quantile, to a unit or two in the last
    place (DuckDB's own build fuses the interpolation's multiply-add)."""
    rng = random.Random(seed)
    quantile = [0.8, 0.5, 0.37, 0.999, 0.01, 0.8, 0.25, 0.9][seed]
    n_buckets = [1, 2, 5, 3, 1, 10, 4, 2][seed]
    views = []
    for _ in range(rng.randint(1, 600)):
        duration = rng.choice([1000, 2000, 5000, 9000, 30000])
        ratio = rng.choice(
            [
                rng.random() * 3,
                rng.choice([0.0, 1.0, 1 / 1024, 3 / 1024, 2.5]),  # ties, bin edges
                1.0 + rng.randint(0, 50) * 1e-9,  # many ratios in one bin
                rng.expovariate(1) * 50,
                None,
            ]
        )
        views.append((duration, ratio))
    set_variables(con, label_duration_buckets=n_buckets, label_quantile=quantile)
    make_input(con, "int_train_events", "video_duration_ms, watch_ratio", views)
    rows = run_stage(con, "int_label_buckets")
    assert rows, "no buckets"
    for _, low, high, n_views, threshold in rows:
        in_bucket = [r for d, r in views if d >= low and (high is None or d < high)]
        assert n_views == len(in_bucket)
        ratios = sorted(r for r in in_bucket if r is not None)
        duckdb_value = con.execute(
            "select quantile_cont(r, ?) from unnest(?::double[]) as t (r)", [quantile, ratios]
        ).fetchone()[0]
        if not ratios:
            assert threshold is None and duckdb_value is None
            continue
        numpy_value = float(np.quantile(np.array(ratios), quantile))
        assert threshold == pytest.approx(duckdb_value, rel=1e-15, abs=1e-300)
        assert threshold == pytest.approx(numpy_value, rel=1e-13, abs=1e-300)


def test_label_buckets_do_not_depend_on_row_order():
    # Four views, two buckets: the two 2000 ms views straddle the boundary between them.
    views = [(1000, 1.0), (2000, 5.0), (2000, 0.1), (3000, 0.2)]
    results = []
    for ordered_views in (views, views[::-1]):
        con = duckdb.connect(config={"threads": "1"})
        set_variables(con, label_duration_buckets=2, label_quantile=0.5)
        make_input(con, "int_train_events", "video_duration_ms, watch_ratio", ordered_views)
        results.append(run_stage(con, "int_label_buckets"))
        con.close()
    # (with ntile buckets the thresholds were (3.0, 0.15) in one order, (0.55, 2.6) in the other)
    assert results[0] == results[1]


def _ground_truth_inputs(con):
    make_input(
        con,
        "int_label_buckets",
        BUCKETS,
        [(1, 1000, 10000, 10, 2.0), (2, 10000, None, 10, 1.0)],
    )
    make_input(
        con,
        "int_small_matrix_events",
        "user_id, video_id, video_duration_ms, watch_ratio",
        [
            (1, 1, 5000, 2.0),  # bucket 1: 2.0 is not > 2.0
            (1, 2, 5000, 2.5),  # bucket 1: relevant
            (1, 3, 20000, 1.5),  # bucket 2: relevant
            (1, 4, 10000, 1.0),  # bucket 2 (min 10000 <= 10000): 1.0 is not > 1.0
            (1, 5, 9999, 1.5),  # bucket 1 (one ms short of bucket 2): not relevant
            (2, 1, 500, 3.0),  # shorter than every bucket: bucket 1
            (2, 2, 20000, 0.4),  # two views of one pair: the largest ratio, 1.2, counts
            (2, 2, 20000, 1.2),
        ],
    )


GROUND_TRUTH_COLUMNS = (
    "user_id, video_id, watch_ratio, video_duration_ms, n_views, relevance_threshold, is_relevant"
)


def test_ground_truth_debiased_label(con):
    set_variables(con, label="debiased")
    _ground_truth_inputs(con)
    assert_rows(
        run_stage(con, "int_ground_truth", GROUND_TRUTH_COLUMNS),
        [
            (1, 1, 2.0, 5000, 1, 2.0, False),
            (1, 2, 2.5, 5000, 1, 2.0, True),
            (1, 3, 1.5, 20000, 1, 1.0, True),
            (1, 4, 1.0, 10000, 1, 1.0, False),
            (1, 5, 1.5, 9999, 1, 2.0, False),
            (2, 1, 3.0, 500, 1, 2.0, True),
            (2, 2, 1.2, 20000, 2, 1.0, True),
        ],
    )


@pytest.mark.parametrize(
    ("threshold", "relevant"),
    [(2.0, {(1, 2), (2, 1)}), (1.2, {(1, 1), (1, 2), (1, 3), (1, 5), (2, 1)})],
)
def test_ground_truth_ratio_label_is_strictly_above_the_threshold(con, threshold, relevant):
    set_variables(con, label="ratio", label_threshold=threshold)
    _ground_truth_inputs(con)
    rows = run_stage(con, "int_ground_truth", GROUND_TRUTH_COLUMNS)
    assert [r[5] for r in rows] == [threshold] * 7
    # 2.0 is not above 2.0; 1.2 (pair (2, 2)) is not above 1.2
    assert {(r[0], r[1]) for r in rows if r[6]} == relevant


@pytest.mark.parametrize("tune_percent", [0, 20, 37, 100])
def test_ground_truth_split_is_md5_of_user_id(con, tune_percent):
    set_variables(con, tune_percent=tune_percent)
    make_input(con, "int_label_buckets", BUCKETS, [(1, 0, None, 1, 1.0)])
    users = list(range(1, 301)) + [7176, 2**31 - 1]
    make_input(
        con,
        "int_small_matrix_events",
        "user_id, video_id, video_duration_ms, watch_ratio",
        [(u, v, 5000, 1.0) for u in users for v in (1, 2)],
    )
    rows = run_stage(con, "int_ground_truth", "user_id, split")
    actual = {}
    for user_id, split in rows:
        assert actual.setdefault(user_id, split) == split  # one split per user
    expected = {
        u: "tune"
        if int(hashlib.md5(str(u).encode()).hexdigest()[:8], 16) % 100 < tune_percent
        else "test"
        for u in users
    }
    assert actual == expected
    if 0 < tune_percent < 100:
        assert 0 < sum(s == "tune" for s in expected.values()) < len(users)


@pytest.mark.parametrize("eval_k", [[3, 10], [1], [50, 5]])
def test_ideal_dcg(con, eval_k):
    set_variables(con, eval_k=eval_k)
    rows = run_stage(con, "int_ideal_dcg", order_by="n_hits")
    expected = [
        (n, sum(1 / math.log2(i + 1) for i in range(1, n + 1))) for n in range(1, max(eval_k) + 1)
    ]
    assert_rows(rows, expected)
    assert rows[0][1] == 1.0
    if max(eval_k) >= 3:
        assert rows[2][1] == pytest.approx(1 + 1 / math.log2(3) + 0.5)


# ---------------------------------------------------------------------------------------------
# Ranking templates and the popularity model

# Global order: 1 (0.9), 2 (0.8), 4 (0.8, tie: the smaller id first), 3 (0.7), 5 (0.5),
# 6 (0.5), 7 (0.1), 8 (0.0). Inserted in reverse so that the input order does not help.
ITEM_SCORES = [(8, 0.0), (7, 0.1), (6, 0.5), (5, 0.5), (4, 0.8), (3, 0.7), (2, 0.8), (1, 0.9)]
SCORE = dict(ITEM_SCORES)


def make_histories(con: duckdb.DuckDBPyConnection, training: dict[int, list[int]]) -> None:
    """int_user_index and int_train_interactions of users -> their training videos."""
    make_input(
        con,
        "int_user_index",
        "user_id, user_index, n_train_videos",
        [(u, i, len(videos)) for i, (u, videos) in enumerate(training.items())],
    )
    make_input(
        con,
        "int_train_interactions",
        "user_id, video_id",
        [(u, v) for u, videos in training.items() for v in videos],
    )


def test_recommend_from_item_scores(con):
    set_variables(con, top_n=3, model_name="pop")
    make_table(con, "model_item_scores", "video_id integer, score double", ITEM_SCORES)
    training = {
        1: [],
        2: [2, 3],
        3: [1, 2, 4, 3, 5],  # the five best videos: the list starts at the sixth
        4: [1, 99],  # 99 has no score
    }
    make_histories(con, training)
    expected_videos = {1: [1, 2, 4], 2: [1, 4, 5], 3: [6, 7, 8], 4: [2, 4, 3]}
    expected = [
        ("pop", u, rank, v, SCORE[v])
        for u, videos in expected_videos.items()
        for rank, v in enumerate(videos, start=1)
    ]
    rows = run_stage(con, "recommend_from_item_scores", RANKED, order_by="user_id, rank")
    assert_rows(rows, expected)
    # the template's own order is by user and rank
    own = con.execute(stage_body("recommend_from_item_scores")).fetchall()
    assert own == rows


def test_recommend_from_item_scores_many_training_videos_still_get_top_n(con):
    set_variables(con, top_n=5)
    n_videos = 200
    make_table(
        con,
        "model_item_scores",
        "video_id integer, score double",
        [(v, float(n_videos - v)) for v in range(1, n_videos + 1)],
    )
    # user 1 has seen the 150 best videos, user 2 every other one of the 180 best
    training = {1: list(range(1, 151)), 2: list(range(1, 181, 2)), 3: []}
    make_histories(con, training)
    rows = run_stage(con, "recommend_from_item_scores", "user_id, rank, video_id", "user_id, rank")
    lists = {u: [v for uu, _, v in rows if uu == u] for u in training}
    assert lists == {1: [151, 152, 153, 154, 155], 2: [2, 4, 6, 8, 10], 3: [1, 2, 3, 4, 5]}
    assert [r[1] for r in rows] == [1, 2, 3, 4, 5] * 3


@pytest.mark.parametrize("top_n", [1, 3, 7])
def test_recommend_from_item_scores_matches_a_plain_python_ranking(con, top_n):
    """Random histories around the prefix bound (10 * top_n ranks), scores with ties, a video
    with no score, against sorting and skipping in Python."""
    rng = random.Random(top_n)
    set_variables(con, top_n=top_n)
    scores = {v: float(rng.randint(0, 15)) for v in range(1, 81)}  # many ties
    make_table(con, "model_item_scores", "video_id integer, score double", list(scores.items()))
    order = sorted(scores, key=lambda v: (-scores[v], v))
    training = {}
    for user in range(1, 61):
        # from nothing to every scored video, often most of the global head
        head = order[: rng.randint(0, 80)]
        tail = rng.sample(order, rng.randint(0, 20))
        training[user] = sorted(set(head) | set(tail) | ({999} if user % 7 == 0 else set()))
    make_histories(con, training)
    rows = run_stage(con, "recommend_from_item_scores", "user_id, rank, video_id", "user_id, rank")
    got = {u: [v for uu, _, v in rows if uu == u] for u in training}
    want = {u: [v for v in order if v not in seen][:top_n] for u, seen in training.items()}
    assert got == want


def test_evaluate_from_item_scores_ranks_only_the_users_candidates(con):
    set_variables(con, top_n=3, model_name="pop")
    make_table(con, "model_item_scores", "video_id integer, score double", ITEM_SCORES)
    candidates = {
        1: [2, 5, 8, 9],  # 9 has no score: it ranks last and falls out of the top 3
        2: [9, 1],  # fewer candidates than top_n: every candidate, the unscored one last
        3: [6, 5, 3],  # 5 and 6 tie at 0.5: 5 first
    }
    make_input(
        con,
        "int_ground_truth",
        "user_id, video_id, is_relevant, split",
        [(u, v, False, "test") for u, videos in candidates.items() for v in videos],
    )
    rows = run_stage(con, "evaluate_from_item_scores", RANKED, order_by="user_id, rank")
    assert_rows(
        rows,
        [
            ("pop", 1, 1, 2, 0.8),
            ("pop", 1, 2, 5, 0.5),
            ("pop", 1, 3, 8, 0.0),
            ("pop", 2, 1, 1, 0.9),
            ("pop", 2, 2, 9, None),
            ("pop", 3, 1, 3, 0.7),
            ("pop", 3, 2, 5, 0.5),
            ("pop", 3, 3, 6, 0.5),
        ],
    )
    for _, user_id, _, video_id, _ in rows:
        assert video_id in candidates[user_id]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_video_duration_median_from_counts_equals_median(con, seed):
    """feat_video_popularity's video_duration_ms comes from per-duration counts (a median over
    every view does not spill): the same doubles as DuckDB's median, for odd and even numbers
    of views, repeated and interpolated middles, null durations and a video never viewed."""
    rng = random.Random(seed)
    rows = []
    for video in range(1, 30):
        choices = [rng.randint(1000, 60000) for _ in range(rng.randint(1, 4))] + [None]
        rows += [(video, 1.0, rng.choice(choices)) for _ in range(rng.randint(1, 12))]
    rows.append((30, 1.0, None))  # only a null duration
    set_variables(con)
    make_input(con, "int_item_index", "video_id, item_index", [(v, v - 1) for v in range(1, 32)])
    make_input(con, "int_train_events", "video_id, watch_ratio, video_duration_ms", rows)
    make_input(con, "int_train_interactions", "video_id, user_id", [(v, 1) for v in range(1, 31)])
    got = run_stage(con, "feat_video_popularity", "video_id, video_duration_ms")
    want = con.execute(
        "select i.video_id, m from int_item_index as i left join (select video_id, "
        "median(video_duration_ms) as m from int_train_events group by all) using (video_id) "
        "order by all"
    ).fetchall()
    assert got == want
    assert got[-2:] == [(30, None), (31, None)]
    assert any(m is not None and m != int(m) for _, m in got)  # an interpolated middle


def test_popularity_model_scores_each_video_by_its_smoothed_watch_ratio(con):
    make_input(
        con,
        "feat_video_popularity",
        "video_id, n_views, mean_watch_ratio, smoothed_watch_ratio",
        [(1, 10, 1.5, 1.25), (2, 0, None, 0.9), (3, 3, 0.2, 0.7)],
    )
    assert_rows(run_stage(con, "popularity"), [(1, 1.25), (2, 0.9), (3, 0.7)])


def test_popularity_model_in_the_built_database(db_con):
    wrong = db_con.execute(
        """
        select count(*)
        from eval_rankings as r
        inner join feat_video_popularity as p on r.video_id = p.video_id
        where r.model = 'popularity' and r.score is distinct from p.smoothed_watch_ratio
        """
    ).fetchone()[0]
    assert wrong == 0
    first = db_con.execute(
        "select video_id from feat_video_popularity "
        "order by smoothed_watch_ratio desc, video_id limit 1"
    ).fetchone()[0]
    n_seen = db_con.execute(
        "select count(*) from int_train_interactions where video_id = ?", [first]
    ).fetchone()[0]
    not_seen_top = db_con.execute(
        "select count(distinct user_id) from recommendations "
        "where model = 'popularity' and rank = 1 and video_id = ?",
        [first],
    ).fetchone()[0]
    n_users = db_con.execute("select count(*) from int_user_index").fetchone()[0]
    assert not_seen_top == n_users - n_seen


# ---------------------------------------------------------------------------------------------
# data_quality


def _csv_records(path: Path) -> int:
    """Data records of a CSV file, counted by Python's csv module (quoted newlines and all)."""
    with open(path, newline="", encoding="utf-8") as handle:
        return sum(1 for record in csv.reader(handle) if record) - 1


def test_data_quality_reconciles_in_the_built_database(db_con, demo_dir):
    rows = db_con.execute("select source, step, role, n_rows from data_quality").fetchall()
    assert {r[2] for r in rows} <= {"read", "kept", "drop", "note"}
    assert {r[0] for r in rows} == {file for file, _ in SOURCES.values()}
    for source in {r[0] for r in rows}:
        roles = [r[2] for r in rows if r[0] == source]
        assert roles.count("read") == 1 and roles.count("kept") == 1, source
    assert all(n >= 0 for _, _, role, n in rows if role == "drop")
    # 'read' of every source against the file's records counted here, independently of the build
    read = {source: n for source, _, role, n in rows if role == "read"}
    on_disk = {file: _csv_records(demo_dir / file) for file, _ in SOURCES.values()}
    assert read == on_disk
    assert on_disk["big_matrix.csv"] > 0 and on_disk["small_matrix.csv"] > 0
    # 'kept' of the matrices against the rows the pipeline kept
    kept = {source: n for source, _, role, n in rows if role == "kept"}
    assert (kept["big_matrix.csv"], kept["small_matrix.csv"]) == db_con.execute(
        "select (select count(*) from int_train_events), "
        "(select count(*) from int_small_matrix_events)"
    ).fetchone()


def test_data_quality_counts_duplicates_and_leak_pairs(con):
    # the CSV lines of both matrices; every other file gets a line or two (or none)
    make_source(
        con,
        "big_matrix",
        [
            ("1", "10", "50", "100", "2020-07-05 12:00:00", "20200705", "100.0", "0.5"),
            ("1", "10", "50", "100", "2020-07-05 12:00:00", "20200706", "100.0", "0.5"),  # dup
            ("1", "11", "50", "100", "2020-07-05 12:00:00", "20200705", "200.0", "0.5"),  # leak
            ("1", "11", "60", "100", "2020-07-05 12:00:00", "20200705", "300.0", "0.6"),  # leak
            ("2", "10", "50", "100", "2020-07-05 12:00:00", "20200705", "400.0", "0.5"),
            ("2", "12", "150", "100", "2020-07-05 12:00:00", "20200705", "500.0", "1.5"),
        ],
    )
    make_source(
        con,
        "small_matrix",
        [
            ("1", "11", "50", "100", "2020-07-05 12:00:00", "20200705", "600.0", "0.5"),
            ("1", "11", "50", "100", "2020-07-05 12:00:00", "20200705", "600.0", "0.5"),  # dup
            ("2", "11", "300", "100", None, None, None, "3.0"),
        ],
    )
    make_source(con, "social_network", [source_row("social_network", user_id="1")])
    make_source(
        con,
        "item_categories",
        [source_row("item_categories", video_id=v, feat="[1]") for v in ("10", "11", "12")],
    )
    make_source(con, "user_features", [source_row("user_features", user_id=u) for u in "12"])
    make_source(con, "item_daily_features", [])
    make_source(
        con,
        "caption_category",
        [
            source_row("caption_category", video_id="10", caption=f"a{CR_PLACEHOLDER}b"),
            source_row("caption_category", video_id="11", caption="ab"),
        ],
    )
    build_tables(con)
    rows = run_stage(con, "data_quality", "source, step, role, n_rows", "source, step")
    steps = {(source, step): n for source, step, _, n in rows}
    assert {k: v for k, v in steps.items() if k[0] == "big_matrix.csv"} == {
        ("big_matrix.csv", "read"): 6,
        ("big_matrix.csv", "duplicate_rows_dropped"): 1,
        ("big_matrix.csv", "leak_pairs_removed"): 2,
        ("big_matrix.csv", "kept"): 3,
        ("big_matrix.csv", "leak_pairs"): 1,
        ("big_matrix.csv", "training_pairs"): 3,
        ("big_matrix.csv", "rewatched_pairs"): 0,
        ("big_matrix.csv", "rows_without_timestamp"): 0,
        ("big_matrix.csv", "duplicates_filed_under_two_dates"): 1,
    }
    assert steps["small_matrix.csv", "read"] == 3
    assert steps["small_matrix.csv", "duplicate_rows_dropped"] == 1
    assert steps["small_matrix.csv", "kept"] == 2
    assert steps["small_matrix.csv", "rows_without_timestamp"] == 1
    assert steps["kuairec_caption_category.csv", "captions_with_carriage_return"] == 1
    assert steps["item_daily_features.csv", "read"] == 0
    # 'read' of every source is the number of rows given to make_source above
    assert {
        source: n for source, step, n in ((r[0], r[1], r[3]) for r in rows) if step == "read"
    } == {
        "big_matrix.csv": 6,
        "small_matrix.csv": 3,
        "social_network.csv": 1,
        "item_categories.csv": 3,
        "user_features.csv": 2,
        "item_daily_features.csv": 0,
        "kuairec_caption_category.csv": 2,
    }
