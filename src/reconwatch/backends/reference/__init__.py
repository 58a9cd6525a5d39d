"""Reference executor: the whole plan run row by row by the shared interpreter (reconwatch.evaluate), the semantic oracle."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from reconwatch.backends import Executor
from reconwatch.evaluate import AggSpec, AggState, EvalContext, Warnings, compile_agg, compile_expr
from reconwatch.evaluate.pipeline import execute
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import Result
from reconwatch.plan.scan import ScanSource


def execute_scan(plan: p.Plan, source: ScanSource | None, now: datetime) -> Result:
    """`execute` over the rows the source gives for the plan's FROM (none for ROW)."""
    rows: Iterable[Mapping[str, object]] = []
    if source is not None and isinstance(plan.source, p.Source):
        names = [f.name for f in plan.source.fields]
        inputs = source.selected_inputs(plan.source.indices)
        rows = source.rows(names, inputs, plan.source.metadata)
    return execute(plan, rows, now)


EXECUTOR: Executor = execute_scan

__all__ = [
    "EXECUTOR",
    "AggSpec",
    "AggState",
    "EvalContext",
    "Warnings",
    "compile_agg",
    "compile_expr",
    "execute",
    "execute_scan",
]
