"""Text event files read line by line through a format's decoder (plain or gzip), and the year syslog stamps lack."""

from __future__ import annotations

import abc
import gzip
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, cast

import msgspec

if TYPE_CHECKING:
    from reconwatch.ingest.report import IngestReport


class Decoder(Protocol):
    def feed(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]: ...

    def flush(self) -> list[tuple[int, dict[str, object]]]: ...


_JSON = msgspec.json.Decoder()


class JsonObjectLines(abc.ABC):
    """A decoder for logs of one JSON object a line: `events` turns each object into events; a
    line that is not a JSON object (one cut short, say), or one `events` rejects with a
    ValueError, is reported as file:line and skipped."""

    def __init__(self, path: Path, report: IngestReport) -> None:
        self.name = str(path)
        self.report = report

    @abc.abstractmethod
    def events(self, value: Mapping[str, object]) -> list[dict[str, object]]:
        """The events of one decoded line; a ValueError rejects the line."""

    def feed(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]:
        if not raw.strip():
            return []
        try:
            value = _JSON.decode(raw)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            return [(lineno, event) for event in self.events(value)]
        except msgspec.DecodeError as exc:
            self.report.add(f"not JSON: {str(exc)[:120]}", self.name, lineno)
        except ValueError as exc:
            self.report.add(str(exc), self.name, lineno)
        return []

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        return []


def open_text(path: Path) -> IO[bytes]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return cast("IO[bytes]", gzip.open(path, "rb"))
    return path.open("rb")


def read_lines(
    path: Path, report: IngestReport, decoder: Decoder
) -> Iterator[tuple[int, dict[str, object]]]:
    """Every line of the file through `decoder`; a file that cannot be read, or a compressed
    stream cut short, is reported (the lines before it are used)."""
    name = str(path)
    lineno = 0
    try:
        fh = open_text(path)
    except OSError as exc:
        report.add(f"cannot read file: {exc.strerror or exc}", name, None)
        return
    with fh:
        try:
            for raw in fh:
                lineno += 1
                yield from decoder.feed(raw.rstrip(b"\r\n"), lineno)
        except (OSError, EOFError, zlib.error) as exc:
            report.add(f"unreadable compressed data after this line: {exc}", name, lineno)
    yield from decoder.flush()


def syslog_year(path: Path, report: IngestReport) -> int:
    """The year of a file's syslog stamps (which carry none): the report's (an option), else the
    year of the file's modification time; the ingest report says which."""
    if report.year is not None:
        report.note(f"{path}: syslog time stamps carry no year: read as {report.year} (--year)")
        return report.year
    try:
        year = time.gmtime(path.stat().st_mtime).tm_year
    except OSError:
        year = time.gmtime().tm_year  # a pipe or a file gone: the edge's own clock
        report.note(f"{path}: syslog time stamps carry no year: read as {year} (this year)")
        return year
    report.note(
        f"{path}: syslog time stamps carry no year: read as {year}, the file's modification "
        "year (set it with --year)"
    )
    return year
