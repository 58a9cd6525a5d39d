"""A native detector rule in `detect`: its events read through the engine (history and the events before the first run only to learn), findings as alerts in the run that would have seen them."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, MutableMapping, Sequence
from datetime import datetime

from reconwatch.alerts.document import build_alert
from reconwatch.engine.backend import QueryBackend, source_fields
from reconwatch.engine.exceptions_esql import keep_condition
from reconwatch.engine.native.contact import FIELDS, INTERNAL, Contact, contact_of
from reconwatch.engine.native.detector import Detector, Finding, make_detector
from reconwatch.engine.objecthash import object_hash
from reconwatch.engine.rewrite import time_range, with_filters
from reconwatch.engine.run import RunResult
from reconwatch.engine.schedule import RunWindow
from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.plan.values import datetime_from_millis, datetime_to_millis, format_datetime
from reconwatch.rules.exceptions import ExceptionList
from reconwatch.rules.model import Rule

SOURCE = "from logs-endpoint.events.network-*"
DECIDED_FIELD = "reconwatch.detector.decided_at"


def read_contacts(
    backend: QueryBackend,
    now: datetime,
    until: datetime | None = None,
    exceptions: Sequence[ExceptionList] = (),
) -> Iterator[Contact]:
    """The contacts of a backend's network events in time order (up to `until`), read through
    the engine with only the fields the detectors use; events an exception item matches are
    left out before the detector sees them, as an ES|QL rule's query never sees them."""
    base = parse(SOURCE)
    present = source_fields(backend, base)
    keep = tuple(f for f in FIELDS if f in present)
    if not {"@timestamp", "event.action", "destination.ip"} <= set(keep):
        return
    order = "@timestamp"
    if "event.sequence" in present:
        order += ", event.sequence"  # an attempt before its result at the same millisecond
    internal = ", ".join(f'"{n}"' for n in INTERNAL)
    query = parse(
        f"{SOURCE} | where cidr_match(destination.ip, {internal}) "
        f"| sort {order} | keep {', '.join(keep)}"
    )
    filters: list[ast.Expr] = []
    if until is not None:
        filters.append(time_range(None, datetime_from_millis(0), until))
    if (keep_events := keep_condition(exceptions, present)) is not None:
        filters.append(keep_events)
    if filters:
        query = with_filters(query, filters)
    contacts = [c for row in _rows(backend, query, now) if (c := contact_of(row)) is not None]
    contacts.sort(key=lambda c: c.time_ms)  # stable: the query's order within a millisecond
    yield from contacts


def _rows(backend: QueryBackend, query: ast.Query, now: datetime) -> Iterator[dict[str, object]]:
    """Every row of the query: pinned (no implicit LIMIT) where the backend can, else run."""
    pin = getattr(backend, "pin", None)
    if pin is None:
        yield from backend.run(query, now=now).as_dicts()
        return
    pinned = pin(query, now=now)
    try:
        names = [c.name for c in pinned.columns(parse("from rw_pinned"))]
        yield from pinned.rows(names, [0])
    finally:
        pinned.close()


def run_native(
    rule: Rule,
    windows: Sequence[RunWindow],
    backend: QueryBackend,
    *,
    history: QueryBackend | None = None,
    space: str = "default",
    detectors: MutableMapping[str, Detector] | None = None,
    exceptions: Sequence[ExceptionList] = (),
) -> list[RunResult]:
    """Every run of a native rule: the detector learns from `history` and from the events
    before the first run's window, then each finding in the runs' span becomes an alert of the
    first run whose window ends at or after it (the run that would have seen it). Events the
    `exceptions` match are never seen (neither learned from nor judged).
    `detectors`: saved detectors by rule id (engine.native.state); the rule's is used and left
    there with what it learned, a fresh one put there if it had none."""
    detector = detectors.get(rule.rule_id) if detectors is not None else None
    if detector is None:
        detector = make_detector(rule)
    if detectors is not None:
        detectors[rule.rule_id] = detector
    last = windows[-1]
    if history is not None:
        for contact in read_contacts(history, last.run_at, exceptions=exceptions):
            detector.push(contact, learn=True)
    start_ms = datetime_to_millis(windows[0].start)
    findings: list[Finding] = []
    for contact in read_contacts(backend, last.run_at, last.end, exceptions):
        found = detector.push(contact, learn=contact.time_ms < start_ms)
        findings.extend(found)
    return _runs(rule, windows, findings, space, detector)


def _runs(
    rule: Rule,
    windows: Sequence[RunWindow],
    findings: list[Finding],
    space: str,
    detector: Detector,
) -> list[RunResult]:
    ends = [datetime_to_millis(w.end) for w in windows]
    per_run: list[list[dict[str, object]]] = [[] for _ in windows]
    for finding in findings:
        at = bisect.bisect_left(ends, finding.time_ms)
        if at < len(windows):
            per_run[at].append(native_alert(rule, windows[at], finding, space))
    note = f"native detector {rule.detector.kind if rule.detector else '?'}: {detector.groups} group(s)"
    return [
        RunResult(window, alerts, len(alerts), [], note)
        for window, alerts in zip(windows, per_run, strict=True)
    ]


def native_alert(rule: Rule, window: RunWindow, finding: Finding, space: str) -> dict[str, object]:
    """The `detect` alert document for a finding (the detector's fields as the query's row)."""
    alert_id = object_hash(
        [f"{space}:{rule.rule_id}", "native", list(finding.key), finding.time_ms]
    )
    row = {**finding.fields, DECIDED_FIELD: format_datetime(datetime_from_millis(finding.time_ms))}
    return build_alert(
        rule,
        window,
        row,
        alert_id=alert_id,
        aggregating=True,
        source={},
        space=space,
        evidence=finding.evidence,
    )
