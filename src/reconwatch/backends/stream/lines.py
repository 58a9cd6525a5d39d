"""NDJSON lines as offsets into one read buffer, so the compiled scan reads them in place."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload


def _compiled() -> Any:
    """The compiled scan module (_scan.c), None where the install could not build it (no C
    compiler): the stream then runs its Python twin, only slower."""
    try:
        from reconwatch.backends.stream import _scan
    except ImportError:
        return None
    return _scan


COMPILED = _compiled()
_line_starts = None if COMPILED is None else COMPILED.line_starts


class BufferLines(Sequence[bytes]):
    """Lines `lo` to `hi` of a buffer, each without its newline. Splitting a 16 MiB read into a
    bytes object per line copies every byte and costs about 1 us per 1.5 KB line; the compiled
    scan reads the lines where they are, and only a line it declines is copied out."""

    __slots__ = ("buf", "hi", "lo", "offsets", "starts")

    def __init__(self, buf: bytes | bytearray, starts: bytes, lo: int, hi: int) -> None:
        self.buf = buf
        self.starts = starts  # native int64 start offsets, then the end of the last line + 1
        self.offsets = memoryview(starts).cast("q")
        self.lo = lo
        self.hi = hi

    def __len__(self) -> int:
        return self.hi - self.lo

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> BufferLines: ...
    def __getitem__(self, index: int | slice) -> bytes | BufferLines:
        n = self.hi - self.lo
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                raise ValueError("BufferLines slices are contiguous")
            return BufferLines(self.buf, self.starts, self.lo + start, self.lo + max(start, stop))
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("line index out of range")
        k = self.lo + index
        return bytes(self.buf[self.offsets[k] : self.offsets[k + 1] - 1])


def split_lines(data: bytes | bytearray, end: int) -> Sequence[bytes]:
    """The lines of data[:end] (which ends with a newline, or is empty), without newlines: in
    place where the compiled scan is built (valid while `data` is unchanged), as a list of
    bytes otherwise."""
    if _line_starts is None:
        return bytes(data[:end]).split(b"\n")[:-1]
    starts = _line_starts(data, end)
    return BufferLines(data, starts, 0, len(starts) // 8 - 1)
