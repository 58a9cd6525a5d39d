"""The engine facade: ES|QL text and a dataset in, a Result out (the CLI, rules engine and web call it)."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING

from reconwatch import __version__
from reconwatch.backends import EXECUTORS, executor
from reconwatch.backends.duckdb.execute import ExecutionError
from reconwatch.errors import QuerySemanticError
from reconwatch.esql import ast
from reconwatch.esql.analyze import analyze
from reconwatch.esql.parser import parse
from reconwatch.ingest.dataset import Dataset
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import NO_SPAN, Column, Limit, Plan
from reconwatch.plan.prune import unread_columns as _unread_catalog_columns
from reconwatch.plan.prune import without_columns as _without_columns
from reconwatch.plan.scan import RetryScan

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

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
    execute = executor(backend)
    # Each retry moves a file to the Python reader, marks a field multivalued or completes the
    # field scan: a bounded number of times.
    for _attempt in range(MAX_RETRIES):
        plan = compile_on(text, dataset)
        try:
            return execute(plan, dataset, now)
        except RetryScan:
            continue
    msg = f"reading the events did not settle after {MAX_RETRIES} attempts"
    raise ExecutionError(msg)


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
    msg = f"reading the events did not settle after {MAX_RETRIES} attempts"
    raise ExecutionError(msg)


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
    msg = f"reading the events did not settle after {MAX_RETRIES} attempts"
    raise ExecutionError(msg)


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
