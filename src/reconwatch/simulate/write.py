"""Write events as NDJSON, gzip-compressed (reproducibly: no timestamp in the header) for .gz."""

from __future__ import annotations

import gzip
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import msgspec


def write_events(events: Iterable[dict[str, object]], path: str | Path) -> int:
    """Write one JSON object per line; returns the number written."""
    encoder = msgspec.json.Encoder()
    count = 0
    with open(path, "wb") as raw:
        fh: IO[bytes] | gzip.GzipFile = raw
        if str(path).endswith(".gz"):
            fh = gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0)
        for event in events:
            fh.write(encoder.encode(event))
            fh.write(b"\n")
            count += 1
        if fh is not raw:
            fh.close()
    return count
