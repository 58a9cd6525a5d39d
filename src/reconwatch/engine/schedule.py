"""Kibana's run windows: one run at T covers [T + from, T + to]; manual runs step one interval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reconwatch.errors import UsageError
from reconwatch.rules.datemath import parse_datemath
from reconwatch.rules.model import Rule

# Kibana runs at most this many catch-up tuples for a gap (MAX_RULE_GAP_RATIO).
MAX_RULE_GAP_RATIO = 4


@dataclass(frozen=True, slots=True)
class RunWindow:
    """One rule execution: started at `run_at` (now() in the query), covering [start, end]."""

    run_at: datetime
    start: datetime
    end: datetime
    index: int = 0
    execution_type: str = "scheduled"

    @property
    def run_id(self) -> str:
        """Kibana's ruleRunId: tuple.from.toISOString() + tuple.to.toISOString()."""
        return _iso(self.start) + _iso(self.end)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def window_at(rule: Rule, run_at: datetime, *, index: int = 0, manual: bool = False) -> RunWindow:
    """The window of one run of `rule` started at `run_at` (tz-aware UTC)."""
    if run_at.tzinfo is None:
        msg = "run time must be timezone-aware"
        raise UsageError(msg)
    start = parse_datemath(rule.from_).resolve(run_at)
    end = parse_datemath(rule.to).resolve(run_at)
    if start >= end:
        msg = f"{rule.label}: rule window from {rule.from_!r} to {rule.to!r} is empty"
        raise UsageError(msg)
    kind = "manual" if manual else "scheduled"
    return RunWindow(run_at, start, end, index, kind)


def runs_between(rule: Rule, first: datetime, last: datetime) -> list[RunWindow]:
    """Every run of a manual run / gap fill over [first, last]: at first + k*interval (k >= 1)
    up to last, as Kibana's backfill schedules them; a range shorter than one interval gets
    one run at `last`."""
    if last <= first:
        msg = f"--to ({_iso(last)}) must be after --from ({_iso(first)})"
        raise UsageError(msg)
    times: list[datetime] = []
    moment = first + rule.interval
    while moment <= last:
        times.append(moment)
        moment += rule.interval
    if not times:
        times.append(last)
    return [window_at(rule, t, index=i, manual=True) for i, t in enumerate(times)]
