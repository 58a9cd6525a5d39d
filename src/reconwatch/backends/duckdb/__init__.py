"""The DuckDB executor: the logical plan compiled to SQL, one CTE per pipe stage."""

from reconwatch.backends.duckdb.execute import compile_for, execute

__all__ = ["compile_for", "execute"]
