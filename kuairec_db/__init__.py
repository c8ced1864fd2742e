"""kuairec_db: KuaiRec recommenders and fully observed evaluation in one DuckDB file.

The Python API (see the README, "Python API")::

    import kuairec_db
    kuairec_db.build("kuairec.duckdb", demo=True)
    kuairec_db.metrics(db="kuairec.duckdb")          # a pandas DataFrame
    kuairec_db.recommend(14, model="als", db="kuairec.duckdb")
"""

from typing import Any

__version__ = "0.1.0"

_API = (
    "build",
    "connect",
    "recommend",
    "metrics",
    "similar_videos",
    "recommend_for_history",
)
__all__ = [*_API, "UserError", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: `python -m kuairec_db --help` and the models need not import pandas and duckdb here.
    if name == "build":
        # the submodule kuairec_db.build, callable as the API's build (see its end)
        import importlib

        return importlib.import_module("kuairec_db.build")
    if name in _API:
        from kuairec_db import api

        return getattr(api, name)
    if name == "UserError":
        from kuairec_db.errors import UserError

        return UserError
    raise AttributeError(f"module 'kuairec_db' has no attribute {name!r}")
