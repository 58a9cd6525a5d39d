"""Rules on Kibana's schedule over the store: every interval, gaps caught up, manual runs."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reconwatch.engine.detect import suppress_run
from reconwatch.engine.native.run import native_alert, run_native
from reconwatch.engine.run import RuleExecutor
from reconwatch.engine.schedule import MAX_RULE_GAP_RATIO, RunWindow, runs_between, window_at
from reconwatch.engine.suppression import Suppressor
from reconwatch.errors import ReconwatchError, UsageError
from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.plan import limits
from reconwatch.plan.values import format_datetime
from reconwatch.rules.exceptions import ExceptionList
from reconwatch.rules.model import Rule
from reconwatch.service.native import PATTERNS as NATIVE_PATTERNS
from reconwatch.service.native import NativeRules, by_window
from reconwatch.service.storequery import StoreBackend
from reconwatch.store import Store
from reconwatch.store.alerts import RunRecord, group_key
from reconwatch.store.window import window_dataset

Clock = Callable[[], datetime]
# Told of every run and how long it took (seconds, measured, not the injected clock).
OnRun = Callable[["RunOutcome", float], None]
LAST_DETECTED = "kibana.alert.last_detected"
UPDATED_BY = "reconwatch.detection.updated_by"


@dataclass(slots=True)
class RuleState:
    """One rule's schedule: when it runs next and its alert suppression across runs."""

    rule: Rule
    patterns: tuple[str, ...]
    next_at: datetime
    last_started: datetime | None
    suppressor: Suppressor | None
    # Off: no scheduled run (a manual run still runs); switched on again, it starts afresh.
    enabled: bool = True


@dataclass(slots=True)
class RunOutcome:
    """What one run did: its record in the history and the alerts it stored first."""

    record: RunRecord
    created: list[dict[str, object]] = field(default_factory=list)
    # Real-time alerts this run found again and updated in place (their ids).
    updated: list[str] = field(default_factory=list)


def gap_message(gap: timedelta) -> str:
    """Kibana's status message for the part of a gap no catch-up run covered."""
    ms = int(gap.total_seconds() * 1000)
    return (
        f"{_duration(gap)} ({ms}ms) were not queried between this rule execution and the last "
        "execution, so signals may have been missed. Consider increasing your look behind time "
        "or adding more Kibana instances"
    )


def _duration(gap: timedelta) -> str:
    seconds = int(gap.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts) or "0s"


def catch_up(
    rule: Rule, started: datetime, previous: datetime | None
) -> tuple[list[RunWindow], timedelta]:
    """The windows of a scheduled run started at `started` (the catch-up ones first, oldest
    first, at most MAX_RULE_GAP_RATIO) and the gap left uncovered. gap = (started - previous)
    - (to - from), as Kibana computes it."""
    current = window_at(rule, started)
    if previous is None:
        return [current], timedelta(0)
    gap = (started - previous) - (current.end - current.start)
    if gap <= timedelta(0):
        return [current], timedelta(0)
    count = min(math.ceil(gap / rule.interval), MAX_RULE_GAP_RATIO)
    windows = [
        RunWindow(
            started - k * rule.interval,
            current.start - k * rule.interval,
            current.end - k * rule.interval,
            k,
        )
        for k in range(count, 0, -1)
    ]
    return [*windows, current], max(gap - count * rule.interval, timedelta(0))


def named_lists(rule: Rule) -> list[str]:
    """The list_ids of the rule file's own `exceptions_list` (Kibana's rule field)."""
    refs = rule.raw.get("exceptions_list")
    if not isinstance(refs, list):
        return []
    return [str(r["list_id"]) for r in refs if isinstance(r, dict) and r.get("list_id")]


def source_patterns(rule: Rule) -> tuple[str, ...]:
    """The index patterns of the rule's FROM (a native rule's: the network events it reads)."""
    if rule.native:
        return NATIVE_PATTERNS
    first = parse(rule.query).commands[0]
    return tuple(first.sources) if isinstance(first, ast.From) else ()


class Scheduler:
    """Runs every rule every `interval` on the store's events; `tick` runs the rules that are
    due at the clock's now, so a test steps the clock through days of schedule."""

    def __init__(
        self,
        store: Store,
        rules: Sequence[Rule],
        clock: Clock,
        *,
        exceptions: Sequence[ExceptionList] = (),
        space: str = "default",
        evidence: bool = True,
        on_run: OnRun | None = None,
        natives: NativeRules | None = None,
        query_limits: limits.QueryLimits | None = None,
    ) -> None:
        self.store = store
        # Each run's queries: DuckDB's memory and a time budget (serve --memory-limit/--timeout).
        self.query_limits = query_limits or limits.QueryLimits(seconds=limits.RULE_RUN_SECONDS)
        # Native detector rules' detectors (shared with the real-time rules when given).
        self.natives = natives or NativeRules(store, self.native_lists, space)
        self.on_run = on_run
        self.clock = clock
        self.exceptions = tuple(exceptions)
        self.space = space
        self.evidence = evidence
        # (BY columns, output columns) of a rule that runs in real time too (service.realtime).
        self.realtime_groups: (
            Callable[[str], tuple[tuple[str, ...], tuple[str, ...]] | None] | None
        ) = None
        now = clock()
        # Scheduled and manual runs of a rule share its suppression state: one run at a time.
        self._lock = threading.Lock()
        self.states: dict[str, RuleState] = {}
        stored = store.rule_settings()
        for rule in rules:
            previous = store.last_run(rule.rule_id)
            # A restarted service runs a rule when its next run is due: at once when that time
            # passed while it was down (the gap is caught up), else then (a restart soon after
            # a run must not run the rule again: a new window would repeat its alerts).
            next_at = now if previous is None else max(now, previous + rule.interval)
            self.states[rule.rule_id] = RuleState(
                rule, source_patterns(rule), next_at, previous, Suppressor.for_rule(rule, space)
            )
            setting = stored.get(rule.rule_id)
            if setting is not None and setting.enabled is False:
                self.states[rule.rule_id].enabled = False

    def native_lists(self, rule: Rule) -> list[ExceptionList]:
        """The exception lists a native rule applies to the events it is handed: those the
        service was started with and those linked to it in the store (read again after a
        change, or a minute of the clock for items that expire)."""
        return [
            *self.exceptions,
            *self.store.cached_exceptions(rule.rule_id, named_lists(rule)),
        ]

    @property
    def rules(self) -> Mapping[str, Rule]:
        return {k: s.rule for k, s in self.states.items()}

    def next_due(self) -> datetime | None:
        return min((s.next_at for s in self.states.values() if s.enabled), default=None)

    def replace_rules(self, rules: Sequence[Rule]) -> tuple[list[str], list[str]]:
        """The rules from a reloaded directory: a new rule is scheduled as at start, a changed
        one keeps its schedule (and its suppression state when that did not change), a rule no
        longer there stops. (rule_ids added or changed, rule_ids removed)."""
        with self._lock:
            now = self.clock()
            fresh = {r.rule_id: r for r in rules}
            removed = [rule_id for rule_id in self.states if rule_id not in fresh]
            for rule_id in removed:
                del self.states[rule_id]
            touched: list[str] = []
            for rule_id, rule in fresh.items():
                state = self.states.get(rule_id)
                if state is not None and state.rule == rule:
                    continue
                touched.append(rule_id)
                if state is None:
                    previous = self.store.last_run(rule_id)
                    next_at = now if previous is None else max(now, previous + rule.interval)
                    suppressor = Suppressor.for_rule(rule, self.space)
                    self.states[rule_id] = RuleState(
                        rule, source_patterns(rule), next_at, previous, suppressor
                    )
                    continue
                if state.rule.suppression != rule.suppression:
                    state.suppressor = Suppressor.for_rule(rule, self.space)
                state.rule = rule
                state.patterns = source_patterns(rule)
            return touched, removed

    def set_enabled(self, rule_id: str, enabled: bool) -> None:
        """Switch a rule's scheduled runs off or on (stored). Kibana starts a re-enabled rule
        afresh: it runs at once and the time it was off is not a gap to catch up."""
        with self._lock:
            state = self.states[rule_id]
            self.store.set_rule(rule_id, enabled=enabled)
            if enabled and not state.enabled:
                state.last_started = None
                state.next_at = self.clock()
            state.enabled = enabled

    def tick(self) -> list[RunOutcome]:
        """Run every rule due now: one scheduled run each, with its catch-up windows."""
        with self._lock:
            return self._tick()

    def _tick(self) -> list[RunOutcome]:
        now = self.clock()
        outcomes: list[RunOutcome] = []
        for state in self.states.values():
            if not state.enabled or state.next_at > now:
                continue
            windows, gap = catch_up(state.rule, now, state.last_started)
            if state.rule.native:
                outcomes.extend(self._run_native(state, windows))
                windows = []
            for window in windows:
                outcomes.append(
                    self._run(state, window, gap if window is windows[-1] else timedelta(0))
                )
            state.last_started = now
            state.next_at = now + state.rule.interval
        return outcomes

    def run_manual(self, rule_id: str, start: datetime, end: datetime) -> list[RunOutcome]:
        """A manual run (gap fill) over [start, end]: Kibana's backfill windows, each stored."""
        state = self.states.get(rule_id)
        if state is None:
            msg = f"no rule with rule_id [{rule_id}]"
            raise UsageError(msg)
        windows = runs_between(state.rule, start, end)
        with self._lock:
            if state.rule.native:
                return self._manual_native(state, windows) if windows else []
            return [self._run(state, w, timedelta(0)) for w in windows]

    def _run_native(self, state: RuleState, windows: Sequence[RunWindow]) -> list[RunOutcome]:
        """A native rule's scheduled run: its detector is handed every event stored since it
        last saw one (a fresh detector learns from those before the first window), each finding
        an alert of the window that would have seen it; the state is saved with the alerts. No
        gap: the events it reads are those it has not seen, whenever they came."""
        started = time.perf_counter()
        native = self.natives.get(state.rule)
        outcomes: list[RunOutcome] = []
        with native.lock:
            try:
                findings = native.catch_up(windows[0].start)
            except ReconwatchError as exc:
                return [self._failed(state.rule, windows[-1], [], exc)]
            for window, found in zip(windows, by_window(findings, windows), strict=True):
                alerts = [native_alert(state.rule, window, f, self.space) for f in found]
                outcomes.append(self._store_run(state, window, alerts, [], 0))
            native.save(force=True)
        self._observe(outcomes, time.perf_counter() - started)
        return outcomes

    def _manual_native(self, state: RuleState, windows: Sequence[RunWindow]) -> list[RunOutcome]:
        """A manual run of a native rule, as `detect` runs it: a detector of its own (the live
        one is not touched) over the stored events up to the range's end, those before its
        first window only learned from."""
        started = time.perf_counter()
        rule = state.rule
        try:
            dataset = window_dataset(self.store, state.patterns, None, windows[-1].end, None)
            runs = run_native(
                rule,
                windows,
                StoreBackend(self.store, dataset),
                space=self.space,
                exceptions=self.native_lists(rule),
            )
        except ReconwatchError as exc:
            outcomes = [self._failed(rule, windows[-1], [], exc)]
        else:
            outcomes = [self._store_run(state, r.window, r.alerts, [], 0) for r in runs]
        self._observe(outcomes, time.perf_counter() - started)
        return outcomes

    def _store_run(
        self,
        state: RuleState,
        window: RunWindow,
        alerts: list[dict[str, object]],
        warnings: list[str],
        gap_ms: int,
    ) -> RunOutcome:
        """A native run's alerts (through the rule's suppression) and its record, stored."""
        if state.suppressor is not None:
            alerts = state.suppressor.apply(window, alerts).created
        record = RunRecord(
            state.rule.rule_id,
            window.run_at,
            window.start,
            window.end,
            window.execution_type,
            len(alerts),
            gap_ms,
            None,
            tuple(warnings),
        )
        fresh = set(self.store.add_run(record, alerts))
        return RunOutcome(record, [a for a in alerts if a.get("kibana.alert.uuid") in fresh])

    def _failed(
        self,
        rule: Rule,
        window: RunWindow,
        warnings: list[str],
        exc: ReconwatchError,
        gap: timedelta = timedelta(0),
    ) -> RunOutcome:
        """A run that failed with `exc`: recorded with its one line, no alerts."""
        record = RunRecord(
            rule.rule_id,
            window.run_at,
            window.start,
            window.end,
            window.execution_type,
            0,
            _ms(gap),
            exc.one_line(),
            tuple(warnings),
        )
        self.store.add_run(record, [])
        return RunOutcome(record)

    def _observe(self, outcomes: Sequence[RunOutcome], seconds: float) -> None:
        """Durations of runs made together (a native rule's windows): shared evenly."""
        for outcome in outcomes:
            share = seconds / len(outcomes)
            self.store.set_run_duration(outcome.record, share)
            if self.on_run is not None:
                self.on_run(outcome, share)

    def _run(self, state: RuleState, window: RunWindow, gap: timedelta) -> RunOutcome:
        started = time.perf_counter()
        with limits.limited(self.query_limits):
            outcome = self._execute(state, window, gap)
        seconds = time.perf_counter() - started
        self.store.set_run_duration(outcome.record, seconds)
        if self.on_run is not None:
            self.on_run(outcome, seconds)
        return outcome

    def _execute(self, state: RuleState, window: RunWindow, gap: timedelta) -> RunOutcome:
        rule = state.rule
        warnings: list[str] = [gap_message(gap)] if gap > timedelta(0) else []
        try:
            dataset = window_dataset(
                self.store, state.patterns, window.start, window.end, rule.timestamp_override
            )
            backend = StoreBackend(self.store, dataset)
            # The lists linked to the rule in the store, as they are at this run (Kibana reads
            # them at every execution), after those the service was started with.
            lists = (*self.exceptions, *self.store.exceptions_for(rule.rule_id, named_lists(rule)))
            executor = RuleExecutor(
                rule, backend, exceptions=lists, space=self.space, evidence=self.evidence
            )
            run = executor.run(window)
            if state.suppressor is not None:
                run, _ = suppress_run(state.suppressor, executor, run)
        except ReconwatchError as exc:
            return self._failed(rule, window, warnings, exc, gap)
        warnings.extend(run.warnings)
        record = RunRecord(
            rule.rule_id,
            window.run_at,
            window.start,
            window.end,
            window.execution_type,
            len(run.alerts),
            _ms(gap),
            None,
            tuple(warnings),
        )
        alerts, updates = self._found_again(rule, window, run.alerts)
        fresh = set(self.store.add_run(record, alerts, updates))
        created = [a for a in alerts if a.get("kibana.alert.uuid") in fresh]
        return RunOutcome(record, created, [alert_id for alert_id, _ in updates])

    def _found_again(
        self, rule: Rule, window: RunWindow, alerts: list[dict[str, object]]
    ) -> tuple[list[dict[str, object]], list[tuple[str, dict[str, object]]]]:
        """Of a real-time rule's alerts, those whose group alerted in real time within this
        window update that alert in place (its counts, last detected), as Kibana's suppression
        updates an alert; the others are new. (new alerts, (id, updated document) pairs)."""
        found = self.realtime_groups(rule.rule_id) if self.realtime_groups is not None else None
        if found is None or not alerts:
            return alerts, []
        by, columns = found
        new: list[dict[str, object]] = []
        updates: list[tuple[str, dict[str, object]]] = []
        for alert in alerts:
            key = group_key(alert, by)
            earlier = self.store.group_alert(rule.rule_id, key, window.start, window.end)
            if earlier is None:
                new.append(alert)
                continue
            alert_id, doc = earlier
            for name in columns:
                if name in alert:
                    doc[name] = alert[name]
            # The run's evidence covers the whole window (every address and port, the counts,
            # the crossing point): it replaces what the stream held when the alert fired.
            if isinstance(alert.get(EVIDENCE), dict):
                doc[EVIDENCE] = alert[EVIDENCE]
            doc[LAST_DETECTED] = format_datetime(window.run_at)
            doc[UPDATED_BY] = window.execution_type
            updates.append((alert_id, doc))
        return new, updates


EVIDENCE = "reconwatch.evidence"


def _ms(gap: timedelta) -> int:
    return int(gap.total_seconds() * 1000)
