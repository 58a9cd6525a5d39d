"""The start of an event file as format sniffers see it: its first bytes, decompressed if gzip."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from reconwatch.records import record

# Bytes a sniffer sees: enough for several long NDJSON lines (Defend events are ~1.5 KB).
HEAD_BYTES = 64 << 10
GZIP_MAGIC = b"\x1f\x8b"


@record
class Head:
    """The start of a file as sniffers see it: stored bytes, and the decompressed start of a
    gzip file (`data` is `raw` for a plain one). `broken`: the gzip stream could not be read."""

    raw: bytes
    data: bytes
    compressed: bool = False
    broken: bool = False

    def lines(self) -> list[bytes]:
        """The non-blank lines of `data`, stripped (the last one may be cut short)."""
        return [s for line in self.data.splitlines() if (s := line.strip())]

    def first_line(self) -> bytes:
        found = self.lines()
        return found[0] if found else b""


def read_head(path: Path) -> Head:
    """The first HEAD_BYTES of a file (decompressed if gzip). OSError if it cannot be opened."""
    with path.open("rb") as fh:
        raw = fh.read(HEAD_BYTES)
    if not raw.startswith(GZIP_MAGIC):
        return Head(raw, raw)
    try:
        with gzip.open(path, "rb") as gz:
            data = gz.read(HEAD_BYTES)
    except (OSError, EOFError, zlib.error):
        # A truncated stream still gives its first bytes through a decompressor that stops.
        data = zlib.decompressobj(wbits=31).decompress(raw, HEAD_BYTES)
        return Head(raw, data, compressed=True, broken=True)
    return Head(raw, data, compressed=True)
