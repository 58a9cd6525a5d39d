"""Native detector rules in the service: one detector per rule, handed each stored event once in arrival order (on schedule and in real time), its learned state kept in the store."""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

import msgspec

from reconwatch.engine.exceptions_esql import matching
from reconwatch.engine.native.contact import ATTEMPT, RESULT, contact_of
from reconwatch.engine.native.detector import Detector, Finding, make_detector
from reconwatch.engine.native.run import native_alert
from reconwatch.engine.native.state import StateError, dump_detector, load_detector
from reconwatch.engine.native.watch import PATH_FIELD
from reconwatch.engine.schedule import RunWindow, window_at
from reconwatch.plan.documents import flatten
from reconwatch.plan.values import datetime_from_millis, datetime_to_millis
from reconwatch.rules.exceptions import ExceptionList
from reconwatch.rules.model import Rule
from reconwatch.store import Store
from reconwatch.store.db import index_matches

# What the detectors read (engine.native.run.SOURCE): Elastic Defend's network events.
PATTERNS = ("logs-endpoint.events.network-*",)
# A text without one of these (event.action's values) is no contact: it is never decoded.
ACTIONS = (ATTEMPT, RESULT)
_ACTION_BYTES = tuple(a.encode() for a in ACTIONS)
# How often (the store's clock) the real-time path saves a detector's state; a scheduled run
# and a stop always save it.
SAVE_EVERY = timedelta(minutes=1)
# Texts decoded and judged at once when catching up on the store.
CHUNK = 5000

Lists = Callable[[Rule], Sequence[ExceptionList]]


class NativeRule:
    """One native rule's detector over the store. Every event reaches it at most once, by its
    arrival number (`seq`): `seen` is the last one it was handed (None: a fresh detector that was
    never handed any). Callers hold `lock` from handing events in to storing the alerts and
    saving the state, so a saved state never covers a finding whose alert is not stored."""

    def __init__(self, store: Store, rule: Rule, lists: Lists, space: str = "default") -> None:
        self.store = store
        self.rule = rule
        self.space = space
        self.lists = lists
        self.lock = threading.Lock()
        self.errors: list[str] = []
        run = window_at(rule, datetime(2000, 1, 1, tzinfo=UTC))
        self.window = run.end - run.start
        self._decode = msgspec.json.Decoder(dict[str, object]).decode
        self._saved_at: datetime | None = None
        self.detector, self.seen = self._restore()

    def _restore(self) -> tuple[Detector, int | None]:
        saved = self.store.detector_state(self.rule.rule_id)
        if saved is not None:
            blob, seq = saved
            try:
                return load_detector(self.rule, blob), seq
            except StateError as exc:
                self.errors.append(
                    f"{self.rule.label}: saved detector state not used, starting fresh: "
                    f"{exc.one_line()}"
                )
        return make_detector(self.rule), None

    def catch_up(self, live_from: datetime | None) -> list[Finding]:
        """Hand the detector every stored event it has not seen, in arrival order; a fresh
        detector only learns from the events with @timestamp before `live_from` (the store's
        history, as `detect` learns from the events before its first window)."""
        upto = self.store.last_seq()
        after = -1 if self.seen is None else self.seen
        learn_before = None
        if self.seen is None and live_from is not None:
            learn_before = datetime_to_millis(live_from)
        indices = self.store.matching_indices(PATTERNS)
        found: list[Finding] = []
        chunk: list[bytes] = []
        for _, text in self.store.texts_after(indices, after, upto, ACTIONS):
            chunk.append(text)
            if len(chunk) >= CHUNK:
                found.extend(self._push(chunk, learn_before))
                chunk = []
        found.extend(self._push(chunk, learn_before))
        self.seen = max(after, upto)
        return found

    def push_batch(self, rows: Sequence[tuple[str, bytes, int]]) -> list[Finding]:
        """A committed batch, (index, JSON text, seq): the events the detector has not seen."""
        if not rows:
            return []
        after = -1 if self.seen is None else self.seen
        texts = [
            text for index, text, seq in rows if seq > after and index_matches(PATTERNS, index)
        ]
        found = self._push(texts, None)
        self.seen = max(after, max(seq for _, _, seq in rows))
        return found

    def _push(self, texts: Iterable[bytes], learn_before: int | None) -> list[Finding]:
        sources: list[dict[str, object]] = []
        for text in texts:
            if not any(action in text for action in _ACTION_BYTES):
                continue
            try:
                sources.append(self._decode(text))
            except msgspec.DecodeError:
                continue  # stored events are JSON objects; nothing else is a contact
        if not sources:
            return []
        items = [item for lst in self.lists(self.rule) for item in lst.items]
        if items:
            hits = matching(items, sources)
            sources = [s for s, hit in zip(sources, hits, strict=True) if not hit]
        found: list[Finding] = []
        for source in sources:
            contact = contact_of(flatten(source))
            if contact is None:
                continue
            learn = learn_before is not None and contact.time_ms < learn_before
            found.extend(self.detector.push(contact, learn=learn))
        return found

    def stream_alert(self, finding: Finding) -> dict[str, object]:
        """A real-time finding's alert, as `watch` writes it: its run is the rule's window
        ending at the decision."""
        end = datetime_from_millis(finding.time_ms)
        window = RunWindow(end, end - self.window, end, 0, "stream")
        alert = native_alert(self.rule, window, finding, self.space)
        alert[PATH_FIELD] = "native"
        return alert

    def save(self, *, force: bool = False) -> None:
        """Keep the detector's state and `seen` in the store (due: SAVE_EVERY since the last)."""
        now = self.store.clock()
        if self.seen is None:
            return
        if not force and self._saved_at is not None and now < self._saved_at + SAVE_EVERY:
            return
        self.store.save_detector_state(
            self.rule.rule_id, dump_detector(self.rule, self.detector), self.seen
        )
        self._saved_at = now


def group_of(finding: Finding) -> tuple[str, datetime]:
    """A finding's group key (JSON) and decision time, as real-time alerts are stored."""
    key = msgspec.json.encode(list(finding.key)).decode("utf-8")
    return key, datetime_from_millis(finding.time_ms)


def by_window(findings: Sequence[Finding], windows: Sequence[RunWindow]) -> list[list[Finding]]:
    """Each finding in the first window ending at or after it (the run that would have seen
    it), the last window for one decided later."""
    ends = [datetime_to_millis(w.end) for w in windows]
    out: list[list[Finding]] = [[] for _ in windows]
    for finding in findings:
        out[min(bisect.bisect_left(ends, finding.time_ms), len(windows) - 1)].append(finding)
    return out


class NativeRules:
    """The service's native rules by rule_id, shared by the schedule and the real-time thread
    (one detector per rule whichever path hands it events)."""

    def __init__(self, store: Store, lists: Lists, space: str = "default") -> None:
        self.store = store
        self.lists = lists
        self.space = space
        self._rules: dict[str, NativeRule] = {}
        self._lock = threading.Lock()

    def get(self, rule: Rule) -> NativeRule:
        """The rule's detector; an edited rule's starts again from the saved state (a fresh one
        when its parameters changed)."""
        with self._lock:
            native = self._rules.get(rule.rule_id)
            if native is not None and native.rule == rule:
                return native
            if native is not None:
                with native.lock:
                    native.save(force=True)
            native = NativeRule(self.store, rule, self.lists, self.space)
            self._rules[rule.rule_id] = native
            return native

    def errors(self) -> list[str]:
        with self._lock:
            return [e for native in self._rules.values() for e in native.errors]

    def save_all(self) -> None:
        with self._lock:
            natives = list(self._rules.values())
        for native in natives:
            with native.lock:
                native.save(force=True)
