"""The engine facade: ES|QL text and a dataset in, a Result out (the CLI, rules engine and web call it)."""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from reconwatch import __version__
from reconwatch.backends import EXECUTORS, executor, runs_executor
from reconwatch.errors import QuerySemanticError
from reconwatch.esql import ast
from reconwatch.esql.analyze import analyze
from reconwatch.esql.parser import parse
from reconwatch.ingest.dataset import Dataset
from reconwatch.plan import limits
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import NO_SPAN, Aggregate, Column, Limit, Plan, Source
from reconwatch.plan.prune import pruned
from reconwatch.plan.prune import unread_columns as _unread_catalog_columns
from reconwatch.plan.prune import without_columns as _without_columns
from reconwatch.plan.scan import RetryScan

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

    from reconwatch.backends.stream.batch import StatsScan

BACKENDS = tuple(EXECUTORS)
MAX_RETRIES = 64

# Elasticsearch's `Warning` response header (RFC 7234 5.5): code 299, an agent token, then the
# text as a quoted string. The agent names reconwatch where Elasticsearch names its version and
# build, so a client's `299 Elasticsearch-\S+ "..."` pattern still reads it.
WARNING_AGENT = f"Elasticsearch-reconwatch-{__version__}"
# Characters a quoted warn-text holds as they are (tab, space, printable ASCII, U+0080-U+00FF);
# `%` is encoded too, so that a decoder can tell an escape from text.
_PLAIN = frozenset([0x09, 0x20, 0x21, 0x23, 0x24, *range(0x26, 0x7F), *range(0x80, 0x100)]) - {
    0x22,
    0x5C,
}


def run_query(
    text: str | ast.Query, dataset: Dataset, *, now: datetime, backend: str = "duckdb"
) -> Result:
    """Compile and run ES|QL text over a dataset on an executor by name, `now` being the query time."""
    if backend not in EXECUTORS:
        executor(backend)  # a UsageError naming the known ones, before anything is read
    # Each retry moves a file to the Python reader, marks a field multivalued or completes the
    # field scan: a bounded number of times.
    for attempt in range(MAX_RETRIES):
        plan = compile_on(text, dataset)
        if attempt == 0 and backend == "duckdb":
            scanned = scan_route(plan, dataset, now)
            if scanned is not None:
                return scanned
        try:
            return executor(backend)(plan, dataset, now)
        except RetryScan:
            continue
    raise _unsettled()


def run_queries(
    queries: Sequence[tuple[ast.Query, datetime]], dataset: Dataset, *, backend: str
) -> list[Result] | None:
    """Queries that differ only in a run's constants (a rule's runs: window bounds, now), each
    at its own time, in one pass over the events where the executor can (Spark: one grouped
    job): each query's Result, as run_query gives it; None when the executor cannot run them
    together (the caller then runs each)."""
    together = runs_executor(backend)
    if together is None or len(queries) < 2:
        return None
    for _attempt in range(MAX_RETRIES):
        plans = [compile_on(text, dataset) for text, _now in queries]
        try:
            return together(plans, dataset, [now for _text, now in queries])
        except RetryScan:
            continue
    raise _unsettled()


# Bytes read per block by the scan route; a line longer than this declines it (DuckDB's
# reader takes lines up to 16 MB, and hands a longer one's file to the Python reader).
SCAN_BLOCK = 8 << 20


def scan_route(plan: Plan, dataset: Dataset, now: datetime) -> Result | None:
    """A STATS query over plain NDJSON files answered by the stream's compiled line scan
    (backends/stream/batch.py), all or nothing: None when any file or line needs DuckDB's
    reader, which then runs the query from the start (same rows, warnings and bad-event
    reports: the route only answers when nothing differs). RECONWATCH_SCAN=0 turns it off."""
    if os.environ.get("RECONWATCH_SCAN", "1") == "0" or not isinstance(plan.source, Source):
        return None
    if not any(isinstance(step, Aggregate) for step in plan.steps):
        return None  # no STATS (a rule's rows for detect): nothing of the scan is loaded
    if limits.current() != limits.QueryLimits():
        return None  # a memory limit or time budget: DuckDB's executor enforces them
    plan = pruned(plan)
    assert isinstance(plan.source, Source)
    names = [f.name for f in plan.source.fields]
    files = dataset.scan_files(plan.source.indices, names)
    if not files:
        return None
    from reconwatch.backends.stream import batch

    try:
        scan = batch.StatsScan(plan, [c for _path, checks in files for c in checks])
        scan.at(now)
        _scan_pieces(scan, [(path, 0, path.stat().st_size) for path, _checks in files])
        result = scan.result(now)
    except batch.Declined:
        return None
    except (ArithmeticError, LookupError, TypeError, ValueError, OSError):
        # Not expected (the tests compare the route with DuckDB), but the route is only a
        # faster way to the same answer: DuckDB still gives it.
        return None
    dataset.counted_later(dataset.selected_inputs(plan.source.indices))
    return result


# Inputs of at least this many bytes are scanned by two processes (a fork reads the second
# half), as DuckDB's reader uses two threads; below it the fork costs more than it saves.
PARALLEL_BYTES = 64 << 20

Piece = tuple[Path, int, int]  # a file's bytes [start, stop), whole lines


def _scan_pieces(scan: StatsScan, pieces: list[Piece]) -> None:
    """Feed every line of the pieces to `scan`, in order: the second half in a forked child
    when there is enough to share (its partial result merged after the first half's)."""
    from reconwatch.backends.stream.batch import Declined

    # A fork copies only the calling thread: with others running (the service), one of them
    # might hold a lock the child then waits for forever.
    alone = hasattr(os, "fork") and threading.active_count() == 1
    first, second = _halves(pieces) if alone else (pieces, [])
    if not second:
        for piece in first:
            for block, end in _blocks(*piece):
                scan.feed_block(block, end)
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its half, its partial result down the pipe, and out
        os.close(read)
        _child(scan, second, write)
    os.close(write)
    try:
        for piece in first:
            for block, end in _blocks(*piece):
                scan.feed_block(block, end)
    except BaseException:
        os.kill(pid, signal.SIGKILL)  # its half no longer matters
        os.close(read)
        os.waitpid(pid, 0)
        raise
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        raise Declined  # the child declined or died: the executor decides
    scan.merge(pickle.loads(data))


def _child(scan: StatsScan, pieces: list[Piece], fd: int) -> NoReturn:
    """A forked child's whole life: nothing of the parent's (atexit, buffers) runs in it."""
    code = 1
    try:
        for piece in pieces:
            for block, end in _blocks(*piece):
                scan.feed_block(block, end)
        data = pickle.dumps(scan.partial(), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(fd, "wb") as pipe:
            pipe.write(data)
        code = 0
    finally:
        os._exit(code)


def _halves(pieces: list[Piece]) -> tuple[list[Piece], list[Piece]]:
    """The pieces cut at the line nearest after the middle byte; no second half when the total
    is under PARALLEL_BYTES (or no line ends past the middle within a block)."""
    total = sum(stop - start for _p, start, stop in pieces)
    if total < PARALLEL_BYTES:
        return pieces, []
    middle = total // 2
    for k, (path, start, stop) in enumerate(pieces):
        if middle >= stop - start:
            middle -= stop - start
            continue
        with path.open("rb") as fh:
            fh.seek(start + middle)
            cut = fh.read(SCAN_BLOCK).find(b"\n")
        if cut < 0:
            return pieces, []
        at = start + middle + cut + 1
        before = [*pieces[:k], (path, start, at)] if at > start else pieces[:k]
        after = [(path, at, stop), *pieces[k + 1 :]] if at < stop else pieces[k + 1 :]
        return before, after
    return pieces, []


def _blocks(path: Path, start: int, stop: int) -> Iterator[tuple[bytearray, int]]:
    """The whole lines of a file's bytes [start, stop) in blocks, as (buffer, end):
    buffer[:end] holds whole lines, each ending with a newline (one is added after a last line
    without one, as readers take it). One buffer is read into again and again: valid until the
    next block is asked for."""
    from reconwatch.backends.stream.batch import Declined

    buf = bytearray(SCAN_BLOCK)
    view = memoryview(buf)
    have = 0  # bytes of an unfinished line carried to the buffer's start
    left = stop - start
    with path.open("rb", buffering=0) as fh:
        fh.seek(start)
        while left > 0:
            got = fh.readinto(view[have : have + min(left, len(buf) - have)])
            if not got:
                break
            left -= got
            total = have + got
            end = buf.rfind(b"\n", 0, total) + 1
            if end == 0:
                if total == len(buf):
                    raise Declined  # a line longer than a block
                have = total
                continue
            yield buf, end
            have = total - end
            buf[:have] = bytes(view[end:total])
    if have:
        if have == len(buf):
            raise Declined
        buf[have] = 0x0A
        yield buf, have + 1


def _unsettled() -> Exception:
    from reconwatch.backends.duckdb.execute import ExecutionError

    return ExecutionError(f"reading the events did not settle after {MAX_RETRIES} attempts")


def pin(
    text: str | ast.Query,
    dataset: Dataset,
    *,
    now: datetime,
    con: DuckDBPyConnection,
    table: str,
    backend: str = "duckdb",
) -> tuple[Column, ...]:
    """Run ES|QL text into a temporary DuckDB table on `con` (read once, queried many times);
    returns its columns (multivalued where the table holds lists). Another executor by name
    reads the events and its result is loaded into the table."""
    from reconwatch.backends.duckdb.execute import materialize

    if backend != "duckdb":
        return _pin_result(text, dataset, now=now, con=con, table=table, backend=backend)
    for _attempt in range(MAX_RETRIES):
        plan = _without_implicit_limit(compile_on(text, dataset))
        try:
            compiled = materialize(plan, dataset, now, con, table)
        except RetryScan:
            continue
        return tuple(
            Column(c.name, c.type, is_list)
            for c, is_list in zip(compiled.columns, compiled.lists, strict=True)
        )
    raise _unsettled()


def _pin_result(
    text: str | ast.Query,
    dataset: Dataset,
    *,
    now: datetime,
    con: DuckDBPyConnection,
    table: str,
    backend: str,
) -> tuple[Column, ...]:
    import pyarrow as pa

    execute = executor(backend)
    for _attempt in range(MAX_RETRIES):
        plan = _without_implicit_limit(compile_on(text, dataset))
        try:
            result = execute(plan, dataset, now)
        except RetryScan:
            continue
        schema = Dataset([]).arrow_schema(result.columns, ())
        arrays = [
            pa.array([_arrow_cell(row[i], col.multivalued) for row in result.rows], type=f.type)
            for i, (col, f) in enumerate(zip(result.columns, list(schema)[1:], strict=True))
        ]
        arrow = pa.Table.from_arrays(arrays, schema=pa.schema(list(schema)[1:]))
        con.register("rw_pin_arrow", arrow)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM rw_pin_arrow")
        con.unregister("rw_pin_arrow")
        return result.columns
    raise _unsettled()


def _arrow_cell(value: object, multivalued: bool) -> object:
    """A plan value as the pinned table's Arrow column holds it (UTC without a zone, lists)."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, list):
        return [_arrow_cell(item, False) for item in value]
    if multivalued and value is not None:
        return [_arrow_cell(value, False)]
    return value


def _without_implicit_limit(plan: Plan) -> Plan:
    """A pinned result keeps every row: the LIMIT 1000 the analyser adds to results is not there."""
    steps = plan.steps
    if steps and isinstance(steps[-1], Limit) and steps[-1].span == NO_SPAN:
        return dataclasses.replace(plan, steps=steps[:-1])
    return plan


def compile_on(text: str | ast.Query, dataset: Dataset) -> Plan:
    """compile_query (analyze for a parsed query), except that an unknown column is looked for
    in every event first (the catalog knows the schema and a sample of each file until then)."""
    query = parse(text) if isinstance(text, str) else text
    try:
        return analyze(query, dataset)
    except QuerySemanticError as exc:
        if "Unknown column" not in str(exc) or not dataset.complete_fields():
            raise
    return analyze(query, dataset)


def explain(
    text: str, dataset: Dataset, *, now: datetime | None = None, engine: str = "duckdb"
) -> str:
    """The logical plan pretty-printed, then the DuckDB SQL it compiles to, both limited to the
    columns the query reads, creates or returns (not every column of the catalog); with
    `engine="spark"`, which steps Spark runs as Spark SQL and which the interpreter runs."""
    from datetime import UTC

    from reconwatch.backends.duckdb import compile_for

    plan = compile_on(text, dataset)
    unread = _unread_catalog_columns(plan)
    pruned = _without_columns(plan, unread)
    compiled = compile_for(pruned, dataset, now or datetime(1970, 1, 1, tzinfo=UTC))
    lines = ["-- plan"]
    before: tuple[Column, ...] = ()
    for node in (pruned.source, *pruned.steps):
        lines.append(_render_node(node, before))
        before = node.columns
    if unread:
        lines.append(
            f"-- {len(unread)} more column(s) of the catalog: no step reads or returns them"
        )
    lines += ["-- duckdb sql", compiled.sql]
    if engine == "spark":
        from reconwatch.backends.spark.translate import describe
        from reconwatch.evaluate.pipeline import prune_evals

        when = now or datetime(1970, 1, 1, tzinfo=UTC)
        lines += ["-- spark", *describe(plan, prune_evals(plan), when)]
    return "\n".join(lines)


def _render_node(node: object, before: tuple[Column, ...]) -> str:
    """A plan node's fields pretty-printed, then its output columns (`unchanged` when they are
    the previous node's)."""
    assert dataclasses.is_dataclass(node)
    lines = [type(node).__name__]
    for f in dataclasses.fields(node):
        if f.name in ("columns", "span"):
            continue
        value = getattr(node, f.name)
        prefix = f"  {f.name}="
        if _is_columns(value):
            text = _columns_text(value)
        else:
            import pprint  # explain's only: not loaded by every query

            text = pprint.pformat(value, width=max(40, 100 - len(prefix)))
        lines.append(prefix + text.replace("\n", "\n" + " " * len(prefix)))
    columns: tuple[Column, ...] = getattr(node, "columns", ())
    lines.append("  -> columns: " + ("unchanged" if columns == before else _columns_text(columns)))
    return "\n".join(lines)


def _is_columns(value: object) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(c, Column) for c in value)


def _columns_text(columns: tuple[Column, ...]) -> str:
    """`name:type`, `[]` marking a column that may hold multivalues."""
    return ", ".join(f"{c.name}:{c.type.value}{'[]' if c.multivalued else ''}" for c in columns)


def warning_header(text: str) -> str:
    """One response warning as Elasticsearch sends it: `299 <agent> "<text>"`, `\\` and `"`
    escaped with a backslash and characters outside the header's quoted-text set
    percent-encoded as UTF-8."""
    out: list[str] = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) in _PLAIN:
            out.append(ch)
        else:
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "replace")))
    return f'299 {WARNING_AGENT} "{"".join(out)}"'
