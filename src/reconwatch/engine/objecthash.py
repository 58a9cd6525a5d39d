"""The npm `object-hash` default (sha1, hex) for the values Kibana hashes into ES|QL alert ids."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence


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
    """A scalar: null, boolean, number or string."""
    if value is None:
        out.append("Null")
    elif isinstance(value, bool):
        out.append(f"bool:{'true' if value else 'false'}")
    elif isinstance(value, int | float):
        out.append(f"number:{_js_number(value)}")
    elif isinstance(value, str):
        out.append(f"string:{_utf16_len(value)}:{value}")
    else:
        msg = f"object_hash: unsupported value type {type(value).__name__}"
        raise TypeError(msg)


class Undefined:
    """JavaScript `undefined` (a hit without `_version`)."""


UNDEFINED = Undefined()


class _Native:
    """Object.prototype and the Object constructor, which object-hash walks for plain objects."""

    def __init__(self, name: str) -> None:
        self.name = name


_OBJECT_PROTOTYPE = _Native("Object.prototype")
_OBJECT_FUNCTION = _Native("Object")


class _Writer:
    """object-hash's default serialisation (respectType, sorted keys, ordered arrays), with its
    circular-reference numbering: every object and array it enters is remembered in order."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.context: list[int] = []

    def _enter(self, value: object) -> bool:
        if id(value) in self.context:
            self.write_value(f"[CIRCULAR:{self.context.index(id(value))}]")
            return False
        self.context.append(id(value))
        return True

    def write_value(self, value: object) -> None:
        if isinstance(value, Undefined):
            self.out.append("Undefined")
        elif value is _OBJECT_FUNCTION:
            # A native function: its source as "[native]", its name, then its own (no) keys.
            self.out.append("fn:")
            self.write_value("[native]")
            self.write_value("function-name:Object")
            if self._enter(value):
                self.out.append("object:0:")
        elif value is _OBJECT_PROTOTYPE:
            # Object.prototype has no own keys and no prototype of its own.
            if self._enter(value):
                self._entries(
                    [
                        ("prototype", UNDEFINED),
                        ("__proto__", None),
                        ("constructor", _OBJECT_FUNCTION),
                    ]
                )
        elif isinstance(value, list | tuple):
            # Default options keep arrays ordered (unorderedArrays: false).
            if self._enter(value):
                self.out.append(f"array:{len(value)}:")
                for item in value:
                    self.write_value(item)
        elif isinstance(value, Mapping):
            if self._enter(value):
                # respectType puts prototype, __proto__ and constructor before the sorted keys.
                own = sorted(value, key=lambda k: str(k).encode("utf-16-be"))
                self._entries(
                    [
                        ("prototype", UNDEFINED),
                        ("__proto__", _OBJECT_PROTOTYPE),
                        ("constructor", _OBJECT_FUNCTION),
                        *((str(k), value[k]) for k in own),
                    ]
                )
        else:
            _serialize(value, self.out)

    def _entries(self, entries: Sequence[tuple[str, object]]) -> None:
        self.out.append(f"object:{len(entries)}:")
        for key, item in entries:
            self.write_value(key)
            self.out.append(":")
            self.write_value(item)
            self.out.append(",")


def object_hash(value: object) -> str:
    """sha1 hex of object-hash's serialisation of strings, numbers, booleans, null, undefined,
    arrays and plain objects (dicts)."""
    writer = _Writer()
    writer.write_value(value)
    return hashlib.sha1("".join(writer.out).encode("utf-8"), usedforsecurity=False).hexdigest()
