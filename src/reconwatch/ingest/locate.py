"""A few known events' source lines in plain NDJSON files: binary search on time, then verify."""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import msgspec

from reconwatch.plan import values
from reconwatch.plan.documents import JSON_ERRORS, Flat, check_depth, convert_leaf, flatten
from reconwatch.records import record
from reconwatch.types import DataType as T

# Lines looked at on each side of where the binary search lands: files written in arrival
# order are in time order only roughly (agents batch and retry, clocks drift).
NEIGHBOURHOOD = 4096
# A pass over the whole file is the fallback for a file not in time order at all.
_GZIP, _ZSTD = b"\x1f\x8b", b"\x28\xb5\x2f\xfd"
# Characters JSON may spell as an escape: a needle never spans one.
_ESCAPABLE = frozenset('/\\"') | frozenset(chr(c) for c in range(32))


class _Stamp(msgspec.Struct):
    timestamp: object = msgspec.field(name="@timestamp", default=None)


_STAMP = msgspec.json.Decoder(_Stamp)


@record
class Wanted:
    """An event known by its time and some converted field values (a value or a list of them)."""

    time: datetime
    fields: Mapping[str, object]
    types: Mapping[str, T] = field(default_factory=dict)
    # The field `time` is read from (falling back to @timestamp, as Kibana's
    # timestamp_override does); the binary search itself always goes by @timestamp.
    time_field: str = "@timestamp"

    def needle(self) -> bytes | None:
        """The longest piece of a string value that JSON writes verbatim; None without one."""
        pieces = [p for v in self.fields.values() for s in _strings(v) for p in _verbatim(s)]
        return max(pieces, key=len).encode() if pieces else None

    def matches(self, flat: Flat) -> bool:
        raw = flat.get(self.time_field) or flat.get("@timestamp", [])
        stamps = [_time(v) for v in raw]
        if not any(s is not None and abs(s - self.time) < _MILLI for s in stamps):
            return False
        for name, want in self.fields.items():
            have = _converted(flat.get(name, ()), self.types.get(name, T.KEYWORD))
            if not all(w in have for w in values.as_list(want)):
                return False
        return True


@record
class Located:
    """A line found: its file, its byte offset and its leaves as read (unconverted)."""

    path: Path
    offset: int
    event: Flat

    def value(self, name: str, type_: T) -> object:
        """The field as the engine would hold it: converted, a list when multivalued."""
        return values.from_list(_converted(self.event.get(name, ()), type_))


_MILLI = timedelta(milliseconds=1)


def is_plain(path: Path) -> bool:
    """An uncompressed file: the only kind a byte offset can be sought in."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError:
        return False
    return not (magic.startswith(_GZIP) or magic == _ZSTD)


def locate(paths: Sequence[Path], wanted: Sequence[Wanted]) -> list[Located | None]:
    """Each wanted event's line, or None where no line of these files holds it."""
    found: list[Located | None] = [None] * len(wanted)
    for path in paths:
        todo = [i for i, f in enumerate(found) if f is None]
        if not todo:
            break
        try:
            with path.open("rb") as fh, _map(fh) as mm:
                for i in todo:
                    found[i] = _near_time(path, mm, wanted[i])
                for i in [i for i in todo if found[i] is None]:
                    found[i] = _anywhere(path, mm, wanted[i])
        except (OSError, ValueError):
            continue  # unreadable or empty now: the sample keeps what the engine read
    return found


def _map(fh: BinaryIO) -> mmap.mmap:
    return mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)


def _near_time(path: Path, mm: mmap.mmap, want: Wanted) -> Located | None:
    start = _first_not_before(mm, want.time)
    needle = want.needle()
    before = _lines_backward(mm, start, NEIGHBOURHOOD)
    after = _lines_forward(mm, start, NEIGHBOURHOOD)
    for offset, line in _interleave(after, before):
        if needle is not None and needle not in line:
            continue
        located = _verify(path, offset, line, want)
        if located is not None:
            return located
    return None


def _anywhere(path: Path, mm: mmap.mmap, want: Wanted) -> Located | None:
    """The whole file, line by line where the needle occurs (a file not in time order)."""
    needle = want.needle()
    if needle is None:
        return None
    pos = mm.find(needle)
    while pos >= 0:
        start = mm.rfind(b"\n", 0, pos) + 1
        end = _line_end(mm, pos)
        located = _verify(path, start, mm[start:end], want)
        if located is not None:
            return located
        pos = mm.find(needle, end)
    return None


def _verify(path: Path, offset: int, line: bytes, want: Wanted) -> Located | None:
    try:
        check_depth(line)  # a line the readers refuse is no event's evidence
        doc = msgspec.json.decode(line)
    except JSON_ERRORS:
        return None
    if not isinstance(doc, dict):
        return None
    flat = flatten(doc)
    return Located(path, offset, flat) if want.matches(flat) else None


def _first_not_before(mm: mmap.mmap, when: datetime) -> int:
    """Offset of the first line whose time is not before `when`, were the file in time order."""
    lo, hi = 0, len(mm)
    while lo < hi:
        mid = (lo + hi) // 2
        start = 0 if mid == 0 else _line_end(mm, mid - 1) + 1
        stamp, end = _stamp_from(mm, start, hi)
        if stamp is None or stamp >= when:
            hi = mid
        else:
            lo = end + 1  # a line start, past mid
    return lo


def _stamp_from(mm: mmap.mmap, start: int, limit: int) -> tuple[datetime | None, int]:
    """The time of the first line at or after `start` that has one, and that line's end."""
    while start < limit:
        end = _line_end(mm, start)
        stamp = _line_time(mm[start:end])
        if stamp is not None:
            return stamp, end
        start = end + 1
    return None, limit


def _line_time(line: bytes) -> datetime | None:
    try:
        return _time(_STAMP.decode(line).timestamp)
    except (*JSON_ERRORS, msgspec.ValidationError):
        return None


def _time(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        converted = convert_leaf(value, T.DATETIME)
    except (values.ConversionError, ValueError, OverflowError):
        return None
    return converted if isinstance(converted, datetime) else None


def _converted(raw: Sequence[object], type_: T) -> list[object]:
    out: list[object] = []
    for value in raw:
        try:
            out.append(convert_leaf(value, type_))
        except (values.ConversionError, ValueError, OverflowError):
            continue
    return out


def _line_end(mm: mmap.mmap, pos: int) -> int:
    end = mm.find(b"\n", pos)
    return len(mm) if end < 0 else end


def _line_start(mm: mmap.mmap, pos: int) -> int:
    return mm.rfind(b"\n", 0, pos) + 1


def _lines_forward(mm: mmap.mmap, start: int, count: int) -> Iterator[tuple[int, bytes]]:
    for _ in range(count):
        if start >= len(mm):
            return
        end = _line_end(mm, start)
        yield start, mm[start:end]
        start = end + 1


def _lines_backward(mm: mmap.mmap, start: int, count: int) -> Iterator[tuple[int, bytes]]:
    end = start - 1
    for _ in range(count):
        if end < 0:
            return
        begin = _line_start(mm, end)
        yield begin, mm[begin:end]
        end = begin - 1


def _interleave(
    a: Iterator[tuple[int, bytes]], b: Iterator[tuple[int, bytes]]
) -> Iterator[tuple[int, bytes]]:
    """Nearest lines first, alternating sides, until both sides are exhausted."""
    sides = [a, b]
    while sides:
        for side in list(sides):
            item = next(side, None)
            if item is None:
                sides.remove(side)
            else:
                yield item


def _strings(value: object) -> list[str]:
    return [v for v in values.as_list(value) if isinstance(v, str)]


def _verbatim(text: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for ch in text:
        if ch in _ESCAPABLE or not ch.isascii():
            pieces.append("".join(current))
            current = []
        else:
            current.append(ch)
    pieces.append("".join(current))
    return [p for p in pieces if p]
