"""Executors of the logical plan and their registry; no backend imports another.

Every batch executor is a package here whose `EXECUTOR` implements `Executor`: plan + scan
source (plan.scan) + query time -> Result. Adding one is a folder and a line in EXECUTORS. The
stream executor is incremental (events pushed, alerts as groups match), not a batch executor.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
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


class RunsExecutor(Protocol):
    """Runs plans that differ only in a run's constants (a rule's runs over many windows, each
    at its own `now`) in one pass over the source: each plan's Result, exactly as the Executor
    gives it, or None when these plans cannot be run together (then run each alone)."""

    def __call__(
        self, plans: Sequence[Plan], source: ScanSource | None, nows: Sequence[datetime], /
    ) -> list[Result] | None: ...


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


def runs_executor(name: str) -> RunsExecutor | None:
    """The registered executor's way of running many runs' plans at once (its package's
    `RUNS_EXECUTOR`), None when it has none."""
    module = EXECUTORS.get(name)
    if module is None:
        return None
    run: RunsExecutor | None = getattr(importlib.import_module(module), "RUNS_EXECUTOR", None)
    return run
