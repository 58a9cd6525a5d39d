"""The DuckDB executor: the logical plan compiled to SQL, one CTE per pipe stage."""

from reconwatch.backends import Executor
from reconwatch.backends.duckdb.execute import compile_for, execute

EXECUTOR: Executor = execute

__all__ = ["EXECUTOR", "compile_for", "execute"]
