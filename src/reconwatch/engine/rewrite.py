"""Rule runs as rewrites of the parsed query: Kibana's filters and page size inserted into the AST.

The rule's own commands keep the spans of their parse, so an error in them points into the
rule's query as written; inserted nodes have none. esql/render turns a rewrite back into text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime

from reconwatch.esql import ast
from reconwatch.plan.values import format_datetime
from reconwatch.types import DataType

FALSE = ast.Literal("boolean", False)


def with_filters(query: ast.Query, conditions: Sequence[ast.Expr]) -> ast.Query:
    """`| WHERE cond` stages right after the source command, where Kibana's DSL filters act."""
    if not conditions:
        return query
    first, *rest = query.commands
    return replace(query, commands=(first, *(ast.Where(c) for c in conditions), *rest))


def with_limit(query: ast.Query, size: int) -> ast.Query:
    """Kibana's request body: `<rule query> | LIMIT <size>`."""
    return replace(query, commands=(*query.commands, ast.Limit(size)))


def with_commands(query: ast.Query, commands: Iterable[ast.Command]) -> ast.Query:
    """Other commands, the same source text (for positions in the rule's own commands)."""
    return replace(query, commands=tuple(commands))


def is_stats(command: ast.Command) -> bool:
    """A STATS that groups the rows (INLINE STATS keeps every row)."""
    return isinstance(command, ast.Stats) and not command.inline


def string(text: str) -> ast.Literal:
    return ast.Literal("string", text)


def call(name: str, *args: ast.Expr) -> ast.Call:
    return ast.Call(name, tuple(args))


def all_of(conditions: Sequence[ast.Expr]) -> ast.Expr:
    """`a AND b AND ...` as the parser builds it (one node for the chain); one alone is itself."""
    return conditions[0] if len(conditions) == 1 else ast.And(tuple(conditions))


def any_of(conditions: Sequence[ast.Expr]) -> ast.Expr:
    """`a OR b OR ...` as the parser builds it (one node for the chain); one alone is itself."""
    return conditions[0] if len(conditions) == 1 else ast.Or(tuple(conditions))


def or_false(condition: ast.Expr) -> ast.Expr:
    """Null-safe: a missing value makes the condition false, not null."""
    return call("coalesce", condition, FALSE)


def literal(value: object, type_: DataType) -> ast.Expr:
    """An expression denoting `value` of `type_` (one value, not null)."""
    if isinstance(value, bool):
        return ast.Literal("boolean", value)
    if isinstance(value, datetime):
        return call("to_datetime", string(format_datetime(value)))
    if type_ is DataType.IP:
        return call("to_ip", string(str(value)))
    if type_ is DataType.VERSION:
        return call("to_version", string(str(value)))
    if type_ in (DataType.DATETIME, DataType.DATE_NANOS):
        return call("to_datetime", string(str(value)))
    if isinstance(value, int):
        return _number(value, "integer")
    if isinstance(value, float):
        return _number(value, "decimal")
    return string(str(value))


def _number(value: int | float, kind: ast.LiteralKind) -> ast.Expr:
    # A negative number is written (and parsed) as a negation of its magnitude.
    if value < 0:
        return ast.Unary("-", ast.Literal(kind, -value))
    return ast.Literal(kind, value)


def time_range(field: str | None, start: datetime, end: datetime) -> ast.Expr:
    """Kibana's run filter: `field` in [start, end], `@timestamp` where `field` is missing."""
    # Plain strings, which ES|QL casts to the field's datetime type: they compile to constants,
    # where TO_DATETIME(...) is a function evaluated per row.
    lo, hi = string(format_datetime(start)), string(format_datetime(end))
    ts: ast.Expr = ast.Field("@timestamp")
    if field is not None and field != "@timestamp":
        ts = call("coalesce", ast.Field(field), ts)
    return all_of([ast.Binary(">=", ts, lo), ast.Binary("<=", ts, hi)])
