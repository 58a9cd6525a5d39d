"""osquery results logs (osqueryd.results.log) as an event input: socket_events connect and accept rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from reconwatch.ingest.lines import JsonObjectLines, read_lines

if TYPE_CHECKING:
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport

FORMAT = "osquery"


def sniff(head: Head) -> bool:
    first = head.first_line()
    return (
        first[:1] == b"{"
        and b'"hostIdentifier"' in first
        and (b'"columns"' in first or b'"snapshot"' in first)
    )


class OsqueryLines(JsonObjectLines):
    """Results-log lines: socket_events rows become events; other queries' results are
    skipped; a line cut short is reported as file:line."""

    def events(self, value: Mapping[str, object]) -> list[dict[str, object]]:
        if "socket_events" not in str(value.get("name", "")):
            return []
        from reconwatch.ecs.osquery import result_events  # its mapping, loaded on use

        return result_events(value)


def read_osquery(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    yield from read_lines(path, report, OsqueryLines(path, report))
