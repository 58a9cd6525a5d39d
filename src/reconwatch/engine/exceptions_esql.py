"""Exception items compiled into an ES|QL condition (AST) over source fields, applied before the pipeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconwatch.engine.rewrite import FALSE, all_of, any_of, call, literal, or_false
from reconwatch.esql import ast
from reconwatch.plan.nodes import Column
from reconwatch.plan.values import ConversionError, convert
from reconwatch.rules.exceptions import Entry, ExceptionItem, ExceptionList
from reconwatch.types import DataType


def keep_condition(lists: Sequence[ExceptionList], fields: Mapping[str, Column]) -> ast.Expr | None:
    """`not (item1 or item2 ...)` over every list's items, or None when there are none.

    Each part is null-safe (coalesce to false) so an event missing a field is kept, as the
    Elasticsearch bool/must_not filter Kibana builds would keep it.
    """
    items = [item for lst in lists for item in lst.items]
    if not items:
        return None
    return ast.Not(any_of([_item(item, fields) for item in items]))


def _item(item: ExceptionItem, fields: Mapping[str, Column]) -> ast.Expr:
    return all_of([_entry(e, fields) for e in item.entries])


def _entry(entry: Entry, fields: Mapping[str, Column]) -> ast.Expr:
    column = fields.get(entry.field)
    positive: ast.Expr = FALSE if column is None else _positive(entry, column)
    if entry.type == "exists":
        positive = FALSE if column is None else ast.IsNull(ast.Field(entry.field), negated=True)
    return positive if entry.operator == "included" else ast.Not(positive)


def _positive(entry: Entry, column: Column) -> ast.Expr:
    """The `included` form of a match/match_any/wildcard entry: true iff any value matches."""
    ref = ast.Field(entry.field)
    if entry.type == "exists":
        return ast.IsNull(ref, negated=True)
    if entry.type == "wildcard":
        return or_false(ast.Like(ref, (entry.value[0],)))
    values = [t for v in entry.value if (t := _typed(v, column.type)) is not None]
    if not values:
        return FALSE
    if column.multivalued:
        # A term query matches when any value of a multivalued field equals; `==` would be null.
        return any_of([or_false(call("mv_contains", ref, v)) for v in values])
    if len(values) == 1:
        return or_false(ast.Binary("==", ref, values[0]))
    return or_false(ast.In(ref, tuple(values)))


def _typed(value: str, type_: DataType) -> ast.Expr | None:
    """The value as a literal of the field's type, or None if it can never equal such a value."""
    try:
        converted = convert(value, type_)
    except ConversionError:
        return None
    return literal(converted, type_)
