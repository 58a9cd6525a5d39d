"""The npm `object-hash` default (sha1, hex) for the values Kibana hashes into ES|QL alert ids."""

from __future__ import annotations

import hashlib
import math


def _js_number(value: int | float) -> str:
    """JavaScript Number.prototype.toString for the numbers alert ids use."""
    if isinstance(value, int) or (
        math.isfinite(value) and value.is_integer() and abs(value) < 1e21
    ):
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def _utf16_len(text: str) -> int:
    # object-hash writes JavaScript's string.length, which counts UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


def _serialize(value: object, out: list[str]) -> None:
    if value is None:
        out.append("Null")
    elif isinstance(value, bool):
        out.append(f"bool:{'true' if value else 'false'}")
    elif isinstance(value, int | float):
        out.append(f"number:{_js_number(value)}")
    elif isinstance(value, str):
        out.append(f"string:{_utf16_len(value)}:{value}")
    elif isinstance(value, list | tuple):
        # Default options keep arrays ordered (unorderedArrays: false).
        out.append(f"array:{len(value)}:")
        for item in value:
            _serialize(item, out)
    else:
        msg = f"object_hash: unsupported value type {type(value).__name__}"
        raise TypeError(msg)


class Undefined:
    """JavaScript `undefined` (a hit without `_version`)."""


UNDEFINED = Undefined()


def object_hash(value: object) -> str:
    """sha1 hex of object-hash's serialisation of strings, numbers, booleans, null and arrays."""
    out: list[str] = []
    _serialize_any(value, out)
    return hashlib.sha1("".join(out).encode("utf-8"), usedforsecurity=False).hexdigest()


def _serialize_any(value: object, out: list[str]) -> None:
    if isinstance(value, Undefined):
        out.append("Undefined")
    elif isinstance(value, list | tuple):
        out.append(f"array:{len(value)}:")
        for item in value:
            _serialize_any(item, out)
    else:
        _serialize(value, out)
