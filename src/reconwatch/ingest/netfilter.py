"""netfilter LOG lines (kernel log, syslog, journalctl -o json or -o export) as an event input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from reconwatch.ingest.lines import read_lines, syslog_year

if TYPE_CHECKING:
    from reconwatch.ingest.head import Head
    from reconwatch.ingest.report import IngestReport

FORMAT = "netfilter"
_DECODER = msgspec.json.Decoder()
_SNIFF_LINES = 20


def _message_line(line: bytes) -> bool:
    return b" SRC=" in line and b" DST=" in line and b"PROTO=" in line


def sniff(head: Head) -> bool:
    """Some of the first lines are LOG messages (in syslog, a kernel log or journald's JSON),
    or a journald export whose MESSAGE= fields are."""
    lines = head.lines()[:_SNIFF_LINES]
    if not lines:
        return False
    hits = sum(1 for x in lines if _message_line(x))
    if lines[0][:1] == b"{":
        return hits > 0 and b'"MESSAGE"' in lines[0]
    exported = [x for x in lines if x.startswith(b"MESSAGE=")]
    if exported and lines[0].startswith(b"__"):
        return any(_message_line(x) for x in exported)
    # A syslog file holds other programs' lines too: one LOG message among text lines will do.
    return hits > 0


class NetfilterLines:
    """LOG messages read line by line; a journald export's KEY=value blocks are gathered up to
    their blank line. Lines that are no LOG message are skipped silently (a syslog file holds
    other programs' lines); a LOG message cut short is reported as file:line."""

    def __init__(self, path: Path, report: IngestReport) -> None:
        self.path = path
        self.name = str(path)
        self.report = report
        self._year: int | None = None
        self.block: dict[str, str] = {}
        self.block_line = 0
        from reconwatch.ecs import netfilter, syslog  # the mappings, loaded when a file is read

        self._is_log_message = netfilter.is_log_message
        self._packet_event = netfilter.packet_event
        self._needs_year = syslog.needs_year
        self._parse = syslog.parse

    @property
    def year(self) -> int:
        if self._year is None:
            self._year = syslog_year(self.path, self.report)
        return self._year

    def feed(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]:
        text = raw.decode("utf-8", "replace")
        if text[:1] == "{":
            return self._journal_json(raw, lineno)
        if text.startswith("__") or (self.block and text):
            key, sep, value = text.partition("=")
            if sep:
                self.block.setdefault(key, value)
                self.block_line = self.block_line or lineno
                return []
        if not text.strip():
            return self.flush()
        if not self._is_log_message(text):
            return []
        parsed = self._parse(text, self.year if self._needs_year(text) else 0)
        if parsed.timestamp is None:
            self.report.add("a LOG message without a time stamp", self.name, lineno)
            return []
        return self._event(parsed.message, parsed.timestamp, parsed.host, lineno)

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        """The journald export entry pending (it ends at a blank line or the end of input)."""
        block, line = self.block, self.block_line
        self.block, self.block_line = {}, 0
        message = block.get("MESSAGE", "")
        if not self._is_log_message(message):
            return []
        stamp = block.get("__REALTIME_TIMESTAMP", "")
        if not stamp.isdigit():
            self.report.add("journal entry without __REALTIME_TIMESTAMP", self.name, line)
            return []
        return self._event(message, int(stamp) / 1e6, block.get("_HOSTNAME"), line)

    def _journal_json(self, raw: bytes, lineno: int) -> list[tuple[int, dict[str, object]]]:
        try:
            entry = _DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            self.report.add(f"not JSON: {str(exc)[:120]}", self.name, lineno)
            return []
        if not isinstance(entry, dict):
            return []
        message = entry.get("MESSAGE")
        if not isinstance(message, str) or not self._is_log_message(message):
            return []
        stamp = entry.get("__REALTIME_TIMESTAMP")
        if not isinstance(stamp, str) or not stamp.isdigit():
            self.report.add("journal entry without __REALTIME_TIMESTAMP", self.name, lineno)
            return []
        host = entry.get("_HOSTNAME")
        return self._event(
            message, int(stamp) / 1e6, host if isinstance(host, str) else None, lineno
        )

    def _event(
        self, message: str, timestamp: float, host: str | None, lineno: int
    ) -> list[tuple[int, dict[str, object]]]:
        try:
            return [(lineno, self._packet_event(message, timestamp, host))]
        except ValueError as exc:
            self.report.add(str(exc), self.name, lineno)
            return []


def read_netfilter(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    """(line, ECS event) for each LOG message of the file."""
    yield from read_lines(path, report, NetfilterLines(path, report))
