"""A rule watched over a stream: its plan, its window, and alerts in the `detect` format as groups match."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconwatch.alerts.document import build_alert, plain
from reconwatch.backends.stream.executor import RealertPolicy, StreamExecutor, StreamMatch
from reconwatch.backends.stream.split import WindowSpec
from reconwatch.ecs.schema import ECS_FIELDS, is_ecs_index
from reconwatch.engine.objecthash import object_hash
from reconwatch.engine.schedule import RunWindow, window_at
from reconwatch.engine.stream_evidence import stream_evidence
from reconwatch.errors import UsageError
from reconwatch.esql.analyze import compile_query
from reconwatch.plan.catalog import Catalog
from reconwatch.plan.nodes import Aggregate, Column, Plan
from reconwatch.plan.values import datetime_from_millis, format_datetime
from reconwatch.rules.model import Rule

PATH_FIELD = "reconwatch.detection.path"
# Any run time resolves a rule's relative window to the same length.
_PROBE = datetime(2000, 1, 1, tzinfo=UTC)


class EcsCatalog:
    """The fields an Elastic Defend index maps, for a stream whose events are not known ahead."""

    def fields(self, indices: tuple[str, ...]) -> Mapping[str, Column]:
        if any(is_ecs_index(i) for i in indices):
            return {n: Column(n, t) for n, t in ECS_FIELDS.items()}
        return {}


def lookback_window(rule: Rule) -> WindowSpec:
    """The rule's own run window ([now + from, now + to], inclusive as Kibana's range filter) on
    its timestamp_override field, falling back to @timestamp as Kibana does."""
    run = window_at(rule, _PROBE)
    length = int((run.end - run.start) / timedelta(milliseconds=1))
    fields: tuple[str, ...] = ("@timestamp",)
    if rule.timestamp_override and rule.timestamp_override != "@timestamp":
        fields = (rule.timestamp_override, "@timestamp")
    return WindowSpec(length, True, fields, "lookback")


def default_policy(rule: Rule, policy: RealertPolicy | None) -> tuple[RealertPolicy, bool]:
    """The re-alert policy with its re-arm time filled in, and whether alerts of one group are
    at least a rule interval (capped at the window) apart.

    Kibana alerts on every scheduled run in which a group matches. A group re-armed only after
    a whole window without matching missed a second scan by the same host an hour after the
    first (detect found it). By default a group is re-armed as soon as it stops matching, so a
    new scan is a new alert, and alerts at most once per rule interval (capped at the window),
    as a group flapping around the threshold would on Kibana's schedule. An explicit
    --rearm-after keeps its own meaning, without that limit."""
    policy = policy or RealertPolicy()
    if policy.rearm_after_ms is not None:
        return policy, False
    return replace(policy, rearm_after_ms=0), True


def check_growth(rule: Rule, plan: Plan, policy: RealertPolicy) -> None:
    """Refuse a growth re-alert that could never fire: a factor that is not a finite number
    above 1 (0.5 re-alerted on every event), or a column the rule does not output as a number."""
    factor, column = policy.growth_factor, policy.growth_column
    if factor is None:
        if column is not None:
            msg = f"--realert-column {column}: only used with --realert-growth"
            raise UsageError(msg)
        return
    if not (math.isfinite(factor) and factor > 1):
        msg = f"--realert-growth {factor}: expected a factor greater than 1 (e.g. 10)"
        raise UsageError(msg)
    numeric = [c.name for c in plan.columns if c.type.is_numeric]
    if column is None:
        column = _first_count(plan)
        if column is None or column not in numeric:
            msg = (
                f"--realert-growth: rule {rule.name!r} outputs no count or count_distinct "
                "column to watch; name one with --realert-column"
            )
            raise UsageError(msg)
    elif column not in numeric:
        known = ", ".join(numeric) or "none"
        msg = (
            f"--realert-column {column}: rule {rule.name!r} has no numeric output column of "
            f"that name (its numeric columns: {known})"
        )
        raise UsageError(msg)


def _first_count(plan: Plan) -> str | None:
    """The column growth re-alerts watch by default: the first count_distinct, else count."""
    stats = [st for st in plan.steps if isinstance(st, Aggregate)]
    if not stats:
        return None
    calls = stats[0].aggregates
    for fn in ("count_distinct", "count"):
        for name, call in calls:
            if call.fn == fn:
                return name
    return None


@dataclass(slots=True)
class RuleWatch:
    """One rule's streaming executor and the alert documents its matches become."""

    rule: Rule
    executor: StreamExecutor
    space: str = "default"
    # Plain NDJSON files being watched: the sampled evidence events are looked up in them.
    files: tuple[Path, ...] = ()
    evidence: bool = True
    # Least event time between two first alerts of one group (default_policy); when each was.
    min_gap_ms: int = 0
    last_alert: dict[tuple[object, ...], int] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        rule: Rule,
        catalog: Catalog | None = None,
        *,
        lateness_ms: int | None = None,
        policy: RealertPolicy | None = None,
        space: str = "default",
        files: Sequence[Path] = (),
        evidence: bool = True,
    ) -> RuleWatch:
        plan = compile_query(rule.query, catalog or EcsCatalog())
        policy, limited = default_policy(rule, policy)
        check_growth(rule, plan, policy)
        executor = StreamExecutor(
            plan, lookback=lookback_window(rule), lateness_ms=lateness_ms, policy=policy
        )
        interval_ms = int(rule.interval / timedelta(milliseconds=1))
        gap = min(interval_ms, executor.window.length_ms) if limited else 0
        watch = cls(rule, executor, space, tuple(files), evidence, max(0, gap))
        if evidence:
            executor.on_match = watch.evidence_at_match
        return watch

    def evidence_at_match(self, match: StreamMatch) -> dict[str, object]:
        return stream_evidence(self.executor, match, self.files)

    def push(self, event: Mapping[str, object]) -> list[dict[str, object]]:
        return [self.alert(m) for m in self.executor.push(event) if self._due(m)]

    def push_lines(
        self, lines: Sequence[bytes | str], errors: list[tuple[int, str]] | None = None
    ) -> list[dict[str, object]]:
        """A micro-batch of NDJSON lines (see StreamExecutor.push_lines)."""
        return [self.alert(m) for m in self.executor.push_lines(lines, errors) if self._due(m)]

    def prime_lines(self, lines: Sequence[bytes | str]) -> int:
        """History (--history): NDJSON lines from before the stream that fill the rule's window,
        so traffic that recurs (a scrape every 10 minutes) is seen recurring from the stream's
        first event instead of looking like a first sweep; what they match is not alerted.
        Returns how many matches were dropped."""
        return self._priming(lambda: len(self.executor.push_lines(lines)))

    def prime(self, events: Iterable[Mapping[str, object]]) -> int:
        """`prime_lines` for flattened events."""
        return self._priming(lambda: sum(len(self.executor.push(e)) for e in events))

    def _priming(self, push: Callable[[], int]) -> int:
        """`push` with no evidence gathered (its matches are dropped)."""
        hook, self.executor.on_match = self.executor.on_match, None
        try:
            return push()
        finally:
            self.executor.on_match = hook

    def _due(self, match: StreamMatch) -> bool:
        """Whether a group's new crossing alerts: not within min_gap_ms of its last alert (a
        growth re-alert always does)."""
        if not self.min_gap_ms or match.repeat:
            return True
        last = self.last_alert.get(match.key)
        if last is not None and match.trigger_ms - last < self.min_gap_ms:
            return False
        if len(self.last_alert) > 4 * max(1, len(self.executor.state.groups)):
            self._forget(match.trigger_ms)
        self.last_alert[match.key] = match.trigger_ms
        return True

    def _forget(self, now_ms: int) -> None:
        """Drop alert times too old to matter, so the map stays bounded by the active groups."""
        old = [k for k, ms in self.last_alert.items() if now_ms - ms >= self.min_gap_ms]
        for key in old:
            del self.last_alert[key]

    def run(self, events: Iterable[Mapping[str, object]]) -> Iterator[dict[str, object]]:
        for event in events:
            yield from self.push(event)

    def alert(self, match: StreamMatch) -> dict[str, object]:
        """The `detect` alert document for a match; the run is the window ending at the match."""
        window = self.executor.window
        start = match.end - timedelta(milliseconds=window.length_ms)
        run = RunWindow(match.end, start, match.end, match.repeat, "stream")
        aggregating = self.executor.split.aggregate is not None
        alert_id = object_hash(
            [
                f"{self.space}:{self.rule.rule_id}",
                "stream",
                [plain(k) for k in match.key],
                match.repeat,
                format_datetime(match.end),
            ]
        )
        row = {k: val for k, val in match.row.items() if val is not None}
        alert = build_alert(
            self.rule,
            run,
            row,
            alert_id=alert_id,
            aggregating=aggregating,
            source={},
            space=self.space,
            evidence=match.detail,
        )
        alert[PATH_FIELD] = "stream"
        alert["reconwatch.stream.window"] = {
            "origin": window.origin,
            "length_ms": window.length_ms,
            "time_fields": list(window.time_fields),
        }
        alert["reconwatch.stream.trigger_time"] = format_datetime(
            datetime_from_millis(match.trigger_ms)
        )
        alert["reconwatch.stream.repeat"] = match.repeat
        return alert
