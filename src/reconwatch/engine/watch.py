"""A rule watched over a stream: its plan, its window, and alerts in the `detect` format as groups match."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from reconwatch.alerts.document import build_alert, plain
from reconwatch.backends.stream.executor import RealertPolicy, StreamExecutor, StreamMatch
from reconwatch.backends.stream.split import WindowSpec
from reconwatch.ecs.schema import ECS_FIELDS, is_ecs_index
from reconwatch.engine.objecthash import object_hash
from reconwatch.engine.schedule import RunWindow, window_at
from reconwatch.engine.stream_evidence import stream_evidence
from reconwatch.esql.analyze import compile_query
from reconwatch.plan.catalog import Catalog
from reconwatch.plan.nodes import Column
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


@dataclass(slots=True)
class RuleWatch:
    """One rule's streaming executor and the alert documents its matches become."""

    rule: Rule
    executor: StreamExecutor
    space: str = "default"
    # Plain NDJSON files being watched: the sampled evidence events are looked up in them.
    files: tuple[Path, ...] = ()
    evidence: bool = True

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
        executor = StreamExecutor(
            plan, lookback=lookback_window(rule), lateness_ms=lateness_ms, policy=policy
        )
        watch = cls(rule, executor, space, tuple(files), evidence)
        if evidence:
            executor.on_match = watch.evidence_at_match
        return watch

    def evidence_at_match(self, match: StreamMatch) -> dict[str, object]:
        return stream_evidence(self.executor, match, self.files)

    def push(self, event: Mapping[str, object]) -> list[dict[str, object]]:
        return [self.alert(m) for m in self.executor.push(event)]

    def push_lines(
        self, lines: Sequence[bytes | str], errors: list[tuple[int, str]] | None = None
    ) -> list[dict[str, object]]:
        """A micro-batch of NDJSON lines (see StreamExecutor.push_lines)."""
        return [self.alert(m) for m in self.executor.push_lines(lines, errors)]

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
