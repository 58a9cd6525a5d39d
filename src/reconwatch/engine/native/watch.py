"""A native detector rule in `watch`: events pushed as they arrive, alerts in the `detect` format the moment the evidence suffices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec

from reconwatch.backends.stream.decode import PlanDecoder
from reconwatch.backends.stream.window import StreamMetrics
from reconwatch.engine.native.contact import FIELDS, Contact, contact_of
from reconwatch.engine.native.detector import Detector, Finding, make_detector
from reconwatch.engine.native.run import native_alert
from reconwatch.engine.schedule import RunWindow, window_at
from reconwatch.plan.documents import JSON_ERRORS, Flat
from reconwatch.plan.values import datetime_from_millis
from reconwatch.rules.model import Rule

PATH_FIELD = "reconwatch.detection.path"


@dataclass(slots=True)
class _Clock:
    end_ms: int | None = None


@dataclass(slots=True)
class _Window:
    length_ms: int


@dataclass(slots=True)
class NativeState:
    """What `watch` reads of a rule's executor (metrics, clock, window) for a native detector."""

    detector: Detector
    window: _Window
    clock: _Clock = field(default_factory=_Clock)
    metrics: StreamMetrics = field(default_factory=StreamMetrics)
    fast: None = None

    def refresh_metrics(self) -> StreamMetrics:
        return self.metrics  # its groups and state are the detector's (groups, state_bytes)

    def state_bytes(self) -> int:
        return self.detector.state_bytes()


@dataclass(slots=True)
class NativeWatch:
    """One native rule over a stream: flattened events or NDJSON lines in, alert documents out."""

    rule: Rule
    executor: NativeState
    space: str = "default"
    _decoder: PlanDecoder = field(default_factory=lambda: PlanDecoder(FIELDS))

    @classmethod
    def create(
        cls, rule: Rule, *, space: str = "default", detector: Detector | None = None
    ) -> NativeWatch:
        """The rule's watch, with `detector` (restored from a saved state) or a fresh one."""
        detector = detector if detector is not None else make_detector(rule)
        run = window_at(rule, datetime(2000, 1, 1, tzinfo=UTC))
        length = int((run.end - run.start) / timedelta(milliseconds=1))
        return cls(rule, NativeState(detector, _Window(length)), space)

    def learn(self, contacts: Iterable[Contact]) -> int:
        """History (--history): contacts read only to learn, put in time order; returns how many."""
        ordered = sorted(contacts, key=lambda c: c.time_ms)
        for contact in ordered:
            self.executor.detector.push(contact, learn=True)
        return len(ordered)

    def push(self, event: Mapping[str, object]) -> list[dict[str, object]]:
        metrics = self.executor.metrics
        metrics.events += 1
        contact = contact_of(event)
        if contact is None:
            return []
        metrics.rows += 1
        clock = self.executor.clock
        clock.end_ms = max(clock.end_ms or contact.time_ms, contact.time_ms)
        found = self.executor.detector.push(contact)
        metrics.matches += len(found)
        return [self.alert(f) for f in found]

    def push_lines(
        self, lines: Sequence[bytes | str], errors: list[tuple[int, str]] | None = None
    ) -> list[dict[str, object]]:
        """NDJSON lines; a line that is not a JSON object goes to `errors` (index, reason).
        Only the fields the detectors read are decoded (a full decode and flatten of every
        event cost ten times the detectors' own work)."""
        out: list[dict[str, object]] = []
        decode = self._decoder.decode
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                flat = decode(line)
            except JSON_ERRORS as exc:
                retried = self._retry(line, exc, index, errors)
                if retried is None:
                    continue
                flat = retried
            out.extend(self.push(flat))
        return out

    def _retry(
        self,
        line: bytes | str,
        exc: Exception,
        index: int,
        errors: list[tuple[int, str]] | None,
    ) -> Flat | None:
        """A line that did not decode: bytes that are not UTF-8 read again as a text reader
        would (with replacement characters); otherwise, or if that fails too, an error."""
        if isinstance(line, bytes) and isinstance(exc, msgspec.DecodeError | UnicodeDecodeError):
            try:
                return self._decoder.decode(line.decode("utf-8", "replace"))
            except JSON_ERRORS as again:
                exc = again
        if errors is not None:
            errors.append((index, f"not a JSON object: {exc}"))
        return None

    def alert(self, finding: Finding) -> dict[str, object]:
        """The alert of a finding; its run is the rule's window ending at the decision."""
        end = datetime_from_millis(finding.time_ms)
        start = end - timedelta(milliseconds=self.executor.window.length_ms)
        alert = native_alert(
            self.rule, RunWindow(end, start, end, 0, "stream"), finding, self.space
        )
        alert[PATH_FIELD] = "native"
        return alert
