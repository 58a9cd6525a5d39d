"""Shared test paths and helpers: the checkout, the read-only shared material beside it, ROW queries on each batch executor."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from reconwatch.backends import duckdb as duck
from reconwatch.backends import reference
from reconwatch.esql.analyze import compile_query
from reconwatch.plan.catalog import Result, StaticCatalog

# The checkout's root, and the shared data set (rules, esql-spec, real logs) that lives next to
# it: /work/shared for a checkout in /work. Tests that need it skip with a reason without it.
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
BATCH_BACKENDS = ["reference", "duckdb"]


def run_rows(backend: str, query: str, now: datetime) -> Result:
    """A query over no data (ROW ...) on one batch executor, by name."""
    plan = compile_query(query, StaticCatalog({}))
    if backend == "reference":
        return reference.execute(plan, [], now)
    return duck.execute(plan, None, now)
