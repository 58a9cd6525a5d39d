"""Dynamic mapping as Elasticsearch does it: the JSON kind of a leaf, the type inferred for a field outside the schema, date detection."""

from __future__ import annotations

from datetime import datetime

from reconwatch.plan import values
from reconwatch.types import DataType as T


def kind_of(value: object) -> str:
    """The JSON kind of a leaf value, for type inference of fields outside the ECS schema."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, str):
        return "string"
    return "other"


def infer_type(kinds: set[str], all_dates: bool) -> T:
    """Elasticsearch dynamic mapping, simplified: numbers widen, ISO-8601 strings are dates."""
    if kinds == {"boolean"}:
        return T.BOOLEAN
    if kinds == {"long"}:
        return T.LONG
    if kinds <= {"long", "double"}:
        return T.DOUBLE
    if kinds <= {"datetime", "string"} and all_dates:
        return T.DATETIME
    return T.KEYWORD


def looks_like_date(text: str) -> bool:
    """Elasticsearch's date detection: strict_date_optional_time with at least a full date."""
    if len(text) < 10 or text[4:5] != "-" or text[7:8] != "-":
        return False
    try:
        values.parse_datetime(text)
    except values.ConversionError:
        return False
    return True
