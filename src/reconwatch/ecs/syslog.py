"""Syslog line prefixes (RFC 3164 "Mon dd hh:mm:ss host tag:", RFC 5424, ISO stamps) -> time, host, message."""

from __future__ import annotations

import calendar
import re
from datetime import datetime

from reconwatch.records import record

_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
# "Mar 11 20:35:11 host tag[pid]: message" (BSD syslog, no year)
_BSD = re.compile(
    r"^(?:<\d{1,3}>)?(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<h>\d\d):(?P<m>\d\d):(?P<s>\d\d)"
    r"(?:\.(?P<frac>\d{1,9}))? (?P<host>\S+) (?P<msg>.*)$"
)
# "2026-03-11T20:35:11.123+00:00 host tag: message" (RFC 5424-like, journald's short-iso)
_ISO = re.compile(
    r"^(?:<\d{1,3}>\d? ?)?(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?"
    r"(?:Z|[+-]\d\d:?\d\d))\s+(?P<host>\S+) (?P<msg>.*)$"
)
# dmesg -T: "[Tue Mar 11 20:35:11 2025] message"
_DMESG = re.compile(
    r"^\[[A-Z][a-z]{2} (?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<h>\d\d):(?P<m>\d\d):"
    r"(?P<s>\d\d) (?P<year>\d{4})\] (?P<msg>.*)$"
)


@record
class SyslogLine:
    timestamp: float | None  # None: no stamp at all (a bare kernel message)
    host: str | None
    message: str
    has_year: bool


def parse(line: str, year: int) -> SyslogLine:
    """The stamp, host and message of a syslog line; `year` for stamps that carry none.
    A line without a syslog prefix is all message (timestamp None)."""
    found = _BSD.match(line)
    if found is not None and found.group("mon") in _MONTHS:
        frac = found.group("frac") or ""
        stamp = calendar.timegm(
            (
                year,
                _MONTHS[found.group("mon")],
                int(found.group("day")),
                int(found.group("h")),
                int(found.group("m")),
                int(found.group("s")),
            )
        ) + (int(frac) / 10 ** len(frac) if frac else 0.0)
        return SyslogLine(stamp, found.group("host"), found.group("msg"), False)
    dmesg = _DMESG.match(line)
    if dmesg is not None and dmesg.group("mon") in _MONTHS:
        stamp = calendar.timegm(
            (
                int(dmesg.group("year")),
                _MONTHS[dmesg.group("mon")],
                int(dmesg.group("day")),
                int(dmesg.group("h")),
                int(dmesg.group("m")),
                int(dmesg.group("s")),
            )
        )
        return SyslogLine(float(stamp), None, dmesg.group("msg"), True)
    iso = _ISO.match(line)
    if iso is not None:
        try:
            when = datetime.fromisoformat(iso.group("stamp").replace("Z", "+00:00"))
        except ValueError:
            return SyslogLine(None, None, line, False)
        return SyslogLine(when.timestamp(), iso.group("host"), iso.group("msg"), True)
    return SyslogLine(None, None, line, False)


def needs_year(line: str) -> bool:
    """Whether the line's stamp is BSD syslog's, which carries no year."""
    found = _BSD.match(line)
    return found is not None and found.group("mon") in _MONTHS
