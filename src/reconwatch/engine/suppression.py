"""Kibana's alert suppression for ES|QL rules: one alert per group_by terms, per run or per duration."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from reconwatch.engine.objecthash import object_hash
from reconwatch.plan.values import ConversionError, format_datetime, parse_datetime
from reconwatch.rules.model import AlertSuppression, Rule

if TYPE_CHECKING:
    from reconwatch.engine.schedule import RunWindow

# utils.ts getSuppressionMaxSignalsWarning: the suppression path's max_signals warning.
SUPPRESSION_MAX_SIGNALS_WARNING = (
    "This rule reached the maximum alert limit for the rule execution. "
    "Some alerts were not created or suppressed."
)
TERMS = "kibana.alert.suppression.terms"
START = "kibana.alert.suppression.start"
END = "kibana.alert.suppression.end"
DOCS_COUNT = "kibana.alert.suppression.docs_count"
INSTANCE_ID = "kibana.alert.instance.id"
LAST_DETECTED = "kibana.alert.last_detected"

Alert = dict[str, object]


def term_value(doc: Mapping[str, object], name: str) -> object:
    """A group_by field's value in an alert document, None when missing.

    The document is flat (source fields merged with the query's columns, as Kibana's
    `{...fields, ..._source}`); its own `@timestamp` is the run's, the event's is `original_time`.
    """
    if name == "@timestamp":
        return doc.get("kibana.alert.original_time")
    return doc.get(name)


def _sort_key(value: object) -> tuple[int, object]:
    # lodash sortBy: numbers numerically, strings by UTF-16 code units (JavaScript's <).
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        return (2, value.encode("utf-16-be"))
    return (3, str(value))


def suppression_terms(config: AlertSuppression, doc: Mapping[str, object]) -> list[Alert]:
    """getSuppressionTerms: [{field, value}] in group_by order; arrays sorted, missing as null."""
    terms: list[Alert] = []
    for name in config.group_by:
        value = term_value(doc, name)
        if isinstance(value, list):
            value = sorted(value, key=_sort_key)
        terms.append({"field": name, "value": value})
    return terms


def has_every_field(config: AlertSuppression, doc: Mapping[str, object]) -> bool:
    """partitionMissingFieldsEvents: an alert is suppressible only with every group_by field."""
    return all(term_value(doc, name) is not None for name in config.group_by)


# -- kibana.alert.instance.id: objectHash([terms, rule SO id, space]) -------------------------------


def instance_id(terms: Sequence[Mapping[str, object]], rule_id: str, space: str) -> str:
    """wrap_suppressed_esql_alerts.ts: objectHash([suppressionTerms, rule SO id, spaceId])."""
    return object_hash([list(terms), rule_id, space])


# -- the suppression fields and the alerts index -----------------------------------------------------


def _as_time(value: object) -> datetime | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        return None
    try:
        return parse_datetime(value)
    except ConversionError:
        return None


def suppression_time(rule: Rule, doc: Mapping[str, object]) -> datetime:
    """getSuppressionAlertFields: the event's timestamp_override, else @timestamp, else the alert's
    own @timestamp (an aggregating row without a time column: the run time)."""
    names = [rule.timestamp_override, "@timestamp"] if rule.timestamp_override else ["@timestamp"]
    for name in names:
        moment = _as_time(term_value(doc, name))
        if moment is not None:
            return moment
    moment = _as_time(doc.get("@timestamp"))
    assert moment is not None  # build_alert always writes the run time as @timestamp
    return moment


@dataclass(slots=True)
class _Candidate:
    alert: Alert
    instance: str
    start: datetime
    end: datetime
    docs_count: int = 0


@dataclass(slots=True)
class _Stored:
    """A suppression alert Kibana wrote, as later runs find it in the alerts index."""

    alert: Alert
    instance: str
    created: datetime
    end: datetime


@dataclass(slots=True)
class Outcome:
    """One run through the suppression path: what Kibana writes and what it counts."""

    created: list[Alert] = field(default_factory=list)
    updated: list[Alert] = field(default_factory=list)
    suppressed: int = 0
    unwritten_ids: list[str] = field(default_factory=list)
    truncated: bool = False


class Suppressor:
    """alertWithSuppression for one rule across its runs in time order: groups a run's alerts by
    instance id, folds them into an open alert of an earlier run within the duration, and keeps
    the alerts it creates as the alerts index the next run searches."""

    def __init__(self, rule: Rule, config: AlertSuppression, space: str = "default") -> None:
        self.rule = rule
        self.config = config
        self.space = space
        self.index: list[_Stored] = []

    @classmethod
    def for_rule(cls, rule: Rule, space: str = "default") -> Suppressor | None:
        config = rule.suppression
        return None if config is None else cls(rule, config, space)

    def apply(self, window: RunWindow, alerts: Sequence[Alert]) -> Outcome:
        """The run's alerts (already free of ids Kibana would find in the index) -> outcome."""
        outcome = Outcome()
        max_signals = self.rule.max_signals
        suppressible = list(alerts)
        if not self.config.suppress_missing:
            kept = [a for a in alerts if not has_every_field(self.config, a)]
            suppressible = [a for a in alerts if has_every_field(self.config, a)]
            outcome.created.extend(kept[:max_signals])
            outcome.unwritten_ids.extend(_ids(kept[max_signals:]))
        candidates = [self._candidate(a) for a in suppressible]
        existing = self._existing(window)
        fresh = []
        for c in candidates:
            # Already suppressed by an earlier run: its time is inside that alert's group.
            old = existing.get(c.instance)
            if old is not None and old.end >= c.end:
                outcome.unwritten_ids.append(_id(c.alert))
            else:
                fresh.append(c)
        kept_candidates, folded = _suppress_in_memory(fresh)
        outcome.suppressed += len(folded)
        outcome.unwritten_ids.extend(_ids(c.alert for c in folded))
        new: list[_Candidate] = []
        for c in kept_candidates:
            # Per rule execution, only an alert of this same run would absorb it: there is none.
            old = existing.get(c.instance) if self.config.duration is not None else None
            if old is None:
                new.append(c)
                continue
            self._update(old, c, window)
            outcome.updated.append(old.alert)
            outcome.suppressed += 1
            outcome.unwritten_ids.append(_id(c.alert))
        room = max(0, max_signals - len(outcome.created))
        for c in new[room:]:
            outcome.unwritten_ids.append(_id(c.alert))
        for c in new[:room]:
            self._write(c, window)
            outcome.created.append(c.alert)
        # executeBulkCreateAlerts: created and suppressed alerts together count against max_signals.
        created = len(outcome.created)
        outcome.truncated = outcome.suppressed + created >= max_signals or created >= max_signals
        order = {id(a): i for i, a in enumerate(alerts)}
        outcome.created.sort(key=lambda a: order[id(a)])
        return outcome

    def _candidate(self, alert: Alert) -> _Candidate:
        terms = suppression_terms(self.config, alert)
        moment = suppression_time(self.rule, alert)
        return _Candidate(alert, instance_id(terms, self.rule.rule_id, self.space), moment, moment)

    def _existing(self, window: RunWindow) -> dict[str, _Stored]:
        """The newest open alert per instance id created since the suppression window began:
        `now - duration`, or the run's `from` when suppressing per rule execution."""
        duration = self.config.duration
        since = window.run_at - duration if duration is not None else window.start
        found: dict[str, _Stored] = {}
        for stored in self.index:
            if stored.created >= since:
                best = found.get(stored.instance)
                if best is None or stored.created >= best.created:
                    found[stored.instance] = stored
        return found

    def _update(self, old: _Stored, c: _Candidate, window: RunWindow) -> None:
        alert = old.alert
        if c.end > old.end:
            old.end = c.end
            alert[END] = format_datetime(c.end)
        alert[LAST_DETECTED] = format_datetime(window.run_at)
        count = alert.get(DOCS_COUNT, 0)
        alert[DOCS_COUNT] = (count if isinstance(count, int) else 0) + c.docs_count + 1

    def _write(self, c: _Candidate, window: RunWindow) -> None:
        terms = suppression_terms(self.config, c.alert)
        c.alert.update(
            {
                INSTANCE_ID: c.instance,
                TERMS: terms,
                START: format_datetime(c.start),
                END: format_datetime(c.end),
                DOCS_COUNT: c.docs_count,
            }
        )
        self.index.append(_Stored(c.alert, c.instance, window.run_at, c.end))


def _suppress_in_memory(
    candidates: list[_Candidate],
) -> tuple[list[_Candidate], list[_Candidate]]:
    """suppressAlertsInMemory: by suppression start (stable), the first alert of each instance id
    stays; the others add docs_count + 1 to it and stretch its end."""
    first: dict[str, _Candidate] = {}
    kept: list[_Candidate] = []
    folded: list[_Candidate] = []
    for c in sorted(candidates, key=lambda c: c.start):
        head = first.get(c.instance)
        if head is None:
            first[c.instance] = c
            kept.append(c)
            continue
        head.docs_count += c.docs_count + 1
        head.end = max(head.end, c.end)
        folded.append(c)
    return kept, folded


def _id(alert: Mapping[str, object]) -> str:
    return str(alert.get("kibana.alert.uuid", ""))


def _ids(alerts: Iterable[Mapping[str, object]]) -> list[str]:
    return [_id(a) for a in alerts]
