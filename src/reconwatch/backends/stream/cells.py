"""Event values for the stream: raw JSON leaves converted to plan types as ingest indexes them, with the caches a scan's repeated values need."""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from datetime import UTC, datetime

from reconwatch.plan import values as v
from reconwatch.plan.documents import convert_leaf
from reconwatch.types import DataType as T

_MISSING = object()
_ISO_MS = re.compile(r"(\d{4}-\d\d-\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z")
_DAY_MS: dict[str, int | None] = {}
_DAY_CACHE_MAX = 10_000
_IP_CACHE: dict[str, object] = {}
_IP_CACHE_MAX = 200_000
_V4_PREFIX = b"\x00" * 10 + b"\xff\xff"


def ipv4_key(value: object) -> bytes | None:
    """values.ip_bytes of a canonical dotted-quad IPv4 string, via inet_pton rather than the
    much slower ipaddress; None for anything else. Only a spelling that round-trips unchanged
    counts, so leading zeros and other forms stay with the strict parser."""
    if type(value) is not str or ":" in value:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET, value)
    except OSError:
        return None
    return _V4_PREFIX + packed if socket.inet_ntop(socket.AF_INET, packed) == value else None


def iso_millis(text: str) -> int | None:
    """Epoch millis of the usual `2025-07-15T00:00:00.351Z` spelling without building a
    datetime (the generic parser costs microseconds per event); None for any other spelling or
    an invalid date or time, which the generic parser then handles or rejects."""
    m = _ISO_MS.fullmatch(text)
    if m is None:
        return None
    day_text, hh, mm, ss, fff = m.groups()
    day = _DAY_MS.get(day_text, _MISSING)
    if day is _MISSING:
        if len(_DAY_MS) >= _DAY_CACHE_MAX:
            _DAY_MS.clear()
        try:
            day = _DAY_MS[day_text] = v.datetime_to_millis(
                datetime.fromisoformat(day_text).replace(tzinfo=UTC)
            )
        except ValueError:
            day = _DAY_MS[day_text] = None
    h, mi, sec = int(hh), int(mm), int(ss)
    if day is None or h > 23 or mi > 59 or sec > 59:
        return None
    return day + ((h * 60 + mi) * 60 + sec) * 1000 + int(fff)  # type: ignore[operator]


def cell_value(raw: object, type_: T) -> object:
    """An input value (or list of values) converted as ingest indexes it; bad values dropped."""
    if raw is None:
        return None
    if type(raw) is list and len(raw) == 1:
        raw = raw[0]  # decoders give every field as a list; most hold one value
    if isinstance(raw, str):
        if type_ is T.KEYWORD:
            return raw
        if type_ is T.IP:
            # Scans repeat addresses; parsing one with ipaddress costs microseconds.
            hit = _IP_CACHE.get(raw, _MISSING)
            if hit is _MISSING:
                if len(_IP_CACHE) >= _IP_CACHE_MAX:
                    _IP_CACHE.clear()
                # A canonical dotted quad converts to itself; only other spellings need parsing.
                canonical = ipv4_key(raw) is not None
                hit = _IP_CACHE[raw] = raw if canonical else _convert_items((raw,), type_)
            return hit
    return _convert_items(raw if isinstance(raw, list) else (raw,), type_)


def _convert_items(items: list[object] | tuple[object, ...], type_: T) -> object:
    out: list[object] = []
    for item in items:
        if item is None or isinstance(item, dict | list):
            continue
        try:
            out.append(convert_leaf(item, type_))
        except v.ConversionError:
            continue
    if not out:
        return None
    return out[0] if len(out) == 1 else out


def metadata(name: str, raw: Mapping[str, object]) -> object:
    """A METADATA column of an event: _version is 1, the others their text."""
    if name == "_version":
        return 1
    value = raw.get(name)
    if isinstance(value, list):
        value = value[0] if value else None
    return None if value is None else str(value)
