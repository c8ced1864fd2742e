"""The model API (kuairec_db/modelapi.py): a context's outputs go to its sink, the runner skips
files whose name starts with "_", and the old import paths still reach the same objects."""

from __future__ import annotations

import numpy as np

from kuairec_db import modelapi, runner
from tests.test_python_models import TOY_SETTINGS, all_rows, checkerboard, toy_db


class RecordingSink:
    """Keeps every score handed to it, per output, and the factors' shapes."""

    def __init__(self) -> None:
        self.scores: dict[str, list[tuple]] = {"recommendations": [], "eval_rankings": []}
        self.factor_shapes: list[tuple] = []

    def write_scores(self, con, output: str) -> int:
        rows = con.execute(f"select * from {modelapi.SCORES_TABLE}").fetchall()
        self.scores[output] += rows
        return len(rows)

    def write_factors(self, con, user_factors, item_factors) -> None:
        self.factor_shapes.append((np.shape(user_factors), np.shape(item_factors)))

    def write_video_rows(self, con, table, rows) -> None:
        self.video_rows = getattr(self, "video_rows", {}) | {table: len(rows)}


def _checkerboard_db():
    train, truth, videos, *_ = checkerboard()
    return toy_db(train, truth, videos, top_n=4)


def test_a_sink_gets_the_scores_and_the_contract_tables_stay_empty():
    con = _checkerboard_db()
    model = runner.discover()["itemknn"]
    settings = {**runner.model_defaults(model), **TOY_SETTINGS["itemknn"]}
    runner.run_model(con, model, settings, 4, 1, 42)  # the build's way: the contract sink
    built = all_rows(con, "itemknn")
    runner.clear_model(con, "itemknn")

    sink = RecordingSink()
    ctx = modelapi.ModelContext(con, "itemknn", settings, 4, 1, 42, sink=sink)
    runner.load_module(model).run(ctx)
    assert all(rows == [] for rows in all_rows(con, "itemknn").values())
    # every ranked row of the build is one of the scores the sink was given, same score
    for output in ("recommendations", "eval_rankings"):
        given = {(user, video): score for user, video, score in sink.scores[output]}
        assert built[output], output
        for _, user, _, video, score in built[output]:
            assert given[(user, video)] == score


def test_factors_go_to_the_sink():
    con = _checkerboard_db()
    sink = RecordingSink()
    ctx = modelapi.ModelContext(con, "m", {}, 4, 1, 42, sink=sink)
    ctx.write_factors(np.ones((24, 3)), np.ones((16, 3)))
    assert sink.factor_shapes == [((24, 3), (16, 3))]
    assert con.execute("select count(*) from model_user_factors").fetchall()[0][0] == 0
    modelapi.ModelContext(con, "m", {}, 4, 1, 42).write_factors(np.ones((24, 3)), np.ones((16, 3)))
    assert con.execute("select count(*) from model_user_factors").fetchall()[0][0] == 24


def test_files_starting_with_an_underscore_are_not_models(tmp_path):
    (tmp_path / "mine.sql").write_text("select 1 as video_id, 1.0 as score\n")
    (tmp_path / "_helpers.py").write_text("X = 1\n")
    (tmp_path / "_draft.sql").write_text("select 1 as video_id, 1.0 as score\n")
    assert list(runner.discover(tmp_path)) == ["mine"]


def test_the_old_import_paths_reach_the_same_objects():
    from kuairec_db import hooks, modelkit

    assert hooks.ModelContext is modelapi.ModelContext
    assert hooks.run_model is runner.run_model and hooks.discover is runner.discover
    assert modelkit.write_rankings is modelapi.write_rankings
    assert hooks.PIPELINE_MEMORY_LIMIT == modelapi.PIPELINE_MEMORY_LIMIT == "1GB"
