"""Spark executor: the plan's row-local steps and STATS groups on a Spark cluster (or local mode), the shared interpreter in every worker."""

from __future__ import annotations

from reconwatch.backends import Executor, RunsExecutor
from reconwatch.backends.spark.execute import execute as _execute
from reconwatch.backends.spark.runs import execute_runs as _execute_runs

EXECUTOR: Executor = _execute
RUNS_EXECUTOR: RunsExecutor = _execute_runs

__all__ = ["EXECUTOR", "RUNS_EXECUTOR"]
