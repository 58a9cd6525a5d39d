"""Events as every executor reads them: nested JSON flattened to dotted leaf fields, leaves converted as Elasticsearch indexes them, METADATA _source rendered back."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime

import msgspec

from reconwatch.plan import values
from reconwatch.types import DataType as T

# An event nesting arrays and objects deeper than this is a bad line for every reader (Python,
# DuckDB, the stream): msgspec's own limit comes from Python's recursion limit and so moves with
# the caller's stack, and DuckDB's reader has none; one fixed number below both makes them agree.
MAX_DEPTH = 500


class TooDeepError(ValueError):
    """A JSON text nested deeper than MAX_DEPTH."""


# What decoding bad JSON raises: malformed text, nesting deeper than MAX_DEPTH (check_depth) or
# than msgspec's recursion limit (a RecursionError, not a DecodeError), or bytes that are not
# UTF-8 inside a string (callers that can retry with replacement characters do).
JSON_ERRORS = (msgspec.DecodeError, TooDeepError, RecursionError, UnicodeDecodeError)


def check_depth(text: bytes | str) -> None:
    """Raise TooDeepError when `text` nests deeper than MAX_DEPTH. Cheap for ordinary events:
    only a text holding more than MAX_DEPTH opening brackets is walked."""
    if len(text) <= 2 * MAX_DEPTH:
        return
    data = text if isinstance(text, bytes) else text.encode("utf-8", "replace")
    if data.count(b"{") + data.count(b"[") <= MAX_DEPTH:
        return
    if nesting_depth(data) > MAX_DEPTH:
        msg = f"nested deeper than {MAX_DEPTH} levels"
        raise TooDeepError(msg)


def nesting_depth(data: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


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


def convert_leaf(value: object, type_: T) -> object:
    """One JSON leaf as a value of a mapped type; ConversionError when Elasticsearch would reject it."""
    if type(value) is float and not math.isfinite(value):
        # NaN and the infinities are not JSON: a file's line holding one is refused as not JSON
        # (Elasticsearch's parser refuses the document too); in-memory documents can hold them.
        name = "NaN" if value != value else "Infinity" if value > 0 else "-Infinity"
        msg = f"[{name}] is not a JSON number"
        raise values.ConversionError(msg)
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
