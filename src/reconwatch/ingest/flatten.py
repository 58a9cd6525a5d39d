"""Events as Elasticsearch sees them: nested objects and dotted keys merged into leaf fields."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from reconwatch.plan import values
from reconwatch.types import DataType as T

Flat = dict[str, list[object]]


def flatten(doc: dict[str, object]) -> Flat:
    """Leaf fields by dotted path, each with all its values (arrays and repeated paths merged)."""
    out: Flat = {}
    _walk(doc, "", out)
    return out


def _walk(value: object, prefix: str, out: Flat) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for item in value:
            _walk(item, prefix, out)
    elif value is not None and prefix:
        out.setdefault(prefix, []).append(value)


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


def convert_leaf(value: object, type_: T) -> object:
    """One JSON leaf as a value of a mapped type; ConversionError when Elasticsearch would reject it."""
    if type_ in (T.KEYWORD, T.TEXT):
        if isinstance(value, str):
            return value
        if isinstance(value, bool | int | float):
            return values.to_text(value, type_)
        if isinstance(value, datetime):
            return values.format_datetime(value)
        msg = f"cannot index [{value!r}] as [{type_.value}]"
        raise values.ConversionError(msg)
    if type_ in (T.LONG, T.INTEGER) and isinstance(value, float) and not value.is_integer():
        # Elasticsearch truncates a fractional long; keep its behaviour (coerce: true).
        return values.convert(int(value), type_)
    if type_ is T.DATETIME and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return values.datetime_from_millis(int(value))
    return values.convert(value, type_)


def document_json(raw: Mapping[str, object]) -> str:
    """METADATA _source: the event as nested JSON (dotted keys become objects)."""
    doc: dict[str, object] = {}
    for key, value in raw.items():
        if key.startswith("_"):
            continue
        node = doc
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[leaf] = value
    return json.dumps(doc, default=str, separators=(",", ":"))
