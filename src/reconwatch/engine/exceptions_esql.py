"""Exception items compiled into an ES|QL condition over source fields, applied before the pipeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from reconwatch.engine.query_text import literal, quote_field, string_literal
from reconwatch.plan.nodes import Column
from reconwatch.plan.values import ConversionError, convert
from reconwatch.rules.exceptions import Entry, ExceptionItem, ExceptionList
from reconwatch.types import DataType


def keep_condition(lists: Sequence[ExceptionList], fields: Mapping[str, Column]) -> str | None:
    """`not (item1 or item2 ...)` over every list's items, or None when there are none.

    Each part is null-safe (coalesce to false) so an event missing a field is kept, as the
    Elasticsearch bool/must_not filter Kibana builds would keep it.
    """
    items = [item for lst in lists for item in lst.items]
    if not items:
        return None
    return "not (" + " or ".join(_item(item, fields) for item in items) + ")"


def _item(item: ExceptionItem, fields: Mapping[str, Column]) -> str:
    return "(" + " and ".join(_entry(e, fields) for e in item.entries) + ")"


def _entry(entry: Entry, fields: Mapping[str, Column]) -> str:
    column = fields.get(entry.field)
    positive = "false" if column is None else _positive(entry, column)
    if entry.type == "exists":
        positive = "false" if column is None else f"{quote_field(entry.field)} is not null"
    return positive if entry.operator == "included" else f"not {positive}"


def _positive(entry: Entry, column: Column) -> str:
    """The `included` form of a match/match_any/wildcard entry: true iff any value matches."""
    ref = quote_field(entry.field)
    if entry.type == "exists":
        return f"{ref} is not null"
    if entry.type == "wildcard":
        return f"coalesce({ref} like {string_literal(entry.value[0])}, false)"
    values = [t for v in entry.value if (t := _typed(v, column.type)) is not None]
    if not values:
        return "false"
    if column.multivalued:
        # A term query matches when any value of a multivalued field equals; `==` would be null.
        return "(" + " or ".join(f"coalesce(mv_contains({ref}, {v}), false)" for v in values) + ")"
    if len(values) == 1:
        return f"coalesce({ref} == {values[0]}, false)"
    return f"coalesce({ref} in ({', '.join(values)}), false)"


def _typed(value: str, type_: DataType) -> str | None:
    """The value as a literal of the field's type, or None if it can never equal such a value."""
    try:
        converted = convert(value, type_)
    except ConversionError:
        return None
    return literal(converted, type_)
