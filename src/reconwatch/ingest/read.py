"""Readers for ECS events: NDJSON (plain or gzip), JSON arrays and Parquet, with bad input collected."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec

from reconwatch.ingest.report import IngestReport
from reconwatch.plan.documents import JSON_ERRORS, check_depth

_DECODER = msgspec.json.Decoder()


def _open(path: Path) -> object:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return path.open("rb")


def read_ndjson(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    name = str(path)
    lineno = 0
    fh = _open(path)
    try:
        for raw in fh:  # type: ignore[attr-defined]
            lineno += 1
            line: bytes = raw.strip()
            if not line:
                continue
            try:
                check_depth(line)
                value = _decode_json(line)
            except JSON_ERRORS as exc:
                report.add(f"not JSON: {_reason(exc)}", name, lineno)
                continue
            yield lineno, value
    except (OSError, EOFError, zlib.error) as exc:
        # A truncated or corrupt gzip stream: every complete line before it was processed.
        report.add(f"unreadable compressed data after this line: {exc}", name, lineno)
    finally:
        fh.close()  # type: ignore[attr-defined]


def _decode_json(line: bytes) -> object:
    """One NDJSON line (or a whole JSON array); bytes that are not UTF-8 inside its strings are
    read with replacement characters, as a text reader would (and as the stream's general path
    does). msgspec reports them as a DecodeError ("Invalid UTF-8") or a UnicodeDecodeError."""
    try:
        return _DECODER.decode(line)
    except (UnicodeDecodeError, msgspec.DecodeError):
        text = line.decode("utf-8", "replace")
        if "\ufffd" not in text or text.encode() == line:
            raise  # valid UTF-8: the JSON itself is bad
        return _DECODER.decode(text)


def read_array(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    name = str(path)
    try:
        with _open(path) as fh:  # type: ignore[attr-defined]
            data: bytes = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        report.add(f"unreadable compressed data: {exc}", name, None)
        return
    try:
        value = _decode_json(data)
    except JSON_ERRORS as exc:
        report.add(f"not a JSON array: {_reason(exc)}", name, 1)
        return
    if not isinstance(value, list):
        report.add("not a JSON array of events", name, 1)
        return
    # Elements of a JSON array have no line of their own: report them as file:index (1-based).
    yield from enumerate(value, start=1)


def read_parquet(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    """Rows of a Parquet file as events, numbered from 1."""
    try:
        import pyarrow.parquet as pq

        table = pq.read_table(path)
    except OSError as exc:
        report.add(f"cannot read file: {exc.strerror or exc}", str(path), None)
        return
    except Exception as exc:  # pyarrow raises its own error types for corrupt files
        report.add(f"cannot read file: {exc}", str(path), None)
        return
    yield from enumerate(table.to_pylist(), start=1)


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text[:120]
