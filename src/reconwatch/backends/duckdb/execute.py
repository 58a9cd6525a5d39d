"""Runs a compiled plan on an embedded DuckDB connection and returns plan-convention Python values."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TypeVar

import duckdb

from reconwatch.backends.duckdb.compile import SOURCE_TABLE, Compiled, compile_plan
from reconwatch.backends.duckdb.expr import literal
from reconwatch.backends.duckdb.warnings import WarningSink
from reconwatch.errors import ReconwatchError
from reconwatch.plan import limits, values
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import Result
from reconwatch.plan.prune import pruned
from reconwatch.plan.scan import RetryScan, ScanSource
from reconwatch.types import DataType as T

R = TypeVar("R")


class ExecutionError(ReconwatchError):
    """DuckDB failed while running a query (a bug or an unsupported corner), reported in one line."""


def compile_for(plan: p.Plan, dataset: ScanSource | None, now: datetime) -> Compiled:
    now_sql = literal(values.to_utc_millis_precision(now), T.DATETIME)
    lists: dict[str, bool] = {}
    inputs: list[int] = []
    if isinstance(plan.source, p.Source) and dataset is not None:
        for f in plan.source.fields:
            col = dataset.column(f.name)
            lists[f.name] = bool(col is not None and col.multivalued)
        inputs = dataset.selected_inputs(plan.source.indices)
    return compile_plan(plan, now_sql, lists, inputs)


def connect(*, helpers: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the current memory limit and the rw_* helpers registered
    (`helpers=False`: registered as the statements run through this module first call them,
    so a query calling none of them does not load numpy)."""
    # No progress bar: it would be drawn on the user's stdout, among the results.
    con = duckdb.connect(config={"memory_limit": limits.current().memory})
    con.execute("SET enable_progress_bar = false")
    if helpers:
        from reconwatch.backends.duckdb import udf

        udf.register(con)
    return con


def execute(
    plan: p.Plan,
    dataset: ScanSource | None,
    now: datetime,
    con: duckdb.DuckDBPyConnection | None = None,
) -> Result:
    """Run `plan` over `dataset` with `now` as the query time (on `con` when given)."""
    # Catalog columns nothing reads or returns would each be a NULL column of the first CTE:
    # ~190 for an ECS index, ~6 ms of DuckDB's planning for nothing.
    plan = pruned(plan)
    compiled = compile_for(plan, dataset, now)
    own = con is None
    con = connect(helpers=False) if con is None else con
    sink = WarningSink()
    try:
        with _recording(con, compiled, sink), _limited(con):
            rows = _run(con, plan, dataset, compiled.sql).fetchall()
    finally:
        if own:
            con.close()
    out = _converted(rows, [c.type for c in compiled.columns])
    return Result(compiled.columns, out, [*plan.warnings, *sink.finish()])


@contextmanager
def _recording(
    con: duckdb.DuckDBPyConnection, compiled: Compiled, sink: WarningSink
) -> Iterator[None]:
    """Route the query's rw_warn calls to `sink` (the SQL finds it by getvariable('rw_query'))."""
    if not compiled.warning_sites:
        yield
        return
    from reconwatch.backends.duckdb import udf

    sink.start(compiled.warning_sites)
    token = id(sink)
    udf.ACTIVE_SINKS[token] = sink
    try:
        con.execute(f"SET VARIABLE rw_query = {token}")
        yield
    finally:
        udf.ACTIVE_SINKS.pop(token, None)


def materialize(
    plan: p.Plan,
    dataset: ScanSource | None,
    now: datetime,
    con: duckdb.DuckDBPyConnection,
    table: str,
) -> Compiled:
    """Run `plan` into the temporary table `table` on `con`; its columns are the plan's."""
    compiled = compile_for(plan, dataset, now)
    with _limited(con):
        _run(con, plan, dataset, f"CREATE OR REPLACE TEMP TABLE {table} AS {compiled.sql}")
    return compiled


@contextmanager
def _limited(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block under the current limits: DuckDB's memory_limit set on `con` (a caller's
    connection too), and a watchdog thread that interrupts the query once its budget is spent.
    Either limit reached is a QueryLimitError; DuckDB's other errors pass through."""
    current = limits.current()
    con.execute(f"SET memory_limit = {literal(current.memory, T.KEYWORD)}")
    fired, done = threading.Event(), threading.Event()
    watchdog = None
    if current.seconds is not None:
        watchdog = threading.Thread(
            target=_interrupt_after, args=(con, current.seconds, fired, done), daemon=True
        )
        watchdog.start()
    try:
        yield
    except (ExecutionError, duckdb.Error) as exc:
        cause = exc.__cause__ if isinstance(exc, ExecutionError) else exc
        if fired.is_set() and isinstance(cause, duckdb.InterruptException):
            raise limits.over_budget(current.seconds) from None
        if isinstance(cause, duckdb.OutOfMemoryException):
            raise limits.out_of_memory(current.memory) from None
        raise
    finally:
        done.set()
        if watchdog is not None:
            watchdog.join()
    if fired.is_set():  # the budget ran out, though the query finished before it noticed
        raise limits.over_budget(current.seconds)


# How often the watchdog repeats its interrupt past the budget: one sent before the query had
# started (while the source was being registered) would be lost.
_REPEAT_INTERRUPT = 0.05


def _interrupt_after(
    con: duckdb.DuckDBPyConnection, seconds: float, fired: threading.Event, done: threading.Event
) -> None:
    if done.wait(seconds):
        return
    fired.set()
    while not done.is_set():
        con.interrupt()
        done.wait(_REPEAT_INTERRUPT)


def _run(
    con: duckdb.DuckDBPyConnection, plan: p.Plan, dataset: ScanSource | None, sql: str
) -> duckdb.DuckDBPyConnection:
    inputs: list[int] = []
    if isinstance(plan.source, p.Source):
        source = plan.source
        _with_helpers(con, lambda: _register_source(con, plan, source, dataset))
        if dataset is not None:
            inputs = dataset.selected_inputs(plan.source.indices)
    try:
        cursor = _with_helpers(con, lambda: con.execute(sql))
    except duckdb.Error as exc:
        if dataset is not None and dataset.scan_failed(str(exc), inputs):
            raise RetryScan(str(exc)) from exc
        msg = f"query failed in DuckDB: {str(exc).splitlines()[0]}"
        raise ExecutionError(msg) from exc
    if dataset is not None:
        dataset.counted_later(inputs)
    return cursor


def _with_helpers(con: duckdb.DuckDBPyConnection, action: Callable[[], R]) -> R:
    """`action`, again after registering each rw_* helper it failed for lacking (DuckDB binds
    a statement, and so finds a function missing, before it runs any of it). The helpers'
    module (~5 ms of imports) is loaded only when a statement lacks one."""
    registered = 0
    while True:
        try:
            return action()
        except duckdb.CatalogException as exc:
            from reconwatch.backends.duckdb import udf

            name = udf.missing_function(exc)
            if name is None or registered >= len(udf.FUNCTIONS):
                raise
            udf.register(con, [name])
            registered += 1


def _register_source(
    con: duckdb.DuckDBPyConnection, plan: p.Plan, src: p.Source, dataset: ScanSource | None
) -> None:
    names = [f.name for f in src.fields]
    meta = tuple(m for m in src.metadata)
    if dataset is None:
        import pyarrow as pa

        schema = pa.schema([pa.field("__src", pa.int32())])
        table = schema.empty_table()
        con.register(SOURCE_TABLE, table)
        return
    inputs = dataset.selected_inputs(src.indices)
    if dataset.register_source(con, names, inputs, meta, filtered_fields(plan)):
        return
    cols = [dataset.column(n) or p.Column(n, T.KEYWORD) for n in names]
    schema = dataset.arrow_schema(cols, meta)
    import pyarrow as pa

    reader = pa.RecordBatchReader.from_batches(schema, dataset.batches(names, inputs, meta))
    con.register(SOURCE_TABLE, reader)


def filtered_fields(plan: p.Plan) -> set[str]:
    """Source fields a WHERE reads (through EVAL, RENAME and STATS keys). A reader checks these
    for every event before the filters; the others it may check only for the events the filters
    keep, as their values matter for no other (fast.source_select). Any answer is correct; a
    field missed here only makes its filter run after the conversions."""
    wanted: set[str] = set()
    for step in reversed(plan.steps):
        if isinstance(step, p.Filter):
            wanted |= p.refs(step.condition)
        elif isinstance(step, p.Eval):
            for name, expr in step.assignments:
                if name in wanted:
                    wanted |= p.refs(expr)
        elif isinstance(step, p.Project):
            wanted |= {old for new, old in step.mapping if new in wanted}
        elif isinstance(step, p.Aggregate):
            # Later filters read its outputs; only a key's filter can reach the events.
            keys = [expr for name, expr in step.groups if name in wanted]
            wanted = set().union(*(p.refs(e) for e in keys)) if keys else set()
    fields = plan.source.fields if isinstance(plan.source, p.Source) else ()
    return wanted & {f.name for f in fields}


def _converted(rows: list[tuple[object, ...]], types: list[T]) -> list[tuple[object, ...]]:
    """The rows with each cell as the result holds it (`_converter`), the first len(types)
    cells of each. Column by column: a column whose Python types need no conversion (the
    usual case: text, numbers of their own type, NULLs) is kept as DuckDB gave it, which spares
    a call per cell (an evidence query's 10,000 rows x 15 columns: ~0.1 CPU s)."""
    if not types or not rows:
        return [() for _ in rows]
    columns = list(zip(*rows, strict=False))[: len(types)]
    out = [
        col if not _needs_conversion(set(map(type, col)), t) else tuple(map(_converter(t), col))
        for col, t in zip(columns, types, strict=False)
    ]
    return list(zip(*out, strict=False))


def _needs_conversion(kinds: set[type], t: T) -> bool:
    """Whether `_converter(t)` changes a value of one of these Python types."""
    for kind in kinds:
        if issubclass(kind, list | datetime):
            return True
        if issubclass(kind, float) and t in (T.INTEGER, T.LONG):
            return True
        if t is T.BOOLEAN and issubclass(kind, int) and not issubclass(kind, bool):
            return True
    return False


def _converter(t: T):  # type: ignore[no-untyped-def]
    def one(v: object) -> object:
        if isinstance(v, datetime):
            return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
        if isinstance(v, float) and t in (T.INTEGER, T.LONG):
            return int(v)
        if t is T.BOOLEAN and isinstance(v, int) and not isinstance(v, bool):
            return bool(v)
        return v

    def cell(v: object) -> object:
        if isinstance(v, list):
            return values.from_list(one(x) for x in v)
        return one(v)

    return cell
