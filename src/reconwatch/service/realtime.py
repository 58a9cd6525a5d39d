"""Rules in real time: watch's stream executor over every committed _bulk batch, alerts as groups cross."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import msgspec

from reconwatch.engine.exceptions_esql import matching
from reconwatch.engine.native.detector import Finding
from reconwatch.engine.run import RuleExecutor
from reconwatch.engine.schedule import RunWindow
from reconwatch.engine.watch import RuleWatch
from reconwatch.errors import ReconwatchError, UsageError
from reconwatch.plan import limits, values
from reconwatch.rules.exceptions import ExceptionList
from reconwatch.rules.model import Rule
from reconwatch.service.native import PATTERNS as NATIVE_PATTERNS
from reconwatch.service.native import NativeRule, NativeRules, group_of
from reconwatch.service.scheduler import named_lists, source_patterns
from reconwatch.service.storequery import StoreBackend
from reconwatch.store import Store
from reconwatch.store.alerts import group_key
from reconwatch.store.db import index_matches
from reconwatch.store.window import window_dataset

_STOP = None
TRIGGER = "reconwatch.stream.trigger_time"
# Events read back from the store per push when a watch starts (its window rebuilt).
REFILL_BATCH = 5000


@dataclass(slots=True)
class _Watched:
    watch: RuleWatch
    patterns: tuple[str, ...]
    by: tuple[str, ...]
    columns: tuple[str, ...]


class RealTime:
    """The real-time rules: one RuleWatch each, fed the events of every committed batch (in
    commit order, on a thread of its own behind a bounded queue: a full queue holds the writer,
    so ingest answers 429 rather than queueing without end). Of the ES|QL rules only aggregating
    ones (STATS ... BY) can be real time: their group is what the next scheduled run finds
    again. A native detector rule's detector (service.native) is handed each batch's events."""

    def __init__(
        self,
        store: Store,
        rules: Mapping[str, Rule],
        *,
        space: str = "default",
        max_batches: int = 64,
        on_alerts: Callable[[int], None] | None = None,
        natives: NativeRules | None = None,
        query_limits: limits.QueryLimits | None = None,
    ) -> None:
        self.store = store
        # Each batch's work and a rule's refill: a time budget, DuckDB's memory (as scheduled runs).
        self.query_limits = query_limits or limits.QueryLimits(seconds=limits.RULE_RUN_SECONDS)
        # Native detector rules' detectors: the schedule's, so each event reaches one once.
        self.natives = natives or NativeRules(store, self._native_lists, space)
        self._native: dict[str, NativeRule] = {}
        self.rules = dict(rules)
        self.space = space
        self.on_alerts = on_alerts
        # Told how long each new alert was held from the sinks (seconds, measured).
        self.on_held: Callable[[float], None] | None = None
        self.errors: list[str] = []
        self.alerts_created = 0
        self._watched: dict[str, _Watched] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[list[tuple[str, bytes, int]] | None] = queue.Queue(max_batches)
        self._thread = threading.Thread(target=self._run, name="reconwatch-realtime", daemon=True)
        self._started = False

    # -- which rules ------------------------------------------------------------------------------

    def enable(self, rule_id: str) -> None:
        """Watch the rule from now on, its window refilled from the store; UsageError saying why
        a rule cannot be watched (unknown, not aggregating, a query the stream refuses)."""
        # The stream executor takes the time budget in force when it is built.
        with limits.limited(self.query_limits):
            self._enable(rule_id)

    def _enable(self, rule_id: str) -> None:
        rule = self.rules.get(rule_id)
        if rule is None:
            msg = f"no rule with rule_id [{rule_id}]"
            raise UsageError(msg)
        if rule.native:
            self._enable_native(rule)
            return
        watch = RuleWatch.create(rule, space=self.space, evidence=True)
        aggregate = watch.executor.split.aggregate
        if aggregate is None:
            msg = f"rule [{rule_id}] has no STATS ... BY: only aggregating rules run in real time"
            raise UsageError(msg)
        watched = _Watched(
            watch,
            source_patterns(rule),
            tuple(name for name, _ in aggregate.groups),
            tuple(c.name for c in watch.executor.split.plan.columns),
        )
        self._refill(watched)
        with self._lock:
            self._watched[rule_id] = watched

    def _enable_native(self, rule: Rule) -> None:
        """A native rule's detector handed what the store holds that it has not seen (a fresh
        one learns from all but the last window's events, as a restarted ES|QL watch refills
        its window), then every committed batch."""
        native = self.natives.get(rule)
        with native.lock:
            live_from = None
            if native.seen is None:
                latest = self.store.latest_time(self.store.matching_indices(NATIVE_PATTERNS))
                live_from = None if latest is None else latest - native.window
            self._store_native(native, native.catch_up(live_from))
            native.save(force=True)
        with self._lock:
            self._native[rule.rule_id] = native

    def _native_lists(self, rule: Rule) -> list[ExceptionList]:
        return self.store.cached_exceptions(rule.rule_id, named_lists(rule))

    def disable(self, rule_id: str) -> None:
        with self._lock:
            self._watched.pop(rule_id, None)
            self._native.pop(rule_id, None)

    def enabled(self) -> list[str]:
        with self._lock:
            return sorted([*self._watched, *self._native])

    def groups(self, rule_id: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """(BY columns, output columns) of a real-time rule; None when it is not one."""
        with self._lock:
            watched = self._watched.get(rule_id)
        return None if watched is None else (watched.by, watched.columns)

    def _refill(self, watched: _Watched) -> None:
        """The stored events of the rule's last window (by the latest event time stored), so a
        restarted service alerts on a crossing that began before it stopped. A match found again
        has the alert id it had, which the store keeps once."""
        indices = self.store.matching_indices(watched.patterns)
        latest = self.store.latest_time(indices)
        if latest is None:
            return
        length = timedelta(milliseconds=watched.watch.executor.window.length_ms)
        batch: list[bytes] = []
        for text in self.store.texts(indices, latest - length):
            batch.append(text)
            if len(batch) >= REFILL_BATCH:
                self._store_alerts(watched, watched.watch.push_lines(batch))
                batch = []
        if batch:
            self._store_alerts(watched, watched.watch.push_lines(batch))

    # -- events in --------------------------------------------------------------------------------

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def offer(self, rows: list[tuple[str, bytes, int]]) -> None:
        """A committed batch, (index, JSON text, seq) in order; waits while the queue is full."""
        if rows and self._started:
            self._queue.put(rows)

    def depth(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Evaluate what is queued, then stop (the native rules' states saved)."""
        # A stop request can interrupt start() itself: only a thread that runs is waited for.
        if self._started and self._thread.ident is not None:
            self._queue.put(_STOP)
            self._thread.join()
        self.natives.save_all()

    def drain(self) -> None:
        """Wait until every batch offered so far was evaluated (tests, shutdown)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            rows = self._queue.get()
            try:
                if rows is _STOP:
                    return
                with limits.limited(self.query_limits):
                    self._evaluate(rows)
            except Exception as exc:  # a bug must not stop the thread: the writer waits on it
                self._error(f"{type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    def _evaluate(self, rows: list[tuple[str, bytes, int]]) -> None:
        with self._lock:
            watched = list(self._watched.values())
            natives = list(self._native.values())
        for native in natives:
            try:
                with native.lock:
                    self._store_native(native, native.push_batch(rows))
                    native.save()
            except ReconwatchError as exc:
                self._error(f"{native.rule.rule_id}: {exc.one_line()}")
        for item in watched:
            lines = [text for index, text, _ in rows if index_matches(item.patterns, index)]
            try:
                lines = self._not_excepted(item.watch.rule, lines)
                if not lines:
                    continue
                self._store_alerts(item, item.watch.push_lines(lines))
            except ReconwatchError as exc:
                self._error(f"{item.watch.rule.rule_id}: {exc.one_line()}")

    def _not_excepted(self, rule: Rule, lines: list[bytes]) -> list[bytes]:
        """The lines no exception item of the rule matches (the store's lists linked to it),
        as a scheduled run's query never sees the events they except."""
        if not lines:
            return lines
        items = [
            i
            for lst in self.store.cached_exceptions(rule.rule_id, named_lists(rule))
            for i in lst.items
        ]
        if not items:
            return lines
        decode = msgspec.json.Decoder(dict[str, object]).decode
        sources: list[dict[str, object]] = []
        undecoded: list[int] = []
        for at, line in enumerate(lines):
            try:
                sources.append(decode(line))
            except msgspec.DecodeError:
                undecoded.append(at)  # the watch reports it as it would
        hits = iter(matching(items, sources))
        return [line for at, line in enumerate(lines) if at in undecoded or not next(hits)]

    def _store_native(self, native: NativeRule, findings: Sequence[Finding]) -> None:
        """A native rule's real-time alerts: complete as found (their evidence is the
        detector's), so the sinks take them at once."""
        if not findings:
            return
        alerts = [native.stream_alert(f) for f in findings]
        fresh = self.store.add_group_alerts(alerts, [group_of(f) for f in findings])
        self.alerts_created += len(fresh)
        if fresh and self.on_alerts is not None:
            self.on_alerts(len(fresh))

    def _store_alerts(self, item: _Watched, alerts: Sequence[dict[str, object]]) -> None:
        # A group a scheduled or manual run already alerted on over the match's time is no new
        # alert: a restart's refill finds crossings again that the runs stored (`serve --demo`
        # runs every rule over the sample before the real-time rules start).
        rule_id = item.watch.rule.rule_id
        groups = [(group_key(a, item.by), _detected(a)) for a in alerts]
        kept = [
            (alert, group)
            for alert, group in zip(alerts, groups, strict=True)
            if not self.store.run_alerted(rule_id, item.by, *group)
        ]
        if not kept:
            return
        alerts = [alert for alert, _ in kept]
        groups = [group for _, group in kept]
        # Stored at once (the API and the UI show it) but held from the sinks until its
        # crossing point is in its evidence, so a sink gets the complete alert.
        fresh = self.store.add_group_alerts(alerts, groups, held=True)
        self.alerts_created += len(fresh)
        for alert in alerts:
            alert_id = str(alert.get("kibana.alert.uuid"))
            if alert_id in fresh:
                started = time.perf_counter()
                crossing = None
                try:
                    crossing = self._crossing(item, alert)
                finally:
                    self.store.release_alert(alert_id, "crossing" if crossing else None, crossing)
                    if self.on_held is not None:
                        self.on_held(time.perf_counter() - started)
        if fresh and self.on_alerts is not None:
            self.on_alerts(len(fresh))

    def _crossing(self, item: _Watched, alert: Mapping[str, object]) -> dict[str, object] | None:
        """The new alert's crossing point, after it is stored (the stream's trigger time is its
        batch's, not the crossing event's): the group's events over the alert's run window,
        one query, counted in time order as a scheduled run's evidence is; None when it cannot
        be found (reported)."""
        rule = item.watch.rule
        try:
            # Up to the store's now, not the alert's window end: that is the batch's ingest
            # time in milliseconds, and a client's own event.ingested may be finer.
            window = RunWindow(
                values.parse_datetime(str(alert["reconwatch.run.at"])),
                values.parse_datetime(str(alert["reconwatch.run.from"])),
                max(values.parse_datetime(str(alert["reconwatch.run.to"])), self.store.clock()),
                execution_type="realtime",
            )
            dataset = window_dataset(
                self.store, item.patterns, window.start, window.end, rule.timestamp_override
            )
            lists = self.store.cached_exceptions(rule.rule_id, named_lists(rule))
            executor = RuleExecutor(
                rule, StoreBackend(self.store, dataset), exceptions=lists, space=self.space
            )
            conditions = executor.source_conditions(window)
            # Only the crossing (@timestamp and the counted columns): the sinks wait for it.
            point = executor.finder.crossing_point(alert, conditions, window)
            if point is not None:
                return point
            found = executor.finder.collect(alert, conditions, window, aggregating=True)
        except ReconwatchError as exc:
            self._error(f"{rule.rule_id}: no crossing point: {exc.one_line()}")
            return None
        except (KeyError, ValueError) as exc:
            self._error(f"{rule.rule_id}: no crossing point: {exc}")
            return None
        crossing = found.get("crossing")
        return crossing if isinstance(crossing, dict) else None

    def _error(self, line: str) -> None:
        self.errors.append(line)
        del self.errors[:-20]


def _detected(alert: Mapping[str, object]) -> datetime:
    return values.parse_datetime(str(alert[TRIGGER]))


def enabled_rules(
    rules: Iterable[str], builtin: Iterable[str], chosen: Sequence[str] | None
) -> list[str]:
    """The rule ids to run in real time: `chosen` (`*` for every rule), else the built-ins."""
    loaded = list(rules)
    if chosen is None:
        names = set(builtin)
        return [r for r in loaded if r in names]
    if "*" in chosen:
        return loaded
    return [r for r in chosen if r in loaded]
