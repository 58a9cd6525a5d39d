"""The detect facade: rules + events + run times -> alerts, through the ES|QL engine."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Collection, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from reconwatch.engine.backend import QueryBackend
from reconwatch.engine.rewrite import call, with_commands
from reconwatch.engine.run import MAX_SIGNALS_WARNING, RuleExecutor, RunResult
from reconwatch.engine.schedule import RunWindow, runs_between, window_at
from reconwatch.engine.suppression import SUPPRESSION_MAX_SIGNALS_WARNING, Suppressor
from reconwatch.errors import ReconwatchError, RuleRunError
from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.esql.render import quote_name, render_command
from reconwatch.ingest import Dataset
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import Column
from reconwatch.plan.scan import ArrowScan
from reconwatch.plan.values import from_list
from reconwatch.rules.exceptions import ExceptionList
from reconwatch.rules.model import Rule

if TYPE_CHECKING:
    import pyarrow as pa

    from reconwatch.engine.native.detector import Detector


class DatasetBackend:
    """QueryBackend over an ingest Dataset via the query facade and the analyser."""

    def __init__(self, dataset: Dataset, engine: str = "duckdb") -> None:
        self.dataset = dataset
        self.engine = engine

    def pin(self, query: ast.Query, *, now: datetime) -> PinnedBackend:
        """The query's result kept in memory, itself queryable with ES|QL (FROM any name). The
        events are read on the chosen engine; the (filtered) result is kept in DuckDB."""
        from reconwatch.backends.duckdb.execute import connect
        from reconwatch.query import pin

        con = connect()
        try:
            columns = pin(
                query, self.dataset, now=now, con=con, table=PINNED_TABLE, backend=self.engine
            )
        except BaseException:
            con.close()
            raise
        return PinnedBackend(con, columns)

    def source_files(self, query: ast.Query) -> list[Path] | None:
        """The plain NDJSON files the query's FROM reads, where events' lines can be sought."""
        first = query.commands[0]
        return self.dataset.plain_files(first.sources) if isinstance(first, ast.From) else None

    def run(self, query: ast.Query, *, now: datetime) -> Result:
        from reconwatch.query import run_query

        result: Result = run_query(query, self.dataset, now=now, backend=self.engine)
        return result

    def columns(self, query: ast.Query) -> tuple[Column, ...]:
        from reconwatch.query import compile_on

        return compile_on(query, self.dataset).columns

    def run_many(
        self, queries: Sequence[tuple[ast.Query, datetime]], also: Sequence[str] = ()
    ) -> list[Result] | None:
        """Runs' queries in one pass over the events where the engine can (run.RUN_MANY);
        `also`: fields later queries read (the evidence), read with them where reads are kept."""
        from reconwatch.query import run_queries

        self.dataset.widen_spark_reads(also)
        return run_queries(queries, self.dataset, backend=self.engine)


PINNED_TABLE = "rw_pinned"


class PinnedBackend(ArrowScan):
    """QueryBackend over one materialised result (a DuckDB temporary table); close() frees it."""

    def __init__(self, con: duckdb.DuckDBPyConnection, columns: tuple[Column, ...]) -> None:
        self.con = con
        self._columns = {c.name: c for c in columns}

    # Catalog and scan source (plan.scan) for the analyser and the DuckDB executor.
    def fields(self, indices: tuple[str, ...]) -> Mapping[str, Column]:
        return self._columns

    def column(self, name: str) -> Column | None:
        return self._columns.get(name)

    def selected_inputs(self, indices: Sequence[str]) -> list[int]:
        return [0]

    def _select(self, names: Sequence[str]) -> str:
        cols = "".join(f", {_quoted(n)}" for n in names if n in self._columns)
        return f"SELECT CAST(0 AS INTEGER) AS __src{cols} FROM {PINNED_TABLE}"

    def register_source(
        self,
        con: duckdb.DuckDBPyConnection,
        names: Sequence[str],
        inputs: Sequence[int],
        metadata: Sequence[str],
        filtered: Collection[str] | None,
    ) -> bool:
        if con is not self.con:
            return False  # the table lives on our connection: another one reads the batches
        con.execute(f"CREATE OR REPLACE TEMP VIEW rw_source AS {self._select(names)}")
        return True

    def batches(
        self, names: Sequence[str], inputs: Sequence[int], metadata: Sequence[str] = ()
    ) -> Iterator[pa.RecordBatch]:
        reader: pa.RecordBatchReader = self.con.sql(self._select(names)).to_arrow_reader()
        yield from reader

    def arrow_schema(self, cols: Sequence[Column], metadata: Sequence[str]) -> pa.Schema:
        sql = f"{self._select([c.name for c in cols])} LIMIT 0"
        table: pa.Table = self.con.sql(sql).to_arrow_table()
        return table.schema

    def rows(
        self, names: Sequence[str], inputs: Sequence[int], metadata: Sequence[str] = ()
    ) -> Iterator[dict[str, object]]:
        for batch in self.batches(names, inputs, metadata):
            for row in batch.to_pylist():
                del row["__src"]
                yield {k: _plain(v) for k, v in row.items()}

    # QueryBackend
    def run(self, query: ast.Query, *, now: datetime) -> Result:
        from reconwatch.backends.duckdb.execute import execute
        from reconwatch.esql.analyze import analyze

        return execute(analyze(query, self), self, now, self.con)

    def columns(self, query: ast.Query) -> tuple[Column, ...]:
        from reconwatch.esql.analyze import analyze

        return analyze(query, self).columns

    def close(self) -> None:
        self.con.close()


def _plain(value: object) -> object:
    """A pinned cell as the plan holds it: times in UTC, a list of one value that value."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, list):
        return from_list(_plain(v) for v in value)
    return value


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(slots=True)
class Schedule:
    """One run at `at`, or every run over [first, last], or (`spans`, --replay) every run over
    each rule's own events: from the first event to one interval past the last, so the last
    run's window holds the last event."""

    at: datetime | None = None
    first: datetime | None = None
    last: datetime | None = None
    spans: Mapping[str, EventSpan] | None = None  # by rule label

    def windows(self, rule: Rule) -> list[RunWindow]:
        if self.spans is not None:
            span = self.spans.get(rule.label)
            if span is None or span.first is None or span.last is None:
                return []
            return runs_between(rule, span.first, span.last + rule.interval)
        if self.first is not None and self.last is not None:
            return runs_between(rule, self.first, self.last)
        assert self.at is not None  # the CLI resolves the default (the real clock) at its edge
        return [window_at(rule, self.at)]

    def total(self, rules: Sequence[Rule]) -> int:
        """How many runs `detect` makes for these rules (for a progress bar)."""
        return sum(len(self.windows(rule)) for rule in rules)


@dataclass(slots=True)
class DetectReport:
    runs: list[tuple[Rule, RunResult]] = field(default_factory=list)
    # Alerts folded into another by alert suppression (Kibana's suppressedItemsCount), per run.
    suppressed: list[int] = field(default_factory=list)
    # Rules that could not run (a query the engine refuses): the others still ran.
    failures: list[RuleRunError] = field(default_factory=list)

    @property
    def alerts(self) -> list[dict[str, object]]:
        return [a for _, run in self.runs for a in run.alerts]

    @property
    def warnings(self) -> list[str]:
        out: list[str] = []
        for rule, run in self.runs:
            for w in run.warnings:
                line = f"{rule.label} run at {run.window.run_id[24:]}: {w}"
                if line not in out:
                    out.append(line)
        return out


def detect(
    rules: Sequence[Rule],
    backend: QueryBackend,
    schedule: Schedule,
    *,
    exceptions: Sequence[ExceptionList] = (),
    evidence: bool = True,
    space: str = "default",
    on_run: OnRun | None = None,
    history: QueryBackend | None = None,
    detectors: MutableMapping[str, Detector] | None = None,
) -> DetectReport:
    """Every run of every rule. A rule the engine refuses (its query, its exceptions) is
    recorded in `failures` and the other rules still run; `on_run` is called after each run.
    `history`: events from before the period, read only by native detectors, only to learn.
    `detectors`: native detectors by rule id, restored from a saved state and left there with
    what they learned (engine.native.state saves them)."""
    report = DetectReport()
    for rule in rules:
        windows = schedule.windows(rule)
        try:
            if rule.native:
                _detect_native(
                    rule, windows, backend, history, space, report, on_run, detectors, exceptions
                )
            else:
                _detect_rule(rule, windows, backend, exceptions, evidence, space, report, on_run)
        except ReconwatchError as exc:
            report.failures.append(RuleRunError(rule.label, exc))
    return report


def _detect_native(
    rule: Rule,
    windows: list[RunWindow],
    backend: QueryBackend,
    history: QueryBackend | None,
    space: str,
    report: DetectReport,
    on_run: OnRun | None,
    detectors: MutableMapping[str, Detector] | None,
    exceptions: Sequence[ExceptionList],
) -> None:
    """A native detector over the whole span at once (its state carries across runs); its
    findings come out as the runs that would have seen them. The events an exception matches
    never reach it, as they never reach an ES|QL rule's query."""
    from reconwatch.engine.native.run import run_native

    runs = run_native(
        rule,
        windows,
        backend,
        history=history,
        space=space,
        detectors=detectors,
        exceptions=exceptions,
    )
    for run in runs:
        report.runs.append((rule, run))
        report.suppressed.append(0)
        if on_run is not None:
            on_run(rule, run)


OnRun = Callable[[Rule, RunResult], None]


def _detect_rule(
    rule: Rule,
    windows: list[RunWindow],
    backend: QueryBackend,
    exceptions: Sequence[ExceptionList],
    evidence: bool,
    space: str,
    report: DetectReport,
    on_run: OnRun | None,
) -> None:
    executor = RuleExecutor(rule, backend, exceptions=exceptions, space=space, evidence=evidence)
    suppressor = Suppressor.for_rule(rule, space)
    notes = _group_by_notes(rule, executor, backend) if suppressor is not None else []
    firsts = executor.grouped(windows)
    # Runs in time order: a run's suppression looks at the alerts the earlier ones wrote.
    for i, window in enumerate(windows):
        run = executor.run(window, firsts[i] if firsts is not None else None)
        suppressed = 0
        if suppressor is not None:
            run, suppressed = suppress_run(suppressor, executor, run)
        if notes:
            run, notes = replace(run, warnings=[*notes, *run.warnings]), []
        report.runs.append((rule, run))
        report.suppressed.append(suppressed)
        if on_run is not None:
            on_run(rule, run)


@dataclass(frozen=True, slots=True)
class EventSpan:
    """How many events a rule's FROM reads and the times they span (on the run filter's field)."""

    events: int
    first: datetime | None
    last: datetime | None

    def overlaps(self, window: RunWindow) -> bool:
        if self.first is None or self.last is None:
            return False
        return self.first <= window.end and self.last >= window.start


def event_span(rule: Rule, backend: QueryBackend, now: datetime) -> EventSpan | None:
    """The events the rule's source reads, counted with their first and last time on the
    field the run filter uses (timestamp_override, falling back to @timestamp); None if the
    source has no such time field."""
    parsed = parse(rule.query)
    stamp = ast.Field("@timestamp")
    times: list[ast.Expr] = [stamp]
    if rule.timestamp_override not in (None, "@timestamp"):
        times.insert(0, call("coalesce", ast.Field(str(rule.timestamp_override)), stamp))
    t = ast.Field("rw_t")
    stats = ast.Stats(
        (
            ast.AggField("rw_n", ast.Call("count", (), star=True)),
            ast.AggField("rw_first", call("min", t)),
            ast.AggField("rw_last", call("max", t)),
        )
    )
    for ts in times:
        query = with_commands(
            parsed, [parsed.commands[0], ast.Eval((ast.Assign("rw_t", ts),)), stats]
        )
        try:
            rows = backend.run(query, now=now).as_dicts()
        except ReconwatchError:
            continue  # no such field in this source: try @timestamp alone
        row = rows[0] if rows else {}
        first, last = row.get("rw_first"), row.get("rw_last")
        return EventSpan(
            int(row.get("rw_n") or 0),  # type: ignore[call-overload]
            first if isinstance(first, datetime) else None,
            last if isinstance(last, datetime) else None,
        )
    return None


def empty_runs(rule: Rule, backend: QueryBackend, windows: Sequence[RunWindow]) -> list[RunWindow]:
    """The runs whose window [start, end] holds none of the events the rule's source reads (on
    the run filter's time field). The events' times are read once, as the first and last of
    each minute: a window shorter than a minute that falls between two events of one minute
    is taken to hold them."""
    if not windows:
        return []
    buckets = _minute_buckets(rule, backend, windows[-1].run_at)
    if buckets is None:
        return []
    starts = [first for first, _last in buckets]
    out: list[RunWindow] = []
    for window in windows:
        # Buckets are disjoint and in time order: the last one starting by the window's end
        # has the latest events of all that start by then.
        i = bisect.bisect_right(starts, window.end)
        if i == 0 or buckets[i - 1][1] < window.start:
            out.append(window)
    return out


def _minute_buckets(
    rule: Rule, backend: QueryBackend, now: datetime
) -> list[tuple[datetime, datetime]] | None:
    """(first, last) event time of every minute that holds events, in time order."""
    stamp = "`@timestamp`"
    if rule.timestamp_override not in (None, "@timestamp"):
        stamp = f"coalesce({quote_name(str(rule.timestamp_override))}, `@timestamp`)"
    try:
        text = (
            f"{render_command(parse(rule.query).commands[0])} | eval rw_t = {stamp} "
            "| where rw_t is not null "
            "| stats rw_first = min(rw_t), rw_last = max(rw_t) by rw_m = date_trunc(1 minute, rw_t)"
        )
        rows = backend.run(parse(text), now=now).as_dicts()
    except ReconwatchError:
        return None
    out: list[tuple[datetime, datetime]] = []
    for row in rows:
        first, last = row.get("rw_first"), row.get("rw_last")
        if isinstance(first, datetime) and isinstance(last, datetime):
            out.append((first, last))
    return sorted(out)


def suppress_run(
    suppressor: Suppressor, executor: RuleExecutor, run: RunResult
) -> tuple[RunResult, int]:
    """Kibana's suppression path for one run: only created alerts are written, so only their ids
    stay known to later runs (a suppressed event seen again is judged by its time instead)."""
    outcome = suppressor.apply(run.window, run.alerts)
    executor.seen.difference_update(outcome.unwritten_ids)
    warnings = [w for w in run.warnings if w != MAX_SIGNALS_WARNING]
    if outcome.truncated:
        warnings.append(SUPPRESSION_MAX_SIGNALS_WARNING)
    return replace(run, alerts=outcome.created, warnings=warnings), outcome.suppressed


def _group_by_notes(rule: Rule, executor: RuleExecutor, backend: QueryBackend) -> list[str]:
    """An aggregating alert holds only the query's columns: a group_by field outside them is
    missing from every alert (Kibana's rule form offers only the columns)."""
    config = rule.suppression
    if config is None or not executor.aggregating:
        return []
    try:
        columns = {c.name for c in backend.columns(parse(rule.query))}
    except ReconwatchError:
        return []  # the run itself reports what is wrong with the query
    return [
        f"alert suppression: group_by field {name!r} is not a column of the query's result, "
        "so it is missing (null) in every alert"
        for name in config.group_by
        if name not in columns
    ]
