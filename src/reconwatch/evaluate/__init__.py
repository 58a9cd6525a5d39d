"""The plan evaluated row by row in Python: expressions compiled to closures, scalar and aggregate functions, the step pipeline; shared by the reference and stream executors."""

from reconwatch.evaluate.aggregates import AggSpec, AggState, compile_agg
from reconwatch.evaluate.expressions import EvalContext, Warnings, compile_expr
from reconwatch.evaluate.pipeline import execute

__all__ = [
    "AggSpec",
    "AggState",
    "EvalContext",
    "Warnings",
    "compile_agg",
    "compile_expr",
    "execute",
]
