"""Event files read on Spark's workers: each file a task, read by the registry's own reader, dt=YYYY-MM-DD partitions pruned."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from reconwatch.ingest.report import IngestReport
from reconwatch.plan.documents import flatten
from reconwatch.plan.nodes import Column

# Formats a worker reads by itself (the others go through the driver).
SPARK_FORMATS = ("ndjson", "parquet")
# A row's input order: the input's number above its line (or record) number.
ORDER_SHIFT = 40
# The frame column holding a row's input order.
ORD = "__ord"
# Rows per chunk a task hands on (one pickled object each).
CHUNK = 4096
# The footer key `reconwatch export` writes: the file's rows are events the Dataset checked and
# converted already, so Spark's own Parquet reader may read them as they are (`frame`).
WRITER_KEY, WRITER = "reconwatch.export", "1"
# And the fields of the export, [[name, type, multivalued], ...] as JSON: the catalog, unread.
FIELDS_KEY = "reconwatch.fields"
# And, for an export of a store's index, that index: the file's rows keep their stored METADATA
# (`_index`, `_id`, `_version`) as columns, which are not among the declared fields.
INDEX_KEY = "reconwatch.index"
STORED_METADATA = ("_index", "_id", "_version")
_DAY = re.compile(r"(?:^|/)dt=(\d{4})-(\d{2})-(\d{2})(?=/|$)")

Flat = dict[str, list[object]]
Cell = Callable[[list[object] | None, Column], object]
Meta = Callable[[str, Any, int, Flat], object]
Check = Callable[[Flat], str | None]
# What a task reports: input -> (good events, [(line, reason)]), set once per input read through.
Outcome = dict[int, tuple[int, list[tuple[int | None, str]]]]


def partition_day(path: str | Path) -> date | None:
    """The day a `dt=YYYY-MM-DD/` directory in the path holds (the innermost one)."""
    found = _DAY.findall(str(path))
    if not found:
        return None
    year, month, day = (int(x) for x in found[-1])
    try:
        return date(year, month, day)
    except ValueError:
        return None


def in_days(path: str | Path, days: tuple[date | None, date | None] | None) -> bool:
    """Whether a file can hold rows of the days `days` (inclusive; None: unbounded)."""
    if days is None:
        return True
    day = partition_day(path)
    if day is None:
        return True
    low, high = days
    return (low is None or day >= low) and (high is None or day <= high)


@dataclass(frozen=True, slots=True)
class FileTask:
    """One input file for a worker: its number among the inputs, path and format."""

    index: int
    path: str
    fmt: str
    inp: Any  # the dataset's input record, for the METADATA fields


@dataclass(frozen=True, slots=True)
class Decode:
    """A worker's reading of one file: the registry's reader, the same checks and cells as the
    driver's (ingest.dataset hands them over), rows in chunks of (order, row). Bad events are
    counted in `outcomes` (a Spark accumulator) once the file is read through."""

    cols: tuple[Column, ...]
    metadata: tuple[str, ...]
    cell: Cell
    meta: Meta
    check: Check
    outcomes: Any

    def __call__(self, task: FileTask) -> Iterator[list[tuple[int, dict[str, object]]]]:
        from reconwatch.ingest.formats import read_events

        report = IngestReport()
        chunk: list[tuple[int, dict[str, object]]] = []
        good = 0
        for line, value in read_events(Path(task.path), report, task.fmt):
            if not isinstance(value, dict):
                report.add("not a JSON object", task.path, line)
                continue
            flat = flatten(value)
            problem = self.check(flat)
            if problem is not None:
                report.add(problem, task.path, line)
                continue
            good += 1
            row = {c.name: self.cell(flat.get(c.name), c) for c in self.cols}
            for m in self.metadata:
                row[m] = self.meta(m, task.inp, line, flat)
            chunk.append(((task.index << ORDER_SHIFT) | line, row))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
        errors = [(e.line, e.reason) for e in report.errors]
        # A retried task sets the same entry again: the count is not doubled.
        self.outcomes.add({task.index: (good, errors)})


def chunks(spark: Any, tasks: Sequence[FileTask], decode_args: dict[str, Any]) -> tuple[Any, Any]:
    """An RDD of row chunks, one task per file in input order, and the accumulator of outcomes."""
    from pyspark.accumulators import AccumulatorParam

    class _Merge(AccumulatorParam):  # type: ignore[type-arg]
        def zero(self, value: Outcome) -> Outcome:
            return {}

        def addInPlace(self, a: Outcome, b: Outcome) -> Outcome:
            a.update(b)
            return a

    sc = spark.sparkContext
    outcomes = sc.accumulator({}, _Merge())
    decode = Decode(outcomes=outcomes, **decode_args)
    rdd = sc.parallelize(list(tasks), max(1, len(tasks))).flatMap(decode)
    return rdd, outcomes


def exported_fields(path: str | Path) -> tuple[list[tuple[str, str, bool]], int] | None:
    """The fields an exported Parquet file declares in its footer, and its rows; None for a
    file `reconwatch export` did not write (or an older export without the declaration)."""
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(str(path))
    except (OSError, ValueError):
        return None
    kv = meta.metadata or {}
    if kv.get(WRITER_KEY.encode()) != WRITER.encode() or FIELDS_KEY.encode() not in kv:
        return None
    try:
        declared = json.loads(kv[FIELDS_KEY.encode()])
        fields = [(str(n), str(t), bool(m)) for n, t, m in declared]
    except (ValueError, TypeError):
        return None
    return fields, meta.num_rows


def exported_index(path: str | Path) -> str | None:
    """The stored index an exported Parquet file's rows were shipped to (its footer's
    INDEX_KEY); None for a file exported from event files, or not by `reconwatch export`."""
    import pyarrow.parquet as pq

    try:
        kv = pq.read_metadata(str(path)).metadata or {}
    except (OSError, ValueError):
        return None
    if kv.get(WRITER_KEY.encode()) != WRITER.encode():
        return None
    found = kv.get(INDEX_KEY.encode())
    return found.decode("utf-8", "replace") if found else None


def frame(
    spark: Any,
    files: Sequence[tuple[int, str]],
    cols: Sequence[Column],
    types: Any,
    kept: KeptReads | None = None,
) -> Any:
    """The `cols` of these (input number, path) Parquet files as Spark's own reader reads them:
    columns c0, c1, ... and `__ord` (the input's number above the row's number in its file).
    None unless every file is one `reconwatch export` wrote and holds each column, if at all,
    typed exactly as `types` (the Arrow schema the executors read) says. With `kept`, each
    file's read is cached there and taken again by a later call for the same columns."""
    import pyarrow.parquet as pq
    from pyspark.sql import functions as F

    if not files:
        return None
    for _index, path in files:
        try:
            schema = pq.read_schema(path)
        except (OSError, ValueError):
            return None  # the driver's reader reports it
        meta = schema.metadata or {}
        if meta.get(WRITER_KEY.encode()) != WRITER.encode():
            return None
        for c in cols:
            at = schema.get_field_index(c.name)
            if at >= 0 and schema.field(at).type != types.field(c.name).type:
                return None
    from pyspark.sql import types as S

    fields = [(c.name, _spark_type(types.field(c.name).type)) for c in cols]
    if any(t is None for _, t in fields):
        return None
    reader = spark.read.schema(S.StructType([S.StructField(n, t, True) for n, t in fields]))
    picked = [F.col(f"`{c.name}`").alias(f"c{i}") for i, c in enumerate(cols)]
    shape = tuple((c.name, c.type, c.multivalued) for c in cols)
    parts = []
    for index, path in files:
        part = kept.get((index, path, shape)) if kept is not None else None
        if part is None and kept is not None:
            part = kept.covering(index, path, shape)
        if part is None:
            part = read_part(reader, picked, index, path)
            if kept is not None:
                part = kept.keep((index, path, shape), part)
        parts.append(part)
    return functools.reduce(lambda a, b: a.unionAll(b), parts)


def read_part(reader: Any, picked: Sequence[Any], index: int, path: str) -> Any:
    """One exported file's columns and `__ord`."""
    from pyspark.sql import functions as F

    # One scan per file, its number a constant: no mapping of Spark's spelling of paths.
    order = F.lit(index << ORDER_SHIFT) + F.col("_metadata.row_index")
    part = reader.option("mergeSchema", "false").parquet(path)
    return part.select(*picked, order.cast("long").alias(ORD))


class KeptReads:
    """Files' reads (DataFrames or RDDs) cached by Spark (memory, else local disk) for later
    queries over the same files and columns: the runs of a rule over many windows (`detect --from/--to`) read each
    file once, the first run that needs it, and the others take its cached rows. At most
    `files` reads are kept; the least recently used is dropped first."""

    def __init__(self, files: int = 256) -> None:
        self.files = files
        self._kept: dict[tuple[object, ...], Any] = {}

    def get(self, key: tuple[object, ...]) -> Any:
        part = self._kept.pop(key, None)
        if part is not None:
            self._kept[key] = part  # most recently used last
        return part

    def covering(self, index: int, path: str, shape: tuple[Any, ...]) -> Any:
        """A kept Parquet read of this file holding every column of `shape` (name, type,
        multivalued), as a frame of those columns (c0, c1, ... in `shape`'s order, `__ord`);
        None when no kept read covers them."""
        for key in reversed(self._kept):
            have = key[2]
            if key[:2] != (index, path) or not isinstance(have, tuple) or not have:
                continue
            if not isinstance(have[0], tuple) or not isinstance(have[0][0], str):
                continue  # a decoded read's key holds (columns, metadata): not a frame
            if not all(col in have for col in shape):
                continue
            part = self.get(key)
            return part.select(
                *[part[f"c{have.index(col)}"].alias(f"c{i}") for i, col in enumerate(shape)],
                part[ORD],
            )
        return None

    def keep(self, key: tuple[object, ...], part: Any) -> Any:
        from pyspark import StorageLevel

        part = part.persist(StorageLevel.MEMORY_AND_DISK)
        self._kept[key] = part
        while len(self._kept) > self.files:
            oldest = next(iter(self._kept))
            self._kept.pop(oldest).unpersist()
        return part

    def clear(self) -> None:
        for part in self._kept.values():
            part.unpersist()
        self._kept.clear()


def _spark_type(t: Any) -> Any:
    import pyarrow as pa
    from pyspark.sql import types as S

    if pa.types.is_list(t):
        inner = _spark_type(t.value_type)
        return None if inner is None else S.ArrayType(inner, True)
    if pa.types.is_timestamp(t):
        return S.TimestampNTZType()
    simple = {
        pa.string(): S.StringType(),
        pa.int64(): S.LongType(),
        pa.int32(): S.IntegerType(),
        pa.float64(): S.DoubleType(),
        pa.bool_(): S.BooleanType(),
    }
    return simple.get(t)
