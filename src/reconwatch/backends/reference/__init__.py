"""Reference executor: the whole plan run row by row by the shared interpreter (reconwatch.evaluate), the semantic oracle."""

from reconwatch.evaluate import AggSpec, AggState, EvalContext, Warnings, compile_agg, compile_expr
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
