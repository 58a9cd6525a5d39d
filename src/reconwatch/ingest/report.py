"""What reading input met: the good events counted and every bad event or unreadable file, with its location."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reconwatch.errors import IngestError


class IngestReport:
    """Bad input met while reading: one IngestError per skipped event or unreadable file, and the
    number of good events (files read by DuckDB are counted only when someone asks).

    `year`: the year of syslog time stamps that carry none (iptables, Sysmon); None: each
    file's modification time decides. `notes`: what the readers assumed (such a year), one
    line each, said once with the report."""

    def __init__(self, year: int | None = None) -> None:
        self.errors: list[IngestError] = []
        self.year = year
        self.notes: list[str] = []
        self._events = 0
        self._deferred: dict[int, Callable[[], int]] = {}

    @property
    def events(self) -> int:
        for key in list(self._deferred):
            self._events += self._deferred.pop(key)()
        return self._events

    @events.setter
    def events(self, value: int) -> None:
        self._events = value

    def defer(self, key: int, count: Callable[[], int]) -> None:
        """Count input `key` later with `count` (once), unless `settle` counts it first."""
        self._deferred.setdefault(key, count)

    def settle(
        self, key: int, events: int, errors: list[IngestError], notes: Sequence[str] = ()
    ) -> None:
        """Input `key` was read through: add its good events, its errors and notes."""
        self._deferred.pop(key, None)
        self._events += events
        self.errors.extend(errors)
        for line in notes:
            self.note(line)

    def note(self, line: str) -> None:
        if line not in self.notes:
            self.notes.append(line)

    def add(self, reason: str, path: str, line: int | None) -> None:
        self.errors.append(IngestError(reason, path, line))

    @property
    def skipped(self) -> int:
        return len(self.errors)

    def lines(self, cap: int | None = None) -> list[str]:
        shown = self.errors if cap is None else self.errors[:cap]
        return [e.one_line() for e in shown]
