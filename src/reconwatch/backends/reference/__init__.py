"""Reference interpreter: the plan evaluated row by row in Python, the semantic oracle."""

from reconwatch.backends.reference.aggregates import AggSpec, AggState, compile_agg
from reconwatch.backends.reference.evaluate import EvalContext, Warnings, compile_expr
from reconwatch.backends.reference.execute import execute

__all__ = [
    "AggSpec",
    "AggState",
    "EvalContext",
    "Warnings",
    "compile_agg",
    "compile_expr",
    "execute",
]
