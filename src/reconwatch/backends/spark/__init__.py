"""Spark executor: the plan's row-local steps and STATS groups on a Spark cluster (or local mode), the shared interpreter in every worker."""

from __future__ import annotations

from reconwatch.backends import Executor
from reconwatch.backends.spark.execute import execute as _execute

EXECUTOR: Executor = _execute

__all__ = ["EXECUTOR"]
