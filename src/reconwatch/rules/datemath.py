"""Kibana date math for rule windows ("now-61m", "now", "now-1d/d") and rule intervals ("1h")."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_INTERVAL_RE = re.compile(r"^(\d+)([smhd])$")
_OP_RE = re.compile(r"([+-])(\d+)([smhdw])|/([smhdw])")


class DateMathError(ValueError):
    """Text that is not a date-math expression reconwatch understands."""


@dataclass(frozen=True, slots=True)
class DateMath:
    """`now` followed by offsets and an optional rounding, resolved against a run's start time."""

    text: str
    offset: timedelta
    round_to: str | None

    def resolve(self, now: datetime) -> datetime:
        moment = now + self.offset
        if self.round_to is not None:
            moment = _round_down(moment, self.round_to)
        return moment


def parse_datemath(text: str) -> DateMath:
    """Parse a relative date-math string; DateMathError says why it is not one."""
    body = text.strip()
    if not body.startswith("now"):
        msg = f"expected date math starting with 'now' (like 'now-61m'), got {text!r}"
        raise DateMathError(msg)
    rest = body[3:]
    offset = timedelta()
    round_to: str | None = None
    pos = 0
    while pos < len(rest):
        m = _OP_RE.match(rest, pos)
        if m is None:
            msg = f"cannot read date math {text!r} at {rest[pos:]!r} (units: s m h d w)"
            raise DateMathError(msg)
        if m.group(4):
            round_to = m.group(4)
        else:
            if round_to is not None:
                msg = f"date math {text!r}: an offset after a rounding is not supported"
                raise DateMathError(msg)
            amount = int(m.group(2)) * _UNIT_SECONDS[m.group(3)]
            offset += timedelta(seconds=amount if m.group(1) == "+" else -amount)
        pos = m.end()
    return DateMath(text, offset, round_to)


def parse_interval(text: str) -> timedelta:
    """A rule `interval` such as 5m or 1h (detection-rules regex ^\\d+[mshd]$), strictly positive."""
    m = _INTERVAL_RE.match(text.strip())
    if m is None:
        msg = f"expected a number and a unit s, m, h or d (like '1h'), got {text!r}"
        raise DateMathError(msg)
    seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds <= 0:
        msg = f"interval must be positive, got {text!r}"
        raise DateMathError(msg)
    return timedelta(seconds=seconds)


def _round_down(moment: datetime, unit: str) -> datetime:
    if unit == "s":
        return moment.replace(microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    if unit == "h":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "w":
        return day - timedelta(days=day.weekday())
    return day
