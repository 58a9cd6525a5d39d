"""Suricata EVE JSON logs (eve.json) as an event input: flow events, alerts as context."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from reconwatch.ingest.lines import JsonObjectLines, read_lines

if TYPE_CHECKING:
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport

FORMAT = "suricata"


def sniff(head: Head) -> bool:
    first = head.first_line()
    return first[:1] == b"{" and b'"event_type"' in first and b'"src_ip"' in first


class EveLines(JsonObjectLines):
    """eve.json read line by line: flow and alert records become events, the other event
    types (dns, http, stats, ...) are skipped; a line cut short is reported as file:line."""

    def events(self, value: Mapping[str, object]) -> list[dict[str, object]]:
        from reconwatch.ecs.suricata import eve_event  # its mapping, loaded on use

        event = eve_event(value)
        return [] if event is None else [event]


def read_eve(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    yield from read_lines(path, report, EveLines(path, report))
