"""Sysmon for Linux's syslog lines (its events as XML) as an event input: network connections (Event ID 3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from reconwatch.ingest.lines import read_lines, syslog_year

if TYPE_CHECKING:
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport

FORMAT = "sysmon"


def sniff(head: Head) -> bool:
    return any(b"<Event" in x and b"Linux-Sysmon" in x for x in head.lines()[:20])


class SysmonLines:
    """Sysmon's syslog lines: each line's XML event; the lines of other programs are skipped,
    an event cut short is reported as file:line."""

    def __init__(self, path: Path, report: IngestReport) -> None:
        self.path = path
        self.name = str(path)
        self.report = report
        self._year: int | None = None
        from reconwatch.ecs import syslog, sysmon  # the mappings, loaded when a file is read

        self._needs_year = syslog.needs_year
        self._parse = syslog.parse
        self._connect_event = sysmon.connect_event

    def feed(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]:
        text = raw.decode("utf-8", "replace")
        start = text.find("<Event")
        if start < 0 or "Linux-Sysmon" not in text:
            return []
        stamp = None
        if start > 0 and 'Name="UtcTime"' not in text:  # the event's own time wins
            prefix = text[:start]
            if self._needs_year(prefix):
                if self._year is None:
                    self._year = syslog_year(self.path, self.report)
                stamp = self._parse(prefix, self._year).timestamp
            else:
                stamp = self._parse(prefix, 0).timestamp
        try:
            event = self._connect_event(text[start:], stamp)
        except ValueError as exc:
            self.report.add(str(exc), self.name, lineno)
            return []
        return [] if event is None else [(lineno, event)]

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        return []


def read_sysmon(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    yield from read_lines(path, report, SysmonLines(path, report))
