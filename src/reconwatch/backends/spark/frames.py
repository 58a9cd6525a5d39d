"""The plan's translated steps on a Spark DataFrame: the source as a frame, the steps in Spark SQL, rows or groups back in the interpreter's conventions."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconwatch.backends.spark import session
from reconwatch.backends.spark import translate as tr
from reconwatch.evaluate.expressions import EvalContext
from reconwatch.evaluate.pipeline import hash_order, source_rows
from reconwatch.plan import nodes as p
from reconwatch.plan.scan import ScanSource
from reconwatch.types import DataType as T

LOG = logging.getLogger("reconwatch.spark")
# Rows per chunk handed to the interpreter after the translated steps.
CHUNK = 4096


@dataclass(frozen=True, slots=True)
class Rows:
    """The translated steps' rows on the driver ((order, row), in output order), the steps left."""

    rows: list[tuple[float, dict[str, object]]]
    rest: list[p.Step]


@dataclass(frozen=True, slots=True)
class Chunks:
    """The translated steps' rows as chunks for the interpreter on the workers, the steps left."""

    rdd: Any
    rest: list[p.Step]


def run(
    plan: p.Plan,
    steps: Sequence[p.Step],
    source: ScanSource,
    now: datetime,
    days: Any,
    chunks_of: Callable[[], Any],
) -> Rows | Chunks | None:
    """The leading steps that translate, run on a DataFrame of the source; None when none
    does (or the data's list columns hold several values where a translation assumed one)."""
    decision = tr.decide(plan, steps, now, lists_single=True)
    if decision.count == 0:
        LOG.debug("spark: no step translates (%s): the interpreter runs the plan", decision.reason)
        return None
    df, single = source_frame(plan, decision.source, source, days, chunks_of)
    cols = decision.source
    lists = [f"c{i}" for i, c in enumerate(cols) if c.multivalued]
    from pyspark.sql import functions as F

    if single is None:
        single = not lists or lists_single(df, lists, F)
    if not single:
        decision = tr.decide(plan, steps, now, lists_single=False)
        LOG.debug("spark: a row holds several values of a list column; %s", _said(decision))
        if decision.count == 0:
            return None
    else:
        LOG.debug("spark: %s", _said(decision))
    frame = tr.start(df, cols, single, F)
    translator = tr.Translator(F, now)
    done = list(steps[: decision.count])
    for step in done:
        frame = translator.step(step, frame)
    rest = list(steps[decision.count :])
    last = done[-1]
    if isinstance(last, p.Aggregate):
        return Rows(_groups(last, frame), rest)
    if frame.ended or not rest:
        return Rows(_rows(frame, last.columns), rest)
    return Chunks(_chunks(frame, last.columns), rest)


def source_frame(
    plan: p.Plan,
    cols: Sequence[p.Column],
    source: ScanSource,
    days: Any,
    chunks_of: Callable[[], Any],
) -> tuple[Any, bool | None]:
    """The source's `cols` as a DataFrame (c0, c1, ..., `__ord`), and whether its list columns
    hold one value a row at most when reading found out (None: not checked yet)."""
    assert isinstance(plan.source, p.Source)
    spark = session.session()
    from pyspark.sql import functions as F

    inputs = source.selected_inputs(plan.source.indices)
    # METADATA (_id, _index, ...) is not in exported files: the Dataset's rows carry it.
    metadata = any(c.name in plan.source.metadata for c in cols)
    df = None if metadata else source.spark_frame(spark, cols, inputs, days)
    if df is not None:
        LOG.debug("spark: the source read by Spark's Parquet reader")
        return _micros(df, cols, F), None
    found = chunks_of()
    if isinstance(found, list):  # read on the driver: a local relation, checked here
        records = list(_ToFrame(plan.source, tuple(cols), plan.query)(found))
        widest = max((len(x) for r in records for x in r if isinstance(x, list)), default=0)
        return spark.createDataFrame(records, _schema(cols)), widest <= 1
    return _from_chunks(spark, plan, cols, found), None


def _said(decision: tr.Decision) -> str:
    if decision.reason is None:
        return f"all {decision.count} step(s) translate to Spark SQL"
    return (
        f"{decision.count} step(s) translate to Spark SQL; step {decision.count + 1} and after "
        f"run in the interpreter: {decision.reason}"
    )


def _micros(df: Any, cols: Sequence[p.Column], F: Any) -> Any:
    """Datetimes (Parquet's timestamps, UTC wall clock) as epoch microseconds."""
    for i, c in enumerate(cols):
        if c.type is T.DATETIME:
            ident = f"c{i}"
            if c.multivalued:
                value = F.transform(F.col(ident), lambda x: F.unix_micros(x.cast("timestamp")))
            else:
                value = F.unix_micros(F.col(ident).cast("timestamp"))
            df = df.withColumn(ident, value)
    return df


def _spark_type(c: p.Column) -> Any:
    from pyspark.sql import types as S

    base = {
        T.LONG: S.LongType(),
        T.DATETIME: S.LongType(),
        T.INTEGER: S.IntegerType(),
        T.DOUBLE: S.DoubleType(),
        T.BOOLEAN: S.BooleanType(),
    }.get(c.type, S.StringType())
    return S.ArrayType(base, True) if c.multivalued else base


def _schema(cols: Sequence[p.Column]) -> Any:
    from pyspark.sql import types as S

    return S.StructType(
        [S.StructField(f"c{i}", _spark_type(c), True) for i, c in enumerate(cols)]
        + [S.StructField(tr.ORD, S.LongType(), False)]
    )


def _from_chunks(spark: Any, plan: p.Plan, cols: Sequence[p.Column], chunks: Any) -> Any:
    """The source's rows as typed by the interpreter (`source_rows`), as a DataFrame."""
    assert isinstance(plan.source, p.Source)
    rows = chunks.mapPartitions(_ToFrame(plan.source, tuple(cols), plan.query))
    return spark.createDataFrame(rows, _schema(cols))


@dataclass(frozen=True, slots=True)
class _ToFrame:
    """Chunks of (order, raw row) -> frame tuples, typed as the interpreter types them."""

    source: p.Source
    cols: tuple[p.Column, ...]
    query: str

    def __call__(self, chunks: Iterable[Any]) -> Iterator[tuple[object, ...]]:
        from reconwatch.plan import values as v

        ctx = EvalContext(source=self.query)  # typing a source row reads no clock, warns never
        pairs = ((o, r) for chunk in chunks for o, r in chunk)
        held: deque[int] = deque()

        def feed() -> Iterator[Any]:
            for order, row in pairs:
                held.append(order)
                yield row

        for row in source_rows(self.source, feed(), ctx):
            order = held.popleft()
            cells = []
            for c in self.cols:
                value = row.get(c.name)
                if c.multivalued:
                    value = v.as_list(value)
                cells.append(tr.frame_value(value, c.type))
            yield (*cells, int(order))


def lists_single(df: Any, lists: Sequence[str], F: Any) -> bool:
    """Whether no row holds more than one value in any of these list columns (one job)."""
    got = df.agg(*[F.max(F.size(F.col(c))).alias(c) for c in lists]).collect()[0]
    return all(got[c] is None or got[c] <= 1 for c in lists)


def _out(frame: tr.Frame, columns: Sequence[p.Column], F: Any) -> tuple[Any, list[p.Column]]:
    cols = [c for c in columns if c.name in frame.scope]
    df = frame.df.select(
        *[F.col(frame.scope[c.name].id).alias(f"o{i}") for i, c in enumerate(cols)],
        F.col(tr.ORD),
        F.col(tr.SUB),
    )
    return df, cols


def _row(record: Any, cols: Sequence[p.Column]) -> dict[str, object]:
    return {c.name: tr.plan_value(record[i], c.type) for i, c in enumerate(cols)}


def _rows(frame: tr.Frame, columns: Sequence[p.Column]) -> list[tuple[float, dict[str, object]]]:
    from pyspark.sql import functions as F

    df, cols = _out(frame, columns, F)
    records = df.collect()
    if not frame.sorted:
        records.sort(key=lambda r: (r[tr.ORD], r[tr.SUB]))
    return [(float(r[tr.ORD]), _row(r, cols)) for r in records]


def _chunks(frame: tr.Frame, columns: Sequence[p.Column]) -> Any:
    from pyspark.sql import functions as F

    df, cols = _out(frame, columns, F)
    return df.rdd.mapPartitions(_ToChunks(tuple(cols)))


@dataclass(frozen=True, slots=True)
class _ToChunks:
    """Frame rows (in their partition's input order) -> chunks of (order, row) for RowStage."""

    cols: tuple[p.Column, ...]

    def __call__(self, records: Iterable[Any]) -> Iterator[list[tuple[int, dict[str, object]]]]:
        chunk: list[tuple[int, dict[str, object]]] = []
        for r in records:
            chunk.append((r[tr.ORD], _row(r, self.cols)))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _groups(step: p.Aggregate, frame: tr.Frame) -> list[tuple[float, dict[str, object]]]:
    """The translated STATS's groups on the driver, in the interpreter's output order."""
    return group_rows(step, frame.df.collect())


def group_rows(step: p.Aggregate, records: Sequence[Any]) -> list[tuple[float, dict[str, object]]]:
    """A translated STATS's collected groups as the interpreter's rows, in its output order."""
    from reconwatch.backends.spark.stages import AFTER_ROWS, key_types
    from reconwatch.plan import values as v

    groups: dict[tuple[object, ...], tuple[tuple[object, ...], list[object]]] = {}
    firsts = []
    for r in records:
        first = r["first"]
        firsts.append(((first[0], first[1]) if first is not None else (-1, 0), r))
    firsts.sort(key=lambda x: x[0])
    for _, r in firsts:
        combo = tuple(
            tr.plan_value(r[f"k{i}"], expr.type) for i, (_, expr) in enumerate(step.groups)
        )
        results = []
        for i, (_name, agg) in enumerate(step.aggregates):
            cells = [r[k] for k in r.asDict() if k.startswith(f"a{i}_")]
            results.append(tr.agg_result(agg, cells))
        ident = tuple(
            v.order_key(x, expr.type) for x, (_, expr) in zip(combo, step.groups, strict=True)
        )
        groups[ident] = (combo, results)
    names = [name for name, _ in step.aggregates]
    keys = [name for name, _ in step.groups]
    return [
        (
            AFTER_ROWS,
            {**dict(zip(names, results, strict=True)), **dict(zip(keys, combo, strict=True))},
        )
        for combo, results in hash_order(groups, key_types(step))
    ]
