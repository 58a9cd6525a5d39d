"""Suricata EVE JSON logs (eve.json) as an event input: flow events, alerts as context."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from reconwatch.ecs.suricata import eve_event
from reconwatch.ingest.lines import read_lines

if TYPE_CHECKING:
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport

FORMAT = "suricata"
_DECODER = msgspec.json.Decoder()


def sniff(head: Head) -> bool:
    first = head.first_line()
    return first[:1] == b"{" and b'"event_type"' in first and b'"src_ip"' in first


class EveLines:
    """eve.json read line by line: flow and alert records become events, the other event
    types (dns, http, stats, ...) are skipped; a line cut short is reported as file:line."""

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
            event = eve_event(value)
        except msgspec.DecodeError as exc:
            self.report.add(f"not JSON: {str(exc)[:120]}", self.name, lineno)
            return []
        except ValueError as exc:
            self.report.add(str(exc), self.name, lineno)
            return []
        return [] if event is None else [(lineno, event)]

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        return []


def read_eve(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    yield from read_lines(path, report, EveLines(path, report))
