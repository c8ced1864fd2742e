"""The old import path of the ranking helpers, kept for models written against it
(``from kuairec_db.modelkit import write_rankings``); they live in ``kuairec_db.modelapi``."""

from kuairec_db.modelapi import (  # noqa: F401
    BATCH_USERS,
    ModelContext,
    ScoreUsers,
    binary,
    rank_users,
    structure_mask,
    top_n_allowed,
    write_rankings,
)
