"""The plan on Spark: row-local steps and STATS groups on the workers, the rest on the driver.

The leading FILTER/EVAL/KEEP/DISSECT/GROK steps run in every partition; a STATS right after them
is shuffled by group key and aggregated per group; a LIMIT or SORT + LIMIT right after them is
applied per partition first. What follows (usually a few rows) runs on the driver. Every piece
runs the shared interpreter, and rows and warnings are put back in input order, so the answer
is the reference executor's, row for row and warning for warning.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from reconwatch.backends.spark import frames, session
from reconwatch.backends.spark.stages import (
    AFTER_ROWS,
    GROUP,
    ROW,
    WARNING,
    Failure,
    GroupStage,
    RowStage,
    TaggedWarnings,
    key_types,
)
from reconwatch.backends.spark.translate import Overflow
from reconwatch.errors import QueryError, QueryLimitError, ReconwatchError
from reconwatch.evaluate.aggregates import AggSpec
from reconwatch.evaluate.expressions import EvalContext, Warnings, compile_expr
from reconwatch.evaluate.pipeline import budgeted, hash_order, prune_evals, run_step
from reconwatch.evaluate.pipeline import execute as interpret
from reconwatch.plan import limits
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import Result
from reconwatch.plan.scan import ScanSource

# Steps a partition runs on its own rows, in one pass.
ROW_LOCAL = (p.Filter, p.Eval, p.Project, p.Extract)
# Rows per pickled chunk when the driver hands a source's rows to Spark.
CHUNK = 4096


class SparkExecutionError(ReconwatchError):
    """Spark failed while running a query (a lost cluster, a bug), reported in one line."""


def execute(plan: p.Plan, source: ScanSource | None, now: datetime) -> Result:
    """Run `plan` on the process's Spark session over `source` at query time `now`."""
    # Refusals and compile-time errors surface here, by name, before any job starts.
    interpret(p.Plan(plan.source, plan.steps, plan.query), [], now)
    steps = prune_evals(plan)
    seconds = limits.current().seconds
    # The whole query's budget: the jobs' (cancelled by _Budget) and the driver's steps after.
    deadline = limits.current().deadline()
    budget = _Budget(session.context(), seconds)
    try:
        with budget:
            return _run(plan, steps, source, now, deadline)
    except (QueryError, QueryLimitError):
        raise
    except Exception as exc:
        if budget.expired:
            raise limits.over_budget(seconds) from None
        raise SparkExecutionError(_one_line(exc)) from exc
    finally:
        if source is not None and isinstance(plan.source, p.Source):
            source.counted_later(source.selected_inputs(plan.source.indices))


def _run(
    plan: p.Plan,
    steps: list[p.Step],
    source: ScanSource | None,
    now: datetime,
    deadline: limits.Deadline,
) -> Result:
    """The translated steps in Spark SQL (frames), then the rest in the interpreter: on the
    workers while row-local (and a STATS right after), then on the driver."""
    fed = False
    chunks: Any = None
    if isinstance(plan.source, p.Source) and source is not None:
        try:
            done = frames.run(
                plan,
                steps,
                source,
                now,
                pruned_days(plan, now),
                lambda: _source_reader(plan, source, now),
            )
        except Overflow:
            frames.LOG.debug("spark: an integer SUM overflows: the interpreter runs the plan")
            done = None
        if isinstance(done, frames.Rows):
            return _finish(plan, done.rest, done.rows, [], now, deadline)
        if isinstance(done, frames.Chunks):
            chunks, steps, fed = done.rdd, done.rest, True
    if chunks is None:
        chunks = _source_chunks(plan, source, now)
    split = next((i for i, s in enumerate(steps) if not isinstance(s, ROW_LOCAL)), len(steps))
    prefix, rest = tuple(steps[:split]), list(steps[split:])
    if rest and isinstance(rest[0], p.Aggregate):
        rows, failures = _aggregate(plan, prefix, rest[0], chunks, now, fed)
        return _finish(plan, rest[1:], rows, failures, now, deadline)
    stage = RowStage(plan.source, prefix, plan.query, now, fed=fed, **_pushdown(rest))
    records = chunks.mapPartitions(stage.run).collect()
    found = sorted((r for r in records if r[0] == ROW), key=_record_order)
    failures = [r[1] for r in records if r[0] == WARNING]
    return _finish(plan, rest, [(r[1], r[2]) for r in found], failures, now, deadline)


class _Budget:
    """The query's time budget (--timeout) on Spark: its jobs run in a job group of their own,
    cancelled when the budget runs out (the collect then fails and says why)."""

    def __init__(self, sc: Any, seconds: float | None) -> None:
        self.sc = sc
        self.seconds = seconds
        self.group = f"reconwatch-{uuid.uuid4().hex}"
        self.expired = False
        self.timer: threading.Timer | None = None

    def __enter__(self) -> _Budget:
        if self.seconds is not None:
            self.sc.setJobGroup(self.group, "reconwatch query", interruptOnCancel=True)
            self.timer = threading.Timer(self.seconds, self._cancel)
            self.timer.daemon = True
            self.timer.start()
        return self

    def _cancel(self) -> None:
        self.expired = True
        self.sc.cancelJobGroup(self.group)

    def __exit__(self, kind: object, *rest: object) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.sc.setLocalProperty("spark.jobGroup.id", None)
        if self.expired and kind is None:
            raise limits.over_budget(self.seconds)  # it finished, but past its budget


def _pushdown(rest: Sequence[p.Step]) -> dict[str, Any]:
    """What of the next steps a partition may apply to its own rows first."""
    if rest and isinstance(rest[0], p.Limit):
        return {"limit": rest[0].count}
    if len(rest) >= 2 and isinstance(rest[0], p.Sort) and isinstance(rest[1], p.Limit):
        return {"top": (rest[0], rest[1])}
    return {}


def _record_order(record: tuple[Any, ...]) -> float:
    order: float = record[1]
    return order


def _source_chunks(plan: p.Plan, source: ScanSource | None, now: datetime) -> Any:
    """An RDD of chunks of (ord, row): the source's rows in input order, or one row for ROW."""
    sc = session.context()
    if not isinstance(plan.source, p.Source) or source is None:
        return sc.parallelize([[(0, {})]], 1)
    found = _source_reader(plan, source, now)
    if not isinstance(found, list):
        return found
    return sc.parallelize(found, max(1, min(len(found), sc.defaultParallelism)))


def _source_reader(plan: p.Plan, source: ScanSource, now: datetime) -> Any:
    """The workers' RDD of chunks of (ord, row), or the chunks the driver read (a list) when
    the source has no reader on the workers."""
    return source_reader(plan, source, pruned_days(plan, now))


def source_reader(plan: p.Plan, source: ScanSource, days: Any) -> Any:
    """_source_reader over the files of `days` (a range as pruned_days gives, None: all)."""
    assert isinstance(plan.source, p.Source)
    names = [f.name for f in plan.source.fields]
    inputs = source.selected_inputs(plan.source.indices)
    rdd = source.spark_chunks(session.session(), names, inputs, plan.source.metadata, days)
    if rdd is not None:
        return rdd
    return _chunked(enumerate(source.rows(names, inputs, plan.source.metadata)))


def _chunked(pairs: Iterable[tuple[int, Mapping[str, object]]]) -> list[list[Any]]:
    out: list[list[Any]] = []
    it = iter(pairs)
    while chunk := list(itertools.islice(it, CHUNK)):
        out.append([(i, dict(row)) for i, row in chunk])
    return out


def _aggregate(
    plan: p.Plan,
    prefix: tuple[p.Step, ...],
    step: p.Aggregate,
    chunks: Any,
    now: datetime,
    fed: bool = False,
) -> tuple[list[tuple[float, dict[str, object]]], list[Failure]]:
    """STATS on the workers: keys per row, a shuffle by key, the aggregates per group."""
    needed = sorted(
        set().union(
            *(p.refs(a) for _, agg in step.aggregates for a in (*agg.args, agg.filter) if a)
        )
    )
    stage = RowStage(
        plan.source, prefix, plan.query, now, keys=step.groups, needed=tuple(needed), fed=fed
    )
    grouper = GroupStage(step.aggregates, plan.query, now)
    keyed = chunks.mapPartitions(stage.run).map(_shuffle_key)
    if keyed.getNumPartitions() == 1:
        # One partition holds every group already: no exchange (Spark plans none either).
        records = keyed.mapPartitions(_grouped_here(grouper)).collect()
    else:
        partitions = min(session.SHUFFLE_PARTITIONS, keyed.getNumPartitions())
        records = keyed.groupByKey(partitions).mapPartitions(_passing(grouper)).collect()
    failures = [r[1] for r in records if r[0] == WARNING]
    found = sorted((r for r in records if r[0] == GROUP), key=_record_order)
    groups: dict[tuple[object, ...], tuple[tuple[object, ...], list[object]]] = {}
    for _, _first, combo, results, ident in found:
        groups[ident] = (tuple(combo), results)
    if not step.groups and not groups:
        ctx = EvalContext(now=now, source=plan.query, warnings=TaggedWarnings(2, AFTER_ROWS))
        groups[()] = ((), [AggSpec(agg, ctx).new().result() for _, agg in step.aggregates])
    names = [name for name, _ in step.aggregates]
    keys = [name for name, _ in step.groups]
    rows = [
        (
            AFTER_ROWS,
            {**dict(zip(names, results, strict=True)), **dict(zip(keys, combo, strict=True))},
        )
        for combo, results in hash_order(groups, key_types(step))
    ]
    return rows, failures


def _shuffle_key(record: tuple[Any, ...]) -> tuple[Any, Any]:
    """Group records by their key values; warnings travel under a key no group has."""
    if record[0] == GROUP:
        return (record[1], record[2])
    return ((WARNING,), record[1])


class _passing:
    """The group stage, letting the warnings that travelled with the rows through."""

    def __init__(self, grouper: GroupStage) -> None:
        self.grouper = grouper

    def __call__(self, items: Iterable[tuple[Any, Iterable[Any]]]) -> Iterator[tuple[Any, ...]]:
        groups: list[tuple[Any, Iterable[Any]]] = []
        for key, members in items:
            if key == (WARNING,):
                yield from ((WARNING, f) for f in members)
            else:
                groups.append((key, members))
        yield from self.grouper.run(groups)


class _grouped_here(_passing):
    """The group stage over a partition's own (key, member) pairs, grouped in the worker."""

    def __call__(self, items: Iterable[tuple[Any, Any]]) -> Iterator[tuple[Any, ...]]:
        members: dict[Any, list[Any]] = {}
        for key, member in items:
            members.setdefault(key, []).append(member)
        return super().__call__(iter(members.items()))


def _finish(
    plan: p.Plan,
    rest: Sequence[p.Step],
    rows: list[tuple[float, dict[str, object]]],
    failures: list[Failure],
    now: datetime,
    deadline: limits.Deadline,
) -> Result:
    """The remaining steps on the driver, within what is left of the query's time budget, then
    the warnings of every stage in one-pass order."""
    tw = TaggedWarnings(2)
    ctx = EvalContext(now=now, source=plan.query, warnings=tw)
    pulled = {"last": AFTER_ROWS, "done": False}

    def feed() -> Iterator[dict[str, object]]:
        for ord_, row in rows:
            tw.ord = pulled["last"] = ord_
            yield row
        tw.ord = AFTER_ROWS
        pulled["done"] = True

    stream: Iterator[dict[str, object]] = budgeted(feed(), deadline)
    for step in rest:
        stream = budgeted(run_step(step, stream, ctx), deadline)
    names = [c.name for c in plan.columns]
    out = [tuple(row.get(n) for n in names) for row in stream]
    if rest and not pulled["done"]:
        # A LIMIT stopped pulling: a one-pass run never read the rows after the last one pulled.
        cutoff = pulled["last"] if rows and pulled["last"] != AFTER_ROWS else -1
        failures = [f for f in failures if f[0][0] <= cutoff]
    return Result(plan.columns, out, [*plan.warnings, *merge([*failures, *tw.failures()])])


def merge(failures: Iterable[Failure]) -> list[str]:
    """Warnings from every worker as one pass records them: sites in the order they first
    failed, per site the first 20 distinct reasons."""
    warnings = Warnings()
    for _tag, key, reason in sorted(failures, key=_failure_order):
        warnings.record(key, reason)
    return warnings.as_list()


def _failure_order(failure: Failure) -> tuple[float, int, int, int]:
    return failure[0]


def _one_line(exc: Exception) -> str:
    """Spark's errors carry the JVM's or the worker's whole trace: keep the telling line."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    errors = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return f"query failed in Spark: {(errors[-1] if errors else lines[0] if lines else type(exc).__name__)[:300]}"


# ---------------------------------------------------------------------------------------------
# Partition pruning: the days a leading WHERE on @timestamp lets through


_BOUNDS = {"gt": "low", "gte": "low", "lt": "high", "lte": "high"}
_MIRROR = {"gt": "lt", "gte": "lte", "lt": "gt", "lte": "gte"}
# Operators that cannot fail on single values of matching types: a row they drop warns nowhere.
_QUIET = frozenset(
    {"eq", "neq", "lt", "lte", "gt", "gte", "and", "or", "not", "is_null", "is_not_null", "in"}
)


def pruned_days(plan: p.Plan, now: datetime) -> tuple[date | None, date | None] | None:
    """The UTC days a row must fall in to pass the plan's leading WHEREs on @timestamp (KEEP,
    DROP and RENAME may come between). Only WHEREs that cannot warn count (single-valued fields,
    plain comparisons): a row in a skipped file then neither matches nor warns, exactly as if
    it had been read."""
    if not isinstance(plan.source, p.Source):
        return None
    # A column of the current step -> the source field it is, while only projections ran.
    fields = {f.name: f.name for f in plan.source.fields}
    single = {f.name for f in plan.source.fields if not f.multivalued}
    low: datetime | None = None
    high: datetime | None = None
    for step in plan.steps:
        if isinstance(step, p.Project):
            fields = {out: fields[src] for out, src in step.mapping if src in fields}
            continue
        if not isinstance(step, p.Filter):
            break
        quiet = {name for name, field in fields.items() if field in single}
        if not _quiet(step.condition, quiet):
            break
        for term in p.flatten("and", step.condition):
            bound = _bound(term, now, fields)
            if bound is None:
                continue
            side, when = bound
            if side == "low":
                low = when if low is None else max(low, when)
            else:
                high = when if high is None else min(high, when)
    if low is None and high is None:
        return None
    return (low.date() if low else None, high.date() if high else None)


def _quiet(expr: p.Expr, single: set[str]) -> bool:
    if isinstance(expr, p.Const):
        return True
    if isinstance(expr, p.Ref):
        return expr.name in single
    if not expr.args or all(_constant(a) for a in expr.args):
        return True  # folded once at planning: it warns (or not) whatever the rows
    return expr.fn in _QUIET and all(_quiet(a, single) for a in expr.args)


def _constant(expr: p.Expr) -> bool:
    if isinstance(expr, p.Ref):
        return False
    return isinstance(expr, p.Const) or all(_constant(a) for a in expr.args)


def _bound(term: p.Expr, now: datetime, fields: dict[str, str]) -> tuple[str, datetime] | None:
    """("low" | "high", time) for `@timestamp <op> constant` (either way round)."""
    if not isinstance(term, p.Call) or term.fn not in _BOUNDS or len(term.args) != 2:
        return None
    left, right = term.args
    fn = term.fn
    if isinstance(right, p.Ref) and _constant(left):
        left, right, fn = right, left, _MIRROR[fn]
    if not (isinstance(left, p.Ref) and fields.get(left.name) == "@timestamp"):
        return None
    if not _constant(right):
        return None
    value = compile_expr(right, EvalContext(now=now))({})
    if not isinstance(value, datetime):
        return None
    return _BOUNDS[fn], value
