"""A notebook-style walkthrough of kuairec_db from Python (run as a script: CI does).

    python examples/walkthrough.py [--db PATH] [--real]

Builds a small database on the synthetic demo (or on the real KuaiRec with --real, found as
the README says), then shows what the README shows: the leaderboard with its intervals, a
user's list, similar videos, recommendations for a new user, SQL on the file, and export.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

import kuairec_db

pd.set_option("display.width", 120)
pd.set_option("display.max_columns", 10)

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--db", default=None, help="database to build (default: a temporary one)")
parser.add_argument("--real", action="store_true", help="build on the real KuaiRec data")
args = parser.parse_args()
workdir = Path(tempfile.mkdtemp(prefix="kuairec-walkthrough-"))
db = Path(args.db) if args.db else workdir / "kuairec.duckdb"

# %% 1. Build. The same parameters as `python -m kuairec_db build`; an existing, unchanged
# database is reused (result.up_to_date), a changed one is updated (result.rebuilt).
result = kuairec_db.build(
    db,
    demo=not args.real,
    demo_scale=0.05,
    models=["popularity", "als", "itemknn"],
    bootstrap=200,
)
print(f"database: {result.db} ({result.data_kind}); rebuilt {len(result.rebuilt)} relations")

# %% 2. The leaderboard on the test users, NDCG@10 and recall@10 with 95% intervals.
board = kuairec_db.metrics(split="test", k=10, with_ci=True, db=db)
print(board[board.metric.isin(["ndcg", "recall"])].round(4).to_string(index=False))

# %% 3. One user's top 10 by ALS, with captions.
con = kuairec_db.connect(db)  # read-only; every function also takes a path
user_id = con.execute("select min(user_id) from recommendations").fetchone()[0]
top = kuairec_db.recommend(user_id, model="als", n=10, db=con)
print(top[["rank", "video_id", "score", "first_level_category_name", "caption"]])

# %% 4. Videos like the user's first recommendation: ALS's item factors, and itemknn's
# training co-views (a model without factors).
video_id = int(top.video_id.iloc[0])
print(kuairec_db.similar_videos(video_id, model="als", n=5, db=con))
print(kuairec_db.similar_videos(video_id, model="itemknn", n=5, db=con))

# %% 5. Someone who is not in the data watched three videos: what next?
history = top.video_id.iloc[:3].tolist()
print(kuairec_db.recommend_for_history(history, model="als", n=5, db=con))

# %% 6. Plain SQL on the same file: is ALS better than popularity, or is it noise?
print(
    con.sql(
        "select metric, round(mean_diff, 4) as diff, round(ci_low, 4) as low, "
        "round(ci_high, 4) as high, p_value from eval_paired "
        "where model_a = 'als' and model_b = 'popularity' and split = 'test' and k = 10 "
        "order by metric"
    ).df()
)
# Where does eval_metrics come from?
print(con.sql("from build_lineage where relation = 'eval_metrics'").df().T)
con.close()

# %% 7. Export the public relations as Parquet for other tools.
from kuairec_db.export import export  # noqa: E402

files = export(db, workdir / "export", "parquet", ["eval_metrics", "recommendations"])
print(duckdb.sql(f"from '{files[0][0]}' order by model, metric limit 5").df())
print("walkthrough done")
