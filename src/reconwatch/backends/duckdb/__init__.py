"""DuckDB executor: plan to SQL, one CTE per pipe stage."""
