"""Kibana's ES|QL rule executor: one run = filtered query, rows to alerts, ids, max_signals, paging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from reconwatch.alerts.document import build_alert
from reconwatch.engine.backend import PinnableResult, QueryBackend, source_fields
from reconwatch.engine.evidence import EvidenceFinder
from reconwatch.engine.exceptions_esql import keep_condition
from reconwatch.engine.objecthash import UNDEFINED, object_hash
from reconwatch.engine.rewrite import is_stats, time_range, with_commands, with_filters, with_limit
from reconwatch.engine.schedule import RunWindow
from reconwatch.errors import ReconwatchError
from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.esql.render import render
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import Column
from reconwatch.rules.exceptions import ExceptionList
from reconwatch.rules.model import Rule

# A backend with this attribute true reads a run's window cheaply enough to read it twice: an
# aggregating run queries it, then pins only the alerting groups' rows for their evidence.
PIN_GROUPS = "pins_alerting_groups"
# A backend with this method runs many runs' queries in one pass over the events where it can
# (`run_many([(query, now), ...], also=fields)` -> each query's Result, or None: run each;
# `also`: the fields the evidence reads later, read in the same pass where reads are kept).
RUN_MANY = "run_many"
# Kibana re-queries with a bigger page while deduplication leaves room, up to 3 x max_signals.
PAGE_SIZE_CIRCUIT_BREAKER = 3
MAX_SIGNALS_WARNING = "This rule reached the maximum alert limit for the rule execution. Some alerts were not created."


@dataclass(slots=True)
class RunResult:
    window: RunWindow
    alerts: list[dict[str, object]]
    rows: int
    warnings: list[str] = field(default_factory=list)
    query: str = ""


class RuleExecutor:
    """Runs one rule over one backend, any number of windows; remembers alert ids across runs so
    overlapping windows of a non-aggregating rule deduplicate as Kibana's persistence does."""

    def __init__(
        self,
        rule: Rule,
        backend: QueryBackend,
        *,
        exceptions: Sequence[ExceptionList] = (),
        space: str = "default",
        evidence: bool = True,
    ) -> None:
        self.rule = rule
        self.backend = backend
        self.space = space
        # Parsed once: every run rewrites this tree, so positions stay the rule's own.
        self.query = parse(rule.query)
        commands = self.query.commands
        self.aggregating = any(is_stats(c) for c in commands)
        self.mv_expanded = [c.field for c in commands if isinstance(c, ast.MvExpand)]
        self.fields: Mapping[str, Column] = source_fields(
            backend, with_commands(self.query, commands[:1])
        )
        self.exception_condition = keep_condition(exceptions, self.fields)
        self.exceptions = tuple(exceptions)
        self.seen: set[str] = set()
        # Also fetches a non-aggregating alert's source document, which Kibana always merges.
        self.finder = EvidenceFinder(rule, backend, self.query, self.fields)
        self.evidence = self.finder if evidence else None

    def source_conditions(self, window: RunWindow) -> list[ast.Expr]:
        """The filters Kibana puts in the request's DSL: time range, then exceptions."""
        ts_field = self.rule.timestamp_override
        if ts_field is not None and ts_field not in self.fields:
            ts_field = None  # an unmapped override field: every event falls back to @timestamp
        conditions: list[ast.Expr] = []
        if ts_field is not None or "@timestamp" in self.fields:
            conditions.append(time_range(ts_field, window.start, window.end))
        if self.exception_condition is not None:
            conditions.append(self.exception_condition)
        return conditions

    def grouped(self, windows: Sequence[RunWindow]) -> list[Result] | None:
        """Each window's first page (the rule's query with its filters, `LIMIT max_signals`) from
        one pass over the events, where the backend can (an aggregating rule over many runs on
        Spark); None otherwise, or when that pass fails: each run then queries on its own (and
        meets any error where it would have)."""
        run_many = getattr(self.backend, RUN_MANY, None)
        if run_many is None or not self.aggregating or len(windows) < 2:
            return None
        queries = [
            (
                with_limit(
                    with_filters(self.query, self.source_conditions(w)), self.rule.max_signals
                ),
                w.run_at,
            )
            for w in windows
        ]
        try:
            found: list[Result] | None = run_many(queries, self._evidence_fields(windows[0]))
        except ReconwatchError:
            return None
        return found

    def _evidence_fields(self, window: RunWindow) -> list[str]:
        """The fields an alerting run's evidence pin reads (read with the grouped pass's)."""
        query = (
            self.evidence.pinned_query(self.source_conditions(window)) if self.evidence else None
        )
        if query is None:
            return []
        try:
            return [c.name for c in self.backend.columns(query)]
        except ReconwatchError:
            return []

    def run(self, window: RunWindow, first: Result | None = None) -> RunResult:
        """One run over `window`; `first`: its first page, when queried already (grouped)."""
        conditions = self.source_conditions(window)
        filtered = with_filters(self.query, conditions)
        if (
            self.aggregating
            and self.evidence
            and (first is not None or getattr(self.backend, PIN_GROUPS, False))
        ):
            return self._groups_pinned(window, conditions, filtered, first)
        if first is not None:
            return self._pages(window, conditions, filtered, None, first)
        pinned = self._pin(conditions, window) if self.aggregating and self.evidence else None
        try:
            return self._pages(window, conditions, filtered, pinned)
        finally:
            if pinned is not None:
                pinned.close()

    def _pin(
        self, conditions: list[ast.Expr], window: RunWindow, groups: ast.Expr | None = None
    ) -> PinnableResult | None:
        """Read the events once per run: the pipeline before STATS, kept in memory with the
        fields the rest of the query and the evidence need; both then query that. With
        `groups`, only the rows it keeps (after that pipeline) are pinned."""
        pin = getattr(self.backend, "pin", None)
        if pin is None or self.evidence is None:
            return None
        query = self.evidence.pinned_query(conditions, groups)
        if query is None:
            return None
        result: PinnableResult = pin(query, now=window.run_at)
        return result

    def _groups_pinned(
        self,
        window: RunWindow,
        conditions: list[ast.Expr],
        filtered: ast.Query,
        first: Result | None = None,
    ) -> RunResult:
        """An aggregating run over a backend whose reads are cheap to repeat (the store's
        columns, pruned to the window): the rule's query first, straight over the backend;
        then, only when it alerts, the rows of the alerting groups pinned for their evidence
        (one filtered read), not every row of the window up front. Each group's evidence
        query keeps the same rows, in the same order, as over the whole window pinned."""
        assert self.evidence is not None
        result = (
            first
            if first is not None
            else self.backend.run(with_limit(filtered, self.rule.max_signals), now=window.run_at)
        )
        rows = [_drop_nulls(r) for r in result.as_dicts()]
        fresh = [r for i, r in enumerate(rows) if self.alert_id(window, r, i) not in self.seen]
        keyed = [f for r in fresh if (f := self.evidence.key_filters(r)) is not None]
        if not keyed:
            return self._pages(window, conditions, filtered, None, result)
        groups = ast.Or(tuple(_all(f) for f in keyed)) if len(keyed) > 1 else _all(keyed[0])
        pinned = self._pin(conditions, window, groups)
        try:
            return self._pages(window, conditions, filtered, pinned, result)
        finally:
            if pinned is not None:
                pinned.close()

    def _pages(
        self,
        window: RunWindow,
        conditions: list[ast.Expr],
        filtered: ast.Query,
        pinned: PinnableResult | None,
        first: Result | None = None,
    ) -> RunResult:
        """The run's pages of results to alerts. `first`: the first page's result, when it was
        queried already (over the backend itself); `pinned` then serves only the evidence."""
        max_signals = self.rule.max_signals
        size = max_signals
        alerts: list[dict[str, object]] = []
        processed = 0
        warnings: list[str] = list(self.rule.warnings)
        query = filtered
        rows: list[dict[str, object]] = []
        over_pin = pinned is not None and first is None
        backend: QueryBackend = pinned if over_pin and pinned is not None else self.backend
        source = self.evidence.after_pin() if over_pin and self.evidence else filtered
        while True:
            query = with_limit(filtered, size)
            if first is None:
                result = backend.run(with_limit(source, size), now=window.run_at)
            else:
                result, first = first, None
            warnings.extend(result.warnings)
            rows = [_drop_nulls(r) for r in result.as_dicts()]
            sources = self._sources(rows[processed:], window)
            for index in range(processed, len(rows)):
                if len(alerts) >= max_signals:
                    break
                alert = self._alert(window, rows[index], index, conditions, sources, pinned)
                if alert is not None:
                    alerts.append(alert)
            processed = len(rows)
            page_full = len(rows) >= size
            if not page_full or len(alerts) >= max_signals or self.aggregating:
                break
            if size >= PAGE_SIZE_CIRCUIT_BREAKER * max_signals:
                break
            size += max_signals
        if len(rows) >= size and len(alerts) >= max_signals:
            warnings.append(MAX_SIGNALS_WARNING)
        return RunResult(window, alerts, len(rows), warnings, render(query))

    def _alert(
        self,
        window: RunWindow,
        row: dict[str, object],
        index: int,
        conditions: list[ast.Expr],
        sources: Mapping[str, dict[str, object]],
        pinned: QueryBackend | None = None,
    ) -> dict[str, object] | None:
        alert_id = self.alert_id(window, row, index)
        if alert_id in self.seen:
            return None
        self.seen.add(alert_id)
        source = sources.get(str(row["_id"]), {}) if "_id" in row else {}
        evidence = (
            # A non-aggregating alert's evidence is its whole source event, not just the KEEP.
            self.evidence.collect({**source, **row}, conditions, window, self.aggregating, pinned)
            if self.evidence
            else None
        )
        return build_alert(
            self.rule,
            window,
            row,
            alert_id=alert_id,
            aggregating=self.aggregating,
            source=source,
            space=self.space,
            evidence=evidence,
            exceptions=self.exceptions,
        )

    def _sources(
        self, rows: Sequence[Mapping[str, object]], window: RunWindow
    ) -> dict[str, dict[str, object]]:
        """Kibana's fetch_source_documents for a page of non-aggregating rows, in one query."""
        if self.aggregating:
            return {}
        ids = list(dict.fromkeys(str(r["_id"]) for r in rows if r.get("_id") is not None))
        return self.finder.source_documents(ids, window) if ids else {}

    def alert_id(self, window: RunWindow, row: Mapping[str, object], index: int) -> str:
        """generate_alert_id.ts: event identity for non-aggregating rows, run identity otherwise."""
        rule_ref = f"{self.space}:{self.rule.rule_id}"
        if not self.aggregating and row.get("_id") is not None:
            fields: list[object] = [
                row["_id"],
                row.get("_version", UNDEFINED),
                row.get("_index", UNDEFINED),
                rule_ref,
            ]
            fields.extend(_expanded_values(row, self.mv_expanded))
            return object_hash(fields)
        return object_hash([window.run_id, self.rule.query, rule_ref, index])


def _all(filters: Sequence[ast.Expr]) -> ast.Expr:
    return filters[0] if len(filters) == 1 else ast.And(tuple(filters))


def _expanded_values(row: Mapping[str, object], names: Iterable[str]) -> list[object]:
    out: list[object] = []
    for name in names:
        value = row.get(name)
        out.append(_jsonable(value))
    return out


def _jsonable(value: object) -> object:
    if value is None:
        return UNDEFINED
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _drop_nulls(row: dict[str, object]) -> dict[str, object]:
    """drop_null_columns=true and Kibana's rowToDocument: null cells are absent from the alert."""
    return {k: v for k, v in row.items() if v is not None}
