"""kuairec_db: KuaiRec recommenders and fully observed evaluation in one DuckDB file."""

__version__ = "0.1.0"
