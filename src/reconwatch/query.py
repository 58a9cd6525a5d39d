"""The engine facade: ES|QL text and a dataset in, a Result out (the CLI, rules engine and web call it)."""

from __future__ import annotations

import dataclasses
import pprint
from datetime import datetime
from typing import TYPE_CHECKING

from reconwatch.backends.duckdb.execute import ExecutionError
from reconwatch.errors import QuerySemanticError, UsageError
from reconwatch.esql.analyze import compile_query
from reconwatch.ingest.dataset import Dataset
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import NO_SPAN, Column, Limit, Plan

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

BACKENDS = ("duckdb",)
MAX_RETRIES = 64


def run_query(text: str, dataset: Dataset, *, now: datetime, backend: str = "duckdb") -> Result:
    """Compile and run ES|QL text over a dataset, `now` being the query time."""
    if backend != "duckdb":
        msg = f"unknown backend [{backend}]; known: {', '.join(BACKENDS)}"
        raise UsageError(msg)
    from reconwatch.backends.duckdb.execute import RetryScan, execute

    # Each retry moves a file to the Python reader, marks a field multivalued or completes the
    # field scan: a bounded number of times.
    for _attempt in range(MAX_RETRIES):
        plan = compile_on(text, dataset)
        try:
            return execute(plan, dataset, now)
        except RetryScan:
            continue
    msg = f"reading the events did not settle after {MAX_RETRIES} attempts"
    raise ExecutionError(msg)


def pin(
    text: str, dataset: Dataset, *, now: datetime, con: DuckDBPyConnection, table: str
) -> tuple[Column, ...]:
    """Run ES|QL text into a temporary DuckDB table on `con` (read once, queried many times);
    returns its columns (multivalued where the table holds lists)."""
    from reconwatch.backends.duckdb.execute import RetryScan, materialize

    for _attempt in range(MAX_RETRIES):
        plan = _without_implicit_limit(compile_on(text, dataset))
        try:
            compiled = materialize(plan, dataset, now, con, table)
        except RetryScan:
            continue
        return tuple(
            Column(c.name, c.type, is_list)
            for c, is_list in zip(compiled.columns, compiled.lists, strict=True)
        )
    msg = f"reading the events did not settle after {MAX_RETRIES} attempts"
    raise ExecutionError(msg)


def _without_implicit_limit(plan: Plan) -> Plan:
    """A pinned result keeps every row: the LIMIT 1000 the analyser adds to results is not there."""
    steps = plan.steps
    if steps and isinstance(steps[-1], Limit) and steps[-1].span == NO_SPAN:
        return dataclasses.replace(plan, steps=steps[:-1])
    return plan


def compile_on(text: str, dataset: Dataset) -> Plan:
    """compile_query, except that an unknown column is looked for in every event first (the
    catalog knows the schema and a sample of each file until then)."""
    try:
        return compile_query(text, dataset)
    except QuerySemanticError as exc:
        if "Unknown column" not in str(exc) or not dataset.complete_fields():
            raise
    return compile_query(text, dataset)


def explain(text: str, dataset: Dataset, *, now: datetime | None = None) -> str:
    """The logical plan pretty-printed, then the DuckDB SQL it compiles to."""
    from datetime import UTC

    from reconwatch.backends.duckdb import compile_for

    plan = compile_on(text, dataset)
    compiled = compile_for(plan, dataset, now or datetime(1970, 1, 1, tzinfo=UTC))
    lines = ["-- plan", pprint.pformat(plan.source, width=100)]
    lines += [pprint.pformat(step, width=100) for step in plan.steps]
    lines += ["-- duckdb sql", compiled.sql]
    return "\n".join(lines)
