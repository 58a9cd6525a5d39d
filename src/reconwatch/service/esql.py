"""`POST /_query`: Elasticsearch's ES|QL API over the store (columns and values, its errors)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from reconwatch.errors import (
    QueryError,
    QueryMemoryError,
    QuerySyntaxError,
    QueryTimeoutError,
    ReconwatchError,
    UnsupportedFeatureError,
)
from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.ingest import Dataset
from reconwatch.plan import limits, values
from reconwatch.plan.catalog import Result
from reconwatch.service.storequery import run_on_store
from reconwatch.store import Store
from reconwatch.store.window import window_dataset
from reconwatch.types import DataType

# ES|QL's response names where they differ from the type's own name.
_TYPE_NAMES = {DataType.DATETIME: "date"}


def run(
    store: Store, text: str, now: datetime, query_limits: limits.QueryLimits | None = None
) -> Result:
    """The query over the stored events of the indices its FROM names (every stored time),
    under the service's query limits (memory, time budget)."""
    with limits.limited(query_limits or limits.QueryLimits()):
        first = parse(text).commands[0]
        if isinstance(first, ast.From):
            dataset = window_dataset(store, tuple(first.sources), None, None, None)
        else:
            dataset = Dataset.from_stored([])
        return run_on_store(store, text, dataset, now)


def body(result: Result, took_ms: int) -> dict[str, Any]:
    return {
        "took": took_ms,
        "is_partial": False,
        "columns": [
            {"name": c.name, "type": _TYPE_NAMES.get(c.type, str(c.type))} for c in result.columns
        ],
        "values": [[_json(v) for v in row] for row in result.rows],
    }


def _json(value: object) -> object:
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, datetime):
        return values.format_datetime(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def error(exc: ReconwatchError) -> tuple[int, str, str]:
    """(status, type, reason) as Elasticsearch answers a query it refuses."""
    if isinstance(exc, QuerySyntaxError):
        return 400, "parsing_exception", exc.one_line()
    if isinstance(exc, UnsupportedFeatureError):
        return 400, "illegal_argument_exception", exc.one_line()
    if isinstance(exc, QueryError):
        return 400, "verification_exception", f"Found 1 problem\n{exc.one_line()}"
    # Elasticsearch's answers to a query its circuit breaker stops and to a cancelled task.
    if isinstance(exc, QueryMemoryError):
        return 429, "circuit_breaking_exception", exc.one_line()
    if isinstance(exc, QueryTimeoutError):
        return 400, "task_cancelled_exception", exc.one_line()
    return 500, "esql_execution_exception", exc.one_line()
