"""Executors of the logical plan and their registry; no backend imports another.

Every batch executor is a package here whose `EXECUTOR` implements `Executor`: plan + scan
source (plan.scan) + query time -> Result. Adding one is a folder and a line in EXECUTORS. The
stream executor is incremental (events pushed, alerts as groups match), not a batch executor.
"""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import Protocol

from reconwatch.errors import UsageError
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import Plan
from reconwatch.plan.scan import ScanSource


class Executor(Protocol):
    """Runs a plan over a source (None: a plan without FROM) with `now` as the query time. It
    may raise RetryScan when the source learnt something while being read (plan.scan)."""

    def __call__(self, plan: Plan, source: ScanSource | None, now: datetime, /) -> Result: ...


# name -> the package whose EXECUTOR runs plans; imported only when that executor is asked for.
EXECUTORS: dict[str, str] = {
    "duckdb": "reconwatch.backends.duckdb",
    "reference": "reconwatch.backends.reference",
    "spark": "reconwatch.backends.spark",
}


def executor(name: str) -> Executor:
    """The executor registered as `name`; UsageError naming the known ones otherwise."""
    module = EXECUTORS.get(name)
    if module is None:
        msg = f"unknown executor [{name}]; known: {', '.join(EXECUTORS)}"
        raise UsageError(msg)
    run: Executor = importlib.import_module(module).EXECUTOR
    return run
