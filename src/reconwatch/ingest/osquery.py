"""osquery results logs (osqueryd.results.log) as an event input: socket_events connect and accept rows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from reconwatch.ecs.osquery import result_events
from reconwatch.ingest.lines import read_lines

if TYPE_CHECKING:
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport

FORMAT = "osquery"
_DECODER = msgspec.json.Decoder()


def sniff(head: Head) -> bool:
    first = head.first_line()
    return (
        first[:1] == b"{"
        and b'"hostIdentifier"' in first
        and (b'"columns"' in first or b'"snapshot"' in first)
    )


class OsqueryLines:
    """Results-log lines: socket_events rows become events; other queries' results are
    skipped; a line cut short is reported as file:line."""

    def __init__(self, path: Path, report: IngestReport) -> None:
        self.name = str(path)
        self.report = report

    def feed(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]:
        if not raw.strip():
            return []
        try:
            value = _DECODER.decode(raw)
            if not isinstance(value, dict):
                raise ValueError("not a JSON object")
            if "socket_events" not in str(value.get("name", "")):
                return []
            return [(lineno, event) for event in result_events(value)]
        except msgspec.DecodeError as exc:
            self.report.add(f"not JSON: {str(exc)[:120]}", self.name, lineno)
        except ValueError as exc:
            self.report.add(str(exc), self.name, lineno)
        return []

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        return []


def read_osquery(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    yield from read_lines(path, report, OsqueryLines(path, report))
