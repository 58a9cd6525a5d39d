"""A set of event inputs queried together: the Catalog the analyser reads and the tables executors scan."""

from __future__ import annotations

import fnmatch
import functools
import glob
import hashlib
import os
import re
import socket
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reconwatch.ecs.schema import ECS_FIELDS, MULTIVALUED_FIELDS, is_ecs_index
from reconwatch.errors import IngestError, UsageError
from reconwatch.ingest import fast, formats, parquet
from reconwatch.ingest.flatten import infer_type, kind_of, looks_like_date
from reconwatch.ingest.formats import read_events
from reconwatch.ingest.locate import is_plain
from reconwatch.ingest.report import IngestReport
from reconwatch.plan import values
from reconwatch.plan.documents import (
    MAX_DEPTH,
    Flat,
    convert_leaf,
    document_json,
    flatten,
    nesting_depth,
)
from reconwatch.plan.nodes import Column
from reconwatch.types import DataType as T

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

DOCUMENTS = "<documents>"
BATCH = 50_000
# Events of an NDJSON file read in Python to learn its fields before DuckDB reads it all.
SAMPLE_LINES = 1000
STORED_SAMPLE = 200
# Events of one file kept in memory between queries at most (beyond: read again per query).
KEEP_EVENTS = 200_000
# Column sets per input whose converted batches are kept (each at most KEEP_EVENTS rows): a
# replay runs one rule at a time (its query, its evidence's); more would only hold memory.
CONVERTED_SHAPES = 4
# An input, its columns (name, type, multivalued) and its METADATA fields.
_BatchKey = tuple[int, tuple[tuple[str, T, bool], ...], tuple[str, ...]]
# Checked leaves remembered (addresses, ports, names and actions recur event after event); the
# memo starts again past this size. Times are nearly all distinct: not remembered.
CHECK_MEMO = 65_536
_UNIQUE_TYPES = frozenset({T.DATETIME, T.DATE_NANOS})
# A JSON integer (not a boolean) within these bounds is what convert_leaf takes for the type.
_INT_BOUNDS = {
    T.INTEGER: (values.INT_MIN, values.INT_MAX),
    T.LONG: (values.LONG_MIN, values.LONG_MAX),
    T.UNSIGNED_LONG: (0, values.ULONG_MAX),
}
_TEXT_TYPES = frozenset({T.KEYWORD, T.TEXT})
_TYPE_NAMES = frozenset(t.value for t in T)
# ECS fields by whether their type is text (any text leaf fits) or not.
_TEXT_ECS = frozenset(n for n, t in ECS_FIELDS.items() if t in _TEXT_TYPES)
_NON_TEXT_ECS = frozenset(ECS_FIELDS.keys() - _TEXT_ECS)
_ECS_NAMES = frozenset(ECS_FIELDS)
# Texts a quick test accepts for their ECS type (_fits_text); ASCII digits only, as `\d` would
# also take other scripts' digits.
_PLAIN_IPV4 = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)
_HEX_IPV6 = re.compile(r"[0-9a-fA-F:]{2,39}")
_ISO_UTC = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z")
_UNSEEN = "?"
# Where DuckDB starts quoting the statement an error is about.
_QUOTED_SQL = re.compile(r"\nLINE \d+:")
# How DuckDB reads a Parquet input: its leaf columns, and those read as they are.
_ParquetRead = tuple[tuple["parquet.LeafColumn", ...], frozenset["parquet.LeafColumn"]]
# Hidden columns every scanned table carries besides the fields and METADATA.
SOURCE_COLUMN = "__src"


@functools.cache
def _arrow_types() -> dict[T, pa.DataType]:
    # pyarrow is loaded only when the Python reader runs: DuckDB's own reading needs none of it.
    import pyarrow as pa

    return {
        T.KEYWORD: pa.string(),
        T.TEXT: pa.string(),
        T.IP: pa.string(),
        T.VERSION: pa.string(),
        T.LONG: pa.int64(),
        T.INTEGER: pa.int32(),
        T.UNSIGNED_LONG: pa.uint64(),
        T.DOUBLE: pa.float64(),
        T.BOOLEAN: pa.bool_(),
        T.DATETIME: pa.timestamp("us"),
        T.DATE_NANOS: pa.timestamp("us"),
    }


class StoredEvents(Protocol):
    """One index's events in a store (the service's), readable by DuckDB where they are stored or
    as documents: `relation` is SQL over the store's table (run on one of the store's own
    connections), `head` and `load` the documents for the validating reader."""

    def relation(self, structure: str) -> str:
        """A relation of the events: their top-level keys as json_transform reads them with
        `structure` (an SQL string literal), and the METADATA columns `metadata` names."""
        ...

    def metadata(self, name: str) -> str | None:
        """The relation's column holding METADATA `name`; None when it has none."""
        ...

    def regular(self, fields: Sequence[tuple[str, T]]) -> tuple[str, frozenset[str]] | None:
        """A relation of the events with each of `fields` as its stored JSON value in a column
        of its name (and the METADATA columns), when the store vouches that every one of those
        values is regular for the type given (fast.regular_shape), so they are read with no
        check (fast.regular_select); with the fields whose column holds the value already
        typed as the regular value reads (a date as its timestamp). None otherwise (`relation`
        then)."""
        ...

    def head(self, limit: int) -> list[object]:
        """The first `limit` documents."""
        ...

    def sources(self) -> str:
        """SQL of the documents' JSON texts, one column (for listing their fields)."""
        ...

    def load(self) -> tuple[list[str], list[object]]:
        """Every event's _id and document, in the order stored."""
        ...


@dataclass(slots=True)
class _Input:
    """One file (or the in-memory documents) and the index patterns it was given for."""

    name: str
    path: Path | None
    patterns: tuple[str, ...]
    docs: Sequence[object] = ()
    index: str = ""
    format: str | None = None  # a registered input format's name (ingest.formats); None: by content
    # Stored documents' own _id, one per document (the service's store); empty: derived ids.
    ids: Sequence[str] = ()
    # Whether DuckDB's reader may read it (the format's `duckdb`), once looked at.
    duckdb: bool | None = None
    # Events a store holds (read by SQL where they are; `docs` and `ids` once loaded).
    stored: StoredEvents | None = None
    # An exported file of a store's index (`index`): its rows hold their stored METADATA.
    exported: bool = False
    # Whether it is a Parquet file (DuckDB's Parquet reader may read it: ingest.parquet).
    parquet: bool | None = None


@dataclass(slots=True)
class _FieldInfo:
    kinds: set[str] = field(default_factory=set)
    all_dates: bool = True
    multivalued: bool = False


@dataclass(slots=True)
class _Scan:
    """What is known of the inputs' fields: from every event of an input once it was read
    through (`complete`), else from its first SAMPLE_LINES events."""

    fields: dict[str, _FieldInfo] = field(default_factory=dict)
    per_input: list[set[str]] = field(default_factory=list)
    complete: list[bool] = field(default_factory=list)


class Dataset:
    """Events from files or documents. Implements plan.catalog.Catalog; bad events go to `report`.

    NDJSON files are read by DuckDB itself (ingest.fast); a file it cannot read exactly (bad
    events among others) goes through the validating Python reader, which reports them. DuckDB's
    read validates the fields a query reads and those the first SAMPLE_LINES events show; an
    event whose only bad value is in another field is kept (docs/performance.md: the contract)."""

    def __init__(self, inputs: Sequence[_Input]) -> None:
        self._inputs = list(inputs)
        self.report = IngestReport()
        self.year: int | None = None
        self._scan: _Scan | None = None
        self._types: dict[str, T] = {}
        self._declared: dict[str, T] = {}  # field types exported files declare (their footers)
        self._reported: set[int] = set()
        # Events of a file the Python readers read through, kept for the next query (a replay
        # runs hundreds): decoding a capture or a log again per run would dominate.
        self._kept: dict[int, list[tuple[int, Flat]]] = {}
        # Those events as typed Arrow batches, per (input, columns, METADATA), the most recent
        # few: a replay's runs of one rule read the same columns, and converting every value
        # again (addresses, times) cost more than the run's query.
        self._converted: dict[_BatchKey, list[pa.RecordBatch]] = {}
        self._good: dict[int, int] = {}  # good events of each input read through in Python
        self._slow: set[int] = set()
        self._shallow: set[int] = set()  # inputs DuckDB may read: no line nests too deep
        self._multivalued: set[str] = set()
        self._json_leaves: set[str] = set()
        # Fields written as JSON arrays in the sampled events (read as JSON, not as text).
        self._arrays: set[str] = set(MULTIVALUED_FIELDS)
        # Leaves already checked against their ECS type -> why they do not fit (None: they do).
        self._checked: dict[tuple[T, type, object], str | None] = {}
        # Tests turn this off to compare the compiled quick yes with the Python checks.
        self._compiled_checks = True
        # Inputs handed to Spark's workers, and what the workers report of them (accumulators).
        self._spark_inputs: set[int] = set()
        self._spark_outcomes: list[Any] = []
        # Exported files' Spark reads kept between queries (keep_spark_reads), or None.
        self._kept_reads: Any = None
        # Fields every kept Parquet read also reads, for later queries (widen_spark_reads).
        self._wider: tuple[str, ...] = ()
        # Inputs whose fields DuckDB listed for an export (export_fields), not the Python reader.
        self._listed: set[int] = set()
        # Whether exported files' footers were read for the index they hold (_read_footers).
        self._footers_read = False
        # DuckDB reads Parquet files itself where their columns map exactly (ingest.parquet);
        # tests turn this off to compare with the validating reader, the oracle.
        self.duckdb_parquet = os.environ.get("RECONWATCH_PARQUET", "1") != "0"
        # Each Parquet file's leaf columns (None: one DuckDB's reading does not map), and
        # whether all its values convert exactly, per the fields' types then.
        self._parquet_columns: dict[int, list[parquet.LeafColumn] | None] = {}
        self._canonical_ips: dict[str, str | None] = {}
        self._discovery: duckdb.DuckDBPyConnection | None = None
        # Discovery scans made for alike files together, until each file's turn.
        self._discovered: dict[
            int, tuple[frozenset[parquet.LeafColumn] | None, Sequence[object] | None]
        ] = {}
        self._parquet_exact: dict[
            tuple[int, tuple[tuple[str, T], ...]], frozenset[parquet.LeafColumn] | None
        ] = {}
        # Converted rows of alike Parquet files kept between queries (keep_parquet_reads), or
        # None; the files' rows (their footers), per input.
        self._parquet_kept: parquet.KeptReads | None = None
        self._parquet_rows: dict[int, int] = {}

    # -- construction ----------------------------------------------------------------------------

    @classmethod
    def from_documents(
        cls, docs: Sequence[object], index: str = "logs-endpoint.events.network-default"
    ) -> Dataset:
        return cls([_Input(DOCUMENTS, None, (), docs, index)])

    @classmethod
    def from_stored(cls, groups: Sequence[tuple[str, Sequence[str], Sequence[object]]]) -> Dataset:
        """Documents as a store holds them: per index, their ids and sources. A FROM reads the
        indices its patterns match; _index and _id are the stored ones."""
        return cls(
            [_Input(index, None, (index,), docs, index, ids=ids) for index, ids, docs in groups]
        )

    @classmethod
    def from_store(cls, tables: Sequence[tuple[str, StoredEvents]]) -> Dataset:
        """Events of a store by index, read where they are stored (DuckDB over the store's
        table) or, when that cannot read them exactly, loaded as documents."""
        return cls([_Input(index, None, (index,), (), index, stored=t) for index, t in tables])

    @classmethod
    def from_files(
        cls,
        paths: Iterable[str | Path],
        index_map: Sequence[tuple[str, str]] = (),
        *,
        input_format: str | None = None,
        year: int | None = None,
    ) -> Dataset:
        """Positional files are read by every FROM; `index_map` pairs (index pattern, glob) add
        files read only by FROM clauses whose patterns can match that index pattern.
        `input_format`: a registered format's name every file is read as (default: by content).
        `year`: the year of syslog time stamps without one (default: each file's mtime)."""
        if input_format is not None:
            formats.get(input_format)  # a UsageError naming the known formats
        inputs: list[_Input] = []
        seen: dict[Path, _Input] = {}
        for pattern, pathglob in index_map:
            matched = sorted(glob.glob(pathglob, recursive=True))
            if not matched:
                msg = f"--index {pattern}={pathglob}: no file matches"
                raise UsageError(msg)
            for name in matched:
                path = Path(name)
                if path in seen:
                    seen[path].patterns = (*seen[path].patterns, pattern)
                    continue
                seen[path] = _Input(name, path, (pattern,), format=input_format)
                inputs.append(seen[path])
        for raw in paths:
            path = Path(raw)
            if path not in seen:
                seen[path] = _Input(str(raw), path, (), format=input_format)
                inputs.append(seen[path])
        dataset = cls(inputs)
        dataset.year = year
        return dataset

    # -- reading -------------------------------------------------------------------------------

    def _events(self, index: int, limit: int | None = None) -> Iterator[tuple[int, Flat]]:
        """Good events of one input as (line, flat fields). The first read to the end of an
        input reports its bad events and counts its good ones; `limit` stops early (a sample)."""
        kept = self._kept.get(index)
        if kept is not None:
            yield from kept if limit is None else kept[:limit]
            return
        inp = self._inputs[index]
        local = IngestReport(self.year)
        good = 0
        keep: list[tuple[int, Flat]] | None = [] if limit is None and inp.path else None
        if inp.stored is not None and not inp.ids and limit is not None:
            # One more than the sample: the early return below then leaves the count unsettled.
            raw: Iterable[tuple[int, object]] = enumerate(inp.stored.head(limit + 1), start=1)
        elif inp.path is None:
            if inp.stored is not None and not inp.ids:
                inp.ids, inp.docs = inp.stored.load()
            raw = enumerate(inp.docs, start=1)
        else:
            raw = read_events(inp.path, local, inp.format)
        for line, value in raw:
            if limit is not None and good >= limit:
                self._refused(index, local)
                return
            if not isinstance(value, dict):
                local.add("not a JSON object", inp.name, line)
                continue
            if limit is None:
                flat = flatten(value)
                problem = self._check(flat)
            else:
                # A sample also learns which fields are written as arrays, and notes the leaves
                # that are not text (only they and non-text fields can misfit): one walk.
                odd: set[str] = set()
                flat = flatten_noting_arrays(value, self._arrays, odd)
                problem = self._check_sampled(flat, odd)
            if problem is not None:
                local.add(problem, inp.name, line)
                continue
            good += 1
            if keep is not None:
                keep.append((line, flat))
                if len(keep) > KEEP_EVENTS:
                    keep = None
            yield line, flat
        self._refused(index, local)
        if keep is not None:
            self._kept[index] = keep
        if index not in self._reported:
            self._reported.add(index)
            self._good[index] = good
            self.report.settle(index, good, local.errors, local.notes)

    def _refused(self, index: int, local: IngestReport) -> None:
        """An input with an event this reader refused is read by this reader only: DuckDB's
        would take some of those (a line nested deeper than MAX_DEPTH, say)."""
        if local.errors:
            self._slow.add(index)

    def _too_deep(self, con: duckdb.DuckDBPyConnection, index: int) -> bool:
        """Whether DuckDB would read a line of this input that nests deeper than MAX_DEPTH, which
        the Python reader refuses (DuckDB's has no limit): then the input goes to Python. Asked
        once per input, and only of one the sample did not read to the end."""
        if index in self._shallow:
            return False
        path = self._inputs[index].path
        # Read to the end by the Python reader already (a file no longer than the sample): a
        # deep line there was refused and sent the input to Python (_refused).
        read_through = index in self._reported or self._ensure_sample().complete[index]
        if path is not None and not read_through and not _counted_shallow(path):
            found = fast.deep_line_candidates(con, str(path), MAX_DEPTH)
            if found is None or any(nesting_depth(t.encode()) > MAX_DEPTH for t in found):
                self._slow.add(index)
                return True
        self._shallow.add(index)
        return False

    def _check(self, flat: Flat) -> str | None:
        """Why Elasticsearch would reject this event (a value its mapping cannot take), or None."""
        for name, vals in flat.items():
            type_ = ECS_FIELDS.get(name)
            if type_ is None or (type_ in _TEXT_TYPES and len(vals) == 1 and type(vals[0]) is str):
                continue  # not mapped, or one text for a text field: nothing to reject
            problem = self._misfits(vals, type_)
            if problem is not None:
                return f"field [{name}] of type [{type_.value}]: {problem}"
        return None

    def _check_sampled(self, flat: Flat, odd: set[str]) -> str | None:
        """`_check(flat)` for a sampled event, whose walk noted the paths holding a leaf that is
        not text (`odd`): only a non-text field, or a text field at such a path, can misfit.
        Those are looked at in any order; a misfit sends the event to `_check`, which names the
        first one as always."""
        if _doubtful is not None and self._compiled_checks:
            # Only the fields with a leaf the compiled quick yes does not take (a quick yes
            # is never wrong: tests/unit/test_ingest_sample.py).
            names = set(_doubtful(flat, _QUICK_KINDS))
        else:
            names = flat.keys() & _NON_TEXT_ECS
        if odd:
            names |= odd & _TEXT_ECS
        for name in names:
            if self._misfits(flat[name], ECS_FIELDS[name]) is not None:
                return self._check(flat)
        return None

    def _misfits(self, vals: list[object], type_: T) -> str | None:
        """Why the first of a field's leaves that does not fit its ECS type does not, or None."""
        memo = self._checked
        bounds = _INT_BOUNDS.get(type_)
        for v in vals:
            if type(v) is str and _fits_text(v, type_):
                continue
            if type(v) is int and bounds is not None and bounds[0] <= v <= bounds[1]:
                continue  # a port or pid: nearly every event has some
            if type_ in _UNIQUE_TYPES or not isinstance(v, str | int | float):
                problem = _misfit(v, type_)
            else:
                key = (type_, type(v), v)
                problem = memo.get(key, _UNSEEN)
                if problem is _UNSEEN:
                    problem = memo[key] = _misfit(v, type_)
                    if len(memo) > CHECK_MEMO:
                        memo.clear()
            if problem is not None:
                return problem
        return None

    def _fast_candidate(self, index: int) -> bool:
        """Whether DuckDB may read this input: a file of a format DuckDB's reader takes
        (ingest.formats) not already sent to Python."""
        inp = self._inputs[index]
        if inp.stored is not None:
            return index not in self._slow
        if inp.path is None or index in self._slow:
            return False
        if inp.duckdb is None:
            self._resolve(inp)
        return bool(inp.duckdb)

    def _read_fields(self, scan: _Scan, index: int, limit: int | None) -> None:
        names = scan.per_input[index]
        fields = scan.fields
        if self._declared_fields(scan, index) or self._parquet_fields(scan, index):
            return
        for _line, flat in self._events(index, limit):
            names.update(flat)
            if flat.keys() - fields.keys():
                for name in flat:  # in the event's order, as the fields are listed
                    if name not in fields:
                        fields[name] = _FieldInfo()
            for name in [n for n, vals in flat.items() if len(vals) > 1]:
                fields[name].multivalued = True
            for name in flat.keys() - _ECS_NAMES:
                info = fields[name]
                for v in flat[name]:
                    kind = kind_of(v)
                    info.kinds.add(kind)
                    if kind == "string" and info.all_dates:
                        info.all_dates = looks_like_date(str(v))
        scan.complete[index] = limit is None

    def _declared_fields(self, scan: _Scan, index: int) -> bool:
        """The fields of a file `reconwatch export` wrote, from its footer: its events passed
        this class's checks when exported, so none is read to learn them (or to count them)."""
        inp = self._inputs[index]
        if inp.path is None or inp.format not in (None, "parquet"):
            return False
        if not inp.path.name.endswith(".parquet"):
            return False
        from reconwatch.ingest import sparkread

        found = sparkread.exported_fields(inp.path)
        if found is None:
            return False
        declared, rows = found
        if any(type_ not in _TYPE_NAMES for _, type_, _ in declared):
            return False  # a type this version does not know: read the events
        for name, type_, multi in declared:
            scan.per_input[index].add(name)
            info = scan.fields.setdefault(name, _FieldInfo())
            info.multivalued = info.multivalued or multi
            self._declared[name] = T(type_)
        scan.complete[index] = True
        if index not in self._reported:
            self._reported.add(index)
            self._good[index] = rows
            self.report.settle(index, rows, [])
        return True

    def _parquet_fields(self, scan: _Scan, index: int) -> bool:
        """The fields of a Parquet file DuckDB reads (ingest.parquet), learnt by DuckDB as the
        validating reader learns them reading every row, when no value of a schema field
        misfits (every event is good; else that reader reads the file, and reports them) and
        the texts outside the schema that may be dates are few enough to tell in Python."""
        planned = self._discovery_plan(index)
        if planned is None:
            return False
        columns, ecs = planned
        path = str(self._inputs[index].path)
        con = self._discovery_connection()
        wanted = parquet.fields_sql(path, columns, _ECS_NAMES)
        try:
            found = self._discovered.pop(index, None)
            if found is None:
                found = self._discover(con, path, columns, ecs)
            verdict, row = found
            if verdict is None or row is None:
                return False
            # The same check a read makes when the file's fields are all the schema's.
            self._parquet_exact[(index, tuple(sorted(ecs.items())))] = verdict
            dates = self._text_dates(con, path, wanted, row)
        except fast._duckdb_error():
            return False  # the validating reader reports what it finds
        if dates is None:
            return False
        self._learn(scan, index, wanted, row, dates)
        return True

    def _discovery_plan(self, index: int) -> tuple[list[parquet.LeafColumn], dict[str, T]] | None:
        """A Parquet input's leaf columns and its schema fields' types, when DuckDB may learn
        its fields (ingest.parquet maps every column of a schema field); None otherwise."""
        inp = self._inputs[index]
        if not self._parquet_candidate(index) or inp.path is None or index in self._reported:
            return None
        if index not in self._parquet_columns:
            self._parquet_columns[index] = parquet.file_columns(inp.path)
        columns = self._parquet_columns[index]
        if columns is None:
            return None
        ecs = {c.field: t for c in columns if (t := ECS_FIELDS.get(c.field)) is not None}
        return (columns, ecs) if parquet.mapped(columns, ecs) else None

    def _discover(
        self,
        con: duckdb.DuckDBPyConnection,
        path: str,
        columns: Sequence[parquet.LeafColumn],
        ecs: Mapping[str, T],
    ) -> tuple[frozenset[parquet.LeafColumn] | None, Sequence[object] | None]:
        """One file's discovery scans: the check's verdict, then (when it passed) the row of
        its fields_sql."""
        check = parquet.check_sql(path, columns, ecs)
        found = con.execute(check.sql).fetchall()
        verdict = check.verdict(found[0] if found else (), self._canonical_ips)
        if verdict is None:
            return None, None
        wanted = parquet.fields_sql(path, columns, _ECS_NAMES)
        return verdict, con.execute(wanted.sql).fetchall()[0]

    def _prefetch_discovery(self) -> None:
        """Alike Parquet files' discovery scans (the same columns: an export's files without its
        footer) as one statement each, on all DuckDB's threads; each file is still judged
        alone, and a failed statement leaves each to its own scans (_parquet_fields)."""
        from reconwatch.ingest import sparkread

        alike: dict[tuple[parquet.LeafColumn, ...], list[tuple[int, dict[str, T]]]] = {}
        for index, inp in enumerate(self._inputs):
            planned = self._discovery_plan(index)
            if planned is None or inp.path is None:
                continue
            if sparkread.exported_fields(inp.path) is not None:
                continue  # its footer declares its fields
            alike.setdefault(tuple(planned[0]), []).append((index, planned[1]))
        for columns, members in alike.items():
            if len(members) > 1:
                self._discover_alike(list(columns), members)

    def _discover_alike(
        self, columns: list[parquet.LeafColumn], members: list[tuple[int, dict[str, T]]]
    ) -> None:
        con = self._discovery_connection()
        paths = {index: str(self._inputs[index].path) for index, _ in members}
        checks = {index: parquet.check_sql(paths[index], columns, ecs) for index, ecs in members}
        try:
            rows = con.execute(_numbered(c.sql for c in checks.values())).fetchall()
            found = {int(r[0]): r[1:] for r in rows}
            verdicts = {
                index: check.verdict(found.get(n, ()), self._canonical_ips)
                for n, (index, check) in enumerate(checks.items())
            }
            good = [index for index, v in verdicts.items() if v is not None]
            wanted = [parquet.fields_sql(paths[i], columns, _ECS_NAMES).sql for i in good]
            rows = con.execute(_numbered(wanted)).fetchall() if good else []
        except fast._duckdb_error():
            return
        fields = {int(r[0]): r[1:] for r in rows}
        for index, verdict in verdicts.items():
            if verdict is None:
                self._discovered[index] = (None, None)
        for n, index in enumerate(good):
            if n in fields:
                self._discovered[index] = (verdicts[index], fields[n])

    def _discovery_connection(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection of the dataset's own for field discovery (closed after it)."""
        if self._discovery is None:
            import duckdb

            self._discovery = duckdb.connect()
            self._discovery.execute("SET enable_progress_bar = false")
        return self._discovery

    def _close_discovery(self) -> None:
        if self._discovery is not None:
            self._discovery.close()
            self._discovery = None

    @staticmethod
    def _text_dates(
        con: duckdb.DuckDBPyConnection,
        path: str,
        wanted: parquet.Fields,
        row: Sequence[object],
    ) -> dict[parquet.LeafColumn, bool] | None:
        """Per text column outside the schema that holds texts, whether every one is a date
        (Elasticsearch's date detection, flatten.looks_like_date, on its distinct texts); None
        when a column has too many distinct texts that may be dates to tell here."""
        out: dict[parquet.LeafColumn, bool] = {}
        shaped = row[len(row) - len(wanted.texts) :]
        for c, may_be in zip(wanted.texts, shaped, strict=True):
            if may_be is None:
                continue  # no text
            if not may_be:
                out[c] = False
                continue
            texts = con.execute(parquet.distinct_texts_sql(path, c)).fetchall()
            if len(texts) > parquet.DATE_TEXTS:
                return None
            out[c] = all(looks_like_date(str(t[0])) for t in texts)
        return out

    def _learn(
        self,
        scan: _Scan,
        index: int,
        wanted: parquet.Fields,
        row: Sequence[object],
        dates: Mapping[parquet.LeafColumn, bool],
    ) -> None:
        """Note what fields_sql found of an input (every event of it good) in `scan`."""
        names = len(wanted.fields)
        most = row[1 : 1 + names]
        held = row[1 + names : 1 + names + len(wanted.columns)]
        for name, n in zip(wanted.fields, most, strict=True):
            if not n:
                continue  # only nulls: no field, as for the validating reader
            scan.per_input[index].add(name)
            info = scan.fields.setdefault(name, _FieldInfo())
            if isinstance(n, int) and n > 1:
                info.multivalued = True
        for c, has in zip(wanted.columns, held, strict=True):
            if not has:
                continue
            info = scan.fields[c.field]
            kind = parquet.KIND_NAMES[c.kind]
            info.kinds.add(kind)
            if kind == "string" and not dates.get(c, True):
                info.all_dates = False
        scan.complete[index] = True
        rows = row[0] if isinstance(row[0], int) else 0
        self._reported.add(index)
        self._good[index] = rows
        self.report.settle(index, rows, [])

    def _retype(self, scan: _Scan) -> None:
        self._types = {
            n: ECS_FIELDS.get(n) or self._declared.get(n) or infer_type(i.kinds, i.all_dates)
            for n, i in scan.fields.items()
        }

    def _ensure_sample(self) -> _Scan:
        """Fields from the first SAMPLE_LINES events of each NDJSON file, all events of others."""
        if self._scan is not None:
            return self._scan
        scan = _Scan()
        try:
            if self.duckdb_parquet and len(self._inputs) > 1:
                self._prefetch_discovery()
            for index in range(len(self._inputs)):
                scan.per_input.append(set())
                scan.complete.append(False)
                limit = self._sample_size(index) if self._fast_candidate(index) else None
                self._read_fields(scan, index, limit)
        finally:
            self._close_discovery()
        self._scan = scan
        self._retype(scan)
        return scan

    def _sample_size(self, index: int) -> int:
        # A store's window is read by SQL that corrects itself (MULTI, RETYPE, JSON_LEAF) as a
        # file's is; its documents are decoded from the store, dearer than a file's lines.
        return STORED_SAMPLE if self._inputs[index].stored is not None else SAMPLE_LINES

    def _ensure_scan(self) -> _Scan:
        """Every event of every input read once (validation, exact field types)."""
        scan = self._ensure_sample()
        for index in range(len(self._inputs)):
            if not scan.complete[index]:
                self._read_fields(scan, index, None)
        self._retype(scan)
        return scan

    def present_fields(self) -> list[Column]:
        """The fields some event of some input has, typed, after reading every event once."""
        scan = self._ensure_scan()
        return [self._known(scan, name) for name in sorted(scan.fields)]

    def export_fields(self, con: duckdb.DuckDBPyConnection) -> list[Column]:
        """`present_fields()` without reading every event in Python where DuckDB's reader takes
        a file: DuckDB lists its fields (fast.leaf_names), typed as the query path types them
        (ECS, else inferred from the sample; a later value that does not fit the inferred type
        raises RETYPE when read, and then every event is read here). A file DuckDB cannot list,
        one with a field outside the schema its sample did not show (its type needs every
        value), and one DuckDB's read gave up on (`scan_failed`: bad events) are read through
        by the validating reader, whose fields they then have."""
        scan = self._ensure_sample()
        for index in range(len(self._inputs)):
            if scan.complete[index] or index in self._listed:
                continue
            listed = self._list_fields(con, index)
            if listed is None or any(n not in scan.fields and n not in _ECS_NAMES for n in listed):
                scan.per_input[index] = set()
                self._read_fields(scan, index, None)
            else:
                self._listed.add(index)
                for name in sorted(listed - scan.fields.keys()):
                    scan.fields[name] = _FieldInfo()
                scan.per_input[index].update(listed)
        for index in sorted(self._listed & self._slow):
            # Listed by DuckDB, then refused by its read: the fields of the good events only.
            self._listed.discard(index)
            scan.per_input[index] = set()
            self._read_fields(scan, index, None)
        self._retype(scan)
        names: set[str] = set().union(*scan.per_input)
        return [self._known(scan, name) for name in sorted(names)]

    def _list_fields(self, con: duckdb.DuckDBPyConnection, index: int) -> set[str] | None:
        """The fields DuckDB lists for an input its reader takes; None for another input."""
        inp = self._inputs[index]
        if not self._fast_candidate(index):
            return None
        if inp.stored is not None:
            return fast.leaf_names(con, inp.stored.sources())
        if inp.path is None or self._too_deep(con, index):
            return None
        return fast.leaf_names(con, fast.file_texts(str(inp.path)))

    def complete_fields(self) -> bool:
        """Read every event for its fields if only samples were; False when nothing was left."""
        if self._scan is not None and all(self._scan.complete):
            return False
        self._ensure_scan()
        return True

    def scan(self) -> IngestReport:
        """Read every input once (validation and field discovery); returns the report."""
        self._ensure_scan()
        return self.report

    def unusable_inputs(self) -> list[str]:
        """One line for each file read through that gave no event at all but an error: the
        wrong file, not a few bad events. An unrecognised file says what it looks like (its
        format error); a recognised one how many bad events it had. An audit log is a known
        format even when none of its records is a connection (it reports no error then)."""
        out: list[str] = []
        for index, inp in enumerate(self._inputs):
            if inp.path is None or self._good.get(index) != 0:
                continue
            names = (inp.name, str(inp.path))
            errors = [e for e in self.report.errors if e.path in names]
            if not errors:
                continue
            unrecognised = [e for e in errors if isinstance(e, formats.UnrecognisedFormatError)]
            if unrecognised:
                out.append(unrecognised[0].one_line())
            elif len(errors) == 1 and errors[0].line is None:
                out.append(errors[0].one_line())  # cannot read file: permission denied ...
            elif self._audit_log(inp):
                continue
            else:
                out.append(f"{inp.name}: no events read: all {len(errors)} were bad events (above)")
        return out

    @staticmethod
    def _audit_log(inp: _Input) -> bool:
        if inp.format is not None or inp.path is None:
            return inp.format == "auditd"
        try:
            return formats.sniff(inp.path).name == "auditd"
        except (OSError, formats.UnrecognisedFormatError):
            return False

    # -- catalog -------------------------------------------------------------------------------

    def selected_inputs(self, indices: Sequence[str]) -> list[int]:
        """Inputs a FROM clause reads: unmapped inputs always, mapped ones when a pattern matches."""
        if not self._footers_read:
            self._read_footers()
        chosen = []
        for i, inp in enumerate(self._inputs):
            if not inp.patterns or any(_overlaps(f, p) for f in indices for p in inp.patterns):
                chosen.append(i)
        return chosen

    def _read_footers(self) -> None:
        """Exported files of a store's index (their footer names it) belong to that index, as
        the store's events do: a FROM reads them when its patterns match it, their _index is
        that index and their _id and _version the stored ones."""
        self._footers_read = True
        for inp in self._inputs:
            if inp.path is None or inp.patterns or inp.format not in (None, "parquet"):
                continue
            if not inp.path.name.endswith(".parquet"):
                continue
            from reconwatch.ingest import sparkread

            index = sparkread.exported_index(inp.path)
            if index is not None:
                inp.patterns, inp.index, inp.exported = (index,), index, True

    def plain_files(self, indices: Sequence[str]) -> list[Path] | None:
        """The files a FROM clause reads, when each is an uncompressed NDJSON file DuckDB reads
        (an event's line can then be sought in it: ingest.locate); None otherwise."""
        paths: list[Path] = []
        for index in self.selected_inputs(indices):
            path = self._inputs[index].path
            if path is None or not self._fast_candidate(index) or not is_plain(path):
                return None
            paths.append(path)
        return paths

    def fields(self, indices: tuple[str, ...]) -> Mapping[str, Column]:
        scan = self._ensure_sample()
        out: dict[str, Column] = {}
        if any(is_ecs_index(i) for i in indices):
            out.update({n: Column(n, t) for n, t in ECS_FIELDS.items()})
        for i in self.selected_inputs(indices):
            for name in scan.per_input[i]:
                out[name] = self._known(scan, name)
        return out

    def _known(self, scan: _Scan, name: str) -> Column:
        multi = scan.fields[name].multivalued or name in self._multivalued
        return Column(name, self._types[name], multi)

    def column(self, name: str) -> Column | None:
        scan = self._ensure_sample()
        if name in scan.fields:
            return self._known(scan, name)
        type_ = ECS_FIELDS.get(name)
        if type_ is not None:
            return Column(name, type_, name in self._multivalued)
        if not all(scan.complete):
            # Neither the schema nor the sample knows it: look at every event before saying no.
            scan = self._ensure_scan()
            if name in scan.fields:
                return self._known(scan, name)
        return None

    # -- DuckDB's own reader -------------------------------------------------------------------

    def register_source(
        self,
        con: duckdb.DuckDBPyConnection,
        names: Sequence[str],
        inputs: Sequence[int],
        metadata: Sequence[str] = (),
        filtered: Collection[str] | None = None,
        *,
        in_order: bool = False,
    ) -> bool:
        """Make `rw_source` on `con`: DuckDB reads NDJSON files itself where it can, the Python
        reader supplies the rest as Arrow batches. `filtered`: the fields the query's filters
        read (all when None), which DuckDB's reader checks for every event (fast.source_select).
        `in_order`: the rows in input order (an export's), not the Python reader's inputs last."""
        cols = [self.column(n) or Column(n, T.KEYWORD) for n in names]
        # (input, its SELECT or None for the Python reader), in input order.
        parts: list[tuple[int, str | None]] = []
        if not metadata:
            self._check_parquet_files(con, inputs)
        alike: list[tuple[int, _ParquetRead]] = []  # consecutive Parquet files read as one
        for index in inputs:
            read = self._parquet_read(con, index, metadata)
            if (
                read is not None
                and alike
                and alike[-1][1] == read
                and parquet.read_together(read[0])
            ):
                alike.append((index, read))
                continue
            parts += self._parquet_selects(con, alike, cols)
            alike = [(index, read)] if read is not None else []
            if read is not None:
                continue
            deep = self._fast_candidate(index) and self._too_deep(con, index)
            parts.append(
                (index, None if deep else self._fast_select(index, cols, metadata, filtered))
            )
        parts += self._parquet_selects(con, alike, cols)
        slow = [index for index, sql in parts if sql is None]
        selects = [sql for _, sql in parts if sql is not None]
        if in_order:
            selects = self._python_runs(con, parts, names, cols, metadata)
        elif slow or not selects:
            selects.append(self._python_reader(con, "rw_python", names, slow, cols, metadata))
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW rw_source AS {' UNION ALL BY NAME '.join(selects)}"
            )
        except fast._duckdb_error() as exc:
            # A store's SQL on a connection that cannot see its table: read its documents.
            if not self.scan_failed(str(exc), [i for i in inputs if i not in slow]):
                raise
            return self.register_source(con, names, inputs, metadata, filtered, in_order=in_order)
        return True

    def _python_runs(
        self,
        con: duckdb.DuckDBPyConnection,
        parts: Sequence[tuple[int, str | None]],
        names: Sequence[str],
        cols: Sequence[Column],
        metadata: Sequence[str],
    ) -> list[str]:
        """The SELECTs of `parts` in their order, each run of inputs the Python reader reads
        as one registered reader of its own."""
        selects: list[str] = []
        run: list[int] = []
        for index, sql in [*parts, (-1, "")]:
            if sql is None:
                run.append(index)
                continue
            if run:
                name = f"rw_python_{len(selects)}"
                selects.append(self._python_reader(con, name, names, run, cols, metadata))
                run = []
            if sql:
                selects.append(sql)
        if not selects:
            selects.append(self._python_reader(con, "rw_python_0", names, [], cols, metadata))
        return selects

    def _python_reader(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        names: Sequence[str],
        inputs: Sequence[int],
        cols: Sequence[Column],
        metadata: Sequence[str],
    ) -> str:
        """Register the Python reader's batches of `inputs` on `con` as `name`; its SELECT."""
        import pyarrow as pa

        schema = self.arrow_schema(cols, metadata)
        reader = pa.RecordBatchReader.from_batches(schema, self.batches(names, inputs, metadata))
        con.register(name, reader)
        return f"SELECT * FROM {name}"

    def _fast_select(
        self,
        index: int,
        cols: Sequence[Column],
        metadata: Sequence[str],
        filtered: Collection[str] | None = None,
    ) -> str | None:
        if not self._fast_candidate(index):
            return None
        inp = self._inputs[index]
        stored = inp.stored
        if metadata and (stored is None or any(stored.metadata(m) is None for m in metadata)):
            return None
        if any(c.type not in fast.FAST_TYPES for c in cols):
            return None
        scan = self._ensure_sample()
        leaves = [
            fast.Leaf(c.name, c.type, c.multivalued, self._misfit(scan, c.name), self._as_text(c))
            for c in cols
        ]
        checks = [fast.Leaf(n, t, False) for n, t in self._checks(scan, index, cols)]
        if stored is not None:
            extra = [f'{stored.metadata(m)} AS "{m}"' for m in metadata]
            # The fields only checked are vouched for too: a regular value passes every check.
            regular = stored.regular([(f.name, f.type) for f in [*leaves, *checks]])
            if regular is not None:
                relation, typed = regular
                return fast.regular_select(relation, index, leaves, filtered, extra, typed)
            return fast.json_column_select(stored.relation, index, leaves, checks, filtered, extra)
        assert inp.path is not None
        return fast.source_select(str(inp.path), index, leaves, checks, filtered)

    def _parquet_candidate(self, index: int) -> bool:
        """Whether DuckDB's Parquet reader may read this input: a Parquet file not already sent
        to the validating reader."""
        inp = self._inputs[index]
        if not self.duckdb_parquet or inp.path is None or inp.stored is not None:
            return False
        if index in self._slow:
            return False
        if inp.parquet is None:
            self._resolve(inp)
        return bool(inp.parquet)

    @staticmethod
    def _resolve(inp: _Input) -> None:
        """Which of DuckDB's readers may read a file, by its format (looked at once)."""
        assert inp.path is not None
        try:
            fmt = formats.resolve(inp.path, inp.format)
        except Exception:  # unreadable or unrecognised: the Python reader reports it
            inp.duckdb = inp.parquet = False
            return
        inp.duckdb, inp.parquet = fmt.duckdb, fmt.name == "parquet"

    def _parquet_read(
        self, con: duckdb.DuckDBPyConnection, index: int, metadata: Sequence[str]
    ) -> _ParquetRead | None:
        """How DuckDB reads a Parquet input (its columns, those read as they are), or None for
        the validating reader: not a Parquet file DuckDB reads, a METADATA field asked for, a
        column type ingest.parquet does not map, a value it does not convert exactly (a field's
        misfit included: Elasticsearch would reject the event, and the validating reader
        reports it), or a file DuckDB cannot read."""
        if metadata or not self._parquet_candidate(index):
            return None
        planned = self._parquet_plan(index)
        if planned is None:
            return None
        columns, key = planned
        inp = self._inputs[index]
        assert inp.path is not None
        if key not in self._parquet_exact:
            self._parquet_exact[key] = self._parquet_check(con, inp.path, columns, dict(key[1]))
        found = self._parquet_exact[key]
        if found is None:
            self._slow.add(index)
            return None
        return tuple(columns), found

    def _parquet_selects(
        self,
        con: duckdb.DuckDBPyConnection,
        alike: Sequence[tuple[int, _ParquetRead]],
        cols: Sequence[Column],
    ) -> list[tuple[int, str | None]]:
        """(input, SELECT) parts for consecutive alike Parquet inputs: one SELECT reading them
        all (the first input's part; over their kept rows with keep_parquet_reads), or each to
        the validating reader (None) when a column the query reads is of a type
        ingest.parquet does not convert."""
        if not alike:
            return []
        columns, as_is = alike[0][1]
        files = [(str(self._inputs[index].path), index) for index, _ in alike]
        leaves = [fast.Leaf(c.name, c.type, c.multivalued) for c in cols]
        sql = parquet.select_sql(files, columns, leaves, as_is)
        if sql is None:
            return [(index, None) for index, _ in alike]
        if self._parquet_kept is not None:
            sql = self._kept_select(con, files, alike[0][1], leaves) or sql
        return [(alike[0][0], sql)]

    def _kept_select(
        self,
        con: duckdb.DuckDBPyConnection,
        files: Sequence[tuple[str, int]],
        read: _ParquetRead,
        leaves: Sequence[fast.Leaf],
    ) -> str | None:
        """The SELECT of alike Parquet inputs over their converted rows kept in memory (read
        now if not kept yet: the leaves the files hold, every row), or None when they are not
        kept (parquet.KeptReads: too many rows, or a failed read)."""
        assert self._parquet_kept is not None
        columns, as_is = read
        held = parquet.present(leaves, columns)
        inner = parquet.select_sql(files, columns, held, as_is)
        if inner is None:
            return None
        name = self._parquet_kept.relation(
            con, inner, lambda: sum(self._parquet_row_count(index) for _, index in files)
        )
        if name is None:
            return None
        return parquet.kept_select(name, leaves, {leaf.name for leaf in held})

    def _parquet_row_count(self, index: int) -> int:
        """How many rows a Parquet input holds (its footer, read once)."""
        if index not in self._parquet_rows:
            import pyarrow.parquet as pq

            path = self._inputs[index].path
            try:
                self._parquet_rows[index] = pq.read_metadata(str(path)).num_rows
            except Exception:  # pyarrow's own errors too: not kept, read as before
                self._parquet_rows[index] = sys.maxsize
        return self._parquet_rows[index]

    def keep_parquet_reads(self) -> None:
        """Keep the rows DuckDB reads and converts from Parquet files for later queries reading
        the same columns (parquet.KeptReads: at most KEPT_ROWS rows a read, KEPT_BYTES in all),
        each query filtering them itself: a rule's runs over many windows read and convert the
        files once, not once per run."""
        if self._parquet_kept is None:
            self._parquet_kept = parquet.KeptReads()

    def _parquet_plan(
        self, index: int
    ) -> tuple[list[parquet.LeafColumn], tuple[int, tuple[tuple[str, T], ...]]] | None:
        """A Parquet input's leaf columns and its check's key (the input, its fields' types),
        or None (sent to the validating reader: read through with bad events, or a column
        type ingest.parquet does not map)."""
        self._ensure_sample()  # the fields' types; a file with bad events read through is slow
        inp = self._inputs[index]
        if index in self._slow or inp.path is None:
            return None
        if index not in self._parquet_columns:
            self._parquet_columns[index] = parquet.file_columns(inp.path)
        columns = self._parquet_columns[index]
        types = {}
        for c in columns or ():
            type_ = ECS_FIELDS.get(c.field) or self._types.get(c.field)
            if type_ is not None:
                types[c.field] = type_
        if columns is None or not parquet.mapped(columns, types):
            self._slow.add(index)
            return None
        return columns, (index, tuple(sorted(types.items())))

    def _check_parquet_files(self, con: duckdb.DuckDBPyConnection, inputs: Sequence[int]) -> None:
        """The checks of these Parquet inputs not made yet, alike files' (an export's: the same
        columns and types) in one statement, which DuckDB runs on all its threads; a failure
        leaves each to be checked alone (_parquet_select)."""
        alike: dict[object, list[tuple[tuple[int, tuple[tuple[str, T], ...]], parquet.Check]]] = {}
        for index in inputs:
            planned = self._parquet_plan(index) if self._parquet_candidate(index) else None
            if planned is None or planned[1] in self._parquet_exact:
                continue
            columns, key = planned
            path = str(self._inputs[index].path)
            check = parquet.check_sql(path, columns, dict(key[1]))
            alike.setdefault((tuple(columns), key[1]), []).append((key, check))
        for members in alike.values():
            if len(members) < 2:
                continue
            try:
                rows = con.execute(_numbered(check.sql for _, check in members)).fetchall()
            except fast._duckdb_error():
                continue
            found = {int(r[0]): r[1:] for r in rows}
            for n, (key, check) in enumerate(members):
                if n in found:
                    self._parquet_exact[key] = check.verdict(found[n], self._canonical_ips)

    def _parquet_check(
        self,
        con: duckdb.DuckDBPyConnection,
        path: Path,
        columns: Sequence[parquet.LeafColumn],
        types: Mapping[str, T],
    ) -> frozenset[parquet.LeafColumn] | None:
        """None unless every value of the file converts exactly (ingest.parquet.check_sql);
        else the columns whose values need no conversion."""
        check = parquet.check_sql(str(path), columns, types)
        if len(self._canonical_ips) > CHECK_MEMO:
            self._canonical_ips.clear()
        try:
            rows = con.execute(check.sql).fetchall()
        except fast._duckdb_error():
            return None  # unreadable here: the validating reader reports what it finds
        return check.verdict(rows[0] if rows else (), self._canonical_ips)

    def _checks(self, scan: _Scan, index: int, cols: Sequence[Column]) -> list[tuple[str, T]]:
        """The fields DuckDB's reader checks though the query does not read them: numeric and
        boolean ECS fields the input's sample saw (an event Elasticsearch would reject for one
        is dropped and reported)."""
        wanted = {c.name for c in cols}
        return [
            (n, t)
            for n in sorted(scan.per_input[index] - wanted)
            if (t := ECS_FIELDS.get(n)) is not None and fast.check_type(t) is not None
        ]

    def scan_files(
        self, indices: Sequence[str], names: Sequence[str]
    ) -> list[tuple[Path, list[tuple[str, T]]]] | None:
        """The files a FROM clause reads, each with the fields DuckDB's reader would check
        beyond `names` (`_checks`), when every one is an uncompressed NDJSON file that reader
        may take (`plain_files`); None otherwise. What a line scan must validate to answer
        as DuckDB's reader does."""
        scan = self._ensure_sample()  # it sends a file with a bad event to the Python reader
        paths = self.plain_files(indices)
        if paths is None:
            return None
        cols = [self.column(n) or Column(n, T.KEYWORD) for n in names]
        chosen = self.selected_inputs(indices)
        return [(path, self._checks(scan, i, cols)) for path, i in zip(paths, chosen, strict=True)]

    def _as_text(self, col: Column) -> bool:
        return (
            col.type in fast.TEXT_TYPES
            and not col.multivalued
            and col.name not in self._json_leaves
            and col.name not in self._arrays
        )

    def _misfit(self, scan: _Scan, name: str) -> str:
        if name in ECS_FIELDS:
            return "slow"
        return "drop" if all(scan.complete) else "retype"

    def scan_failed(self, message: str, inputs: Sequence[int]) -> bool:
        """Learn from DuckDB's failure while reading `inputs`; True when a re-run can succeed."""
        # A tag in the statement DuckDB quotes after the error (a bind error's `LINE 1: ...`)
        # is SQL text, not an error the SQL raised.
        raised = _QUOTED_SQL.split(message, 1)[0]
        for tag in (fast.SLOW, fast.MULTI, fast.RETYPE, fast.JSON_LEAF):
            if tag in raised:
                what = raised.split(tag, 1)[1].split()[0].strip("'\"")
                if tag == fast.SLOW:
                    self._slow.add(int(what))
                elif tag == fast.MULTI:
                    self._multivalued.add(what)
                elif tag == fast.JSON_LEAF:
                    self._json_leaves.add(what)
                else:
                    self._ensure_scan()
                return True
        for index in inputs:
            inp = self._inputs[index]
            if index not in self._slow and inp.path is not None and str(inp.path) in message:
                self._slow.add(index)  # malformed JSON, a non-object line, a truncated file ...
                return True
        # Stored events SQL could not read (not JSON, a store it cannot reach): as documents.
        stored = [i for i in inputs if self._inputs[i].stored is not None and i not in self._slow]
        self._slow.update(stored)
        return bool(stored)

    def read_as_json(self, names: Iterable[str]) -> None:
        """DuckDB's reader reads these fields as JSON, not text (as after their JSON_LEAF)."""
        self._json_leaves.update(names)

    def counted_later(self, inputs: Sequence[int]) -> None:
        """After a query DuckDB read: count those files' events only if the report is asked.
        After Spark's workers read files: what they met, for the files they read through."""
        self._settle_spark()
        for index in inputs:
            inp = self._inputs[index]
            if index in self._reported or index in self._slow or inp.path is None:
                continue
            if index in self._spark_inputs:
                continue  # pruned, or a LIMIT stopped its task: not read through
            self.report.defer(index, functools.partial(_count_lines, str(inp.path)))

    # -- Spark's workers -----------------------------------------------------------------------

    def spark_chunks(
        self,
        spark: Any,
        names: Sequence[str],
        inputs: Sequence[int],
        metadata: Sequence[str],
        days: tuple[date | None, date | None] | None,
    ) -> Any:
        """The rows `rows` gives, read on Spark's workers one file per task (files of the days
        `days` only, by their `dt=` directory); None when an input is not a file a worker
        reads (documents, audit logs, JSON arrays: the driver reads those)."""
        from reconwatch.ingest import sparkread  # only a Spark run needs it

        tasks: list[sparkread.FileTask] = []
        for index in inputs:
            inp = self._inputs[index]
            if inp.path is None:
                return None
            try:
                fmt = formats.resolve(inp.path, inp.format)
            except (OSError, IngestError):
                return None  # the driver's reader reports it
            if fmt.name not in sparkread.SPARK_FORMATS:
                return None
            self._spark_inputs.add(index)
            if sparkread.in_days(inp.path, days):
                tasks.append(sparkread.FileTask(index, str(inp.path), fmt.name, inp))
        if any(n not in ECS_FIELDS for n in names):
            self._ensure_scan()
        else:
            self._ensure_sample()
        cols = tuple(self.column(n) or Column(n, T.KEYWORD) for n in names)
        decode_args = {
            "cols": cols,
            "metadata": tuple(metadata),
            "cell": _row_cell,
            "meta": _meta,
            "check": Dataset([])._check,
        }
        kept = self._kept_reads
        if kept is None:
            rdd, outcomes = sparkread.chunks(spark, tasks, decode_args)
            self._spark_outcomes.append(outcomes)
            return rdd
        # Each file's rows decoded once and cached; a task per file in input order, as above.
        shape = (tuple((c.name, c.type, c.multivalued) for c in cols), tuple(metadata))
        parts = []
        for task in tasks:
            key = (task.index, task.path, shape)
            part = kept.get(key)
            if part is None:
                part, outcomes = sparkread.chunks(spark, [task], decode_args)
                self._spark_outcomes.append(outcomes)
                part = kept.keep(key, part)
            parts.append(part)
        if not parts:
            return sparkread.chunks(spark, [], decode_args)[0]
        return spark.sparkContext.union(parts)

    def keep_spark_reads(self) -> None:
        """Keep each file's Spark read cached for later queries reading it (a rule's runs over
        many windows: each file is read once, not once per run that needs it): exported Parquet
        read by Spark's reader, and the rows the workers' readers decode from any file."""
        from reconwatch.ingest import sparkread

        if self._kept_reads is None:
            self._kept_reads = sparkread.KeptReads()

    def widen_spark_reads(self, names: Sequence[str]) -> None:
        """With keep_spark_reads, every exported file Spark reads from now on is read (and
        kept) with these fields too, so a later query reading some of them takes the kept rows
        (a rule's evidence after the grouped pass of its runs) instead of a second read."""
        self._wider = tuple(dict.fromkeys(names))

    def spark_frame(
        self,
        spark: Any,
        cols: Sequence[Column],
        inputs: Sequence[int],
        days: tuple[date | None, date | None] | None,
    ) -> Any:
        """The `cols` fields of `inputs` read by Spark's own Parquet reader, when every input is
        a file `reconwatch export` wrote (its events checked and converted already, so the rows
        are the ones `rows` gives); files of other days than `days` skipped. None otherwise."""
        from reconwatch.ingest import sparkread  # only a Spark run needs it

        files: list[tuple[int, str]] = []
        for index in inputs:
            inp = self._inputs[index]
            if inp.path is None or inp.format not in (None, "parquet"):
                return None
            if not inp.path.name.endswith(".parquet"):
                return None
            if sparkread.in_days(inp.path, days):
                files.append((index, str(inp.path)))
        if not files:
            return None
        frame = None
        wide = self._widened(cols)
        if len(wide) > len(cols):
            frame = sparkread.frame(
                spark, files, wide, self.arrow_schema(wide, ()), self._kept_reads
            )
            if frame is not None:  # the asked columns are the first: c0 .. c(n-1)
                frame = frame.select(*[f"c{i}" for i in range(len(cols))], sparkread.ORD)
        if frame is None:
            types = self.arrow_schema(cols, ())
            frame = sparkread.frame(spark, files, cols, types, self._kept_reads)
        if frame is None:
            return None
        import pyarrow.parquet as pq

        for index in inputs:
            self._spark_inputs.add(index)
        for index, path in files:
            if index not in self._reported:
                # Exported events all passed the checks: every row is a good event.
                self._reported.add(index)
                self._good[index] = pq.read_metadata(path).num_rows
                self.report.settle(index, self._good[index], [])
        return frame

    def _widened(self, cols: Sequence[Column]) -> list[Column]:
        """`cols`, then the widening fields (widen_spark_reads) the catalog knows, when kept."""
        if self._kept_reads is None or not self._wider:
            return list(cols)
        asked = {c.name for c in cols}
        extra = [self.column(n) for n in self._wider if n not in asked]
        return [*cols, *(c for c in extra if c is not None)]

    def _settle_spark(self) -> None:
        for outcomes in self._spark_outcomes:
            for index, (good, errors) in sorted(outcomes.value.items()):
                if index in self._reported:
                    continue
                self._reported.add(index)
                self._good[index] = good
                name = self._inputs[index].name
                found = [IngestError(reason, name, line) for line, reason in errors]
                self.report.settle(index, good, found)
        self._spark_outcomes = []

    # -- tables for executors ------------------------------------------------------------------

    def batches(
        self, names: Sequence[str], inputs: Sequence[int], metadata: Sequence[str] = ()
    ) -> Iterator[pa.RecordBatch]:
        """Arrow batches holding only `names` (typed, lists where multivalued), METADATA and __src."""
        if any(n not in ECS_FIELDS for n in names):
            self._ensure_scan()  # a field outside the schema takes the type all its values fit
        else:
            self._ensure_sample()
        cols = [self.column(n) or Column(n, T.KEYWORD) for n in names]
        schema = self.arrow_schema(cols, metadata)
        shape = (tuple((c.name, c.type, c.multivalued) for c in cols), tuple(metadata))
        for index in inputs:
            key = (index, *shape)
            cached = self._converted.pop(key, None)
            if cached is None:
                cached = []
                for batch in self._input_batches(schema, cols, metadata, index):
                    cached.append(batch)
                    yield batch
                if index not in self._kept:
                    continue  # too large to keep: read again by the next query
            else:
                yield from cached
            self._converted[key] = cached  # most recently used last
            while len(self._converted) > CONVERTED_SHAPES * len(self._inputs):
                del self._converted[next(iter(self._converted))]

    def _input_batches(
        self, schema: pa.Schema, cols: Sequence[Column], metadata: Sequence[str], index: int
    ) -> Iterator[pa.RecordBatch]:
        inp = self._inputs[index]
        rows: list[tuple[int, Flat]] = []
        for line, flat in self._events(index):
            rows.append((line, flat))
            if len(rows) >= BATCH:
                yield self._batch(schema, cols, metadata, index, inp, rows)
                rows = []
        if rows:
            yield self._batch(schema, cols, metadata, index, inp, rows)

    def rows(
        self, names: Sequence[str], inputs: Sequence[int], metadata: Sequence[str] = ()
    ) -> Iterator[dict[str, object]]:
        """The rows `batches` holds, as dicts of plan-convention values (a list is a multivalue)."""
        if any(n not in ECS_FIELDS for n in names):
            self._ensure_scan()
        else:
            self._ensure_sample()
        cols = [self.column(n) or Column(n, T.KEYWORD) for n in names]
        for index in inputs:
            inp = self._inputs[index]
            for line, flat in self._events(index):
                row = {c.name: _row_cell(flat.get(c.name), c) for c in cols}
                for m in metadata:
                    row[m] = _meta(m, inp, line, flat)
                yield row

    def arrow_schema(self, cols: Sequence[Column], metadata: Sequence[str]) -> pa.Schema:
        import pyarrow as pa

        fields = [pa.field(SOURCE_COLUMN, pa.int32())]
        for c in cols:
            base = _arrow_types().get(c.type, pa.string())
            fields.append(pa.field(c.name, pa.list_(base) if c.multivalued else base))
        for m in metadata:
            fields.append(pa.field(m, pa.int64() if m == "_version" else pa.string()))
        return pa.schema(fields)

    def _batch(
        self,
        schema: pa.Schema,
        cols: Sequence[Column],
        metadata: Sequence[str],
        index: int,
        inp: _Input,
        rows: list[tuple[int, Flat]],
    ) -> pa.RecordBatch:
        import pyarrow as pa

        arrays: list[list[Any]] = [[index] * len(rows)]
        for c in cols:
            arrays.append([_cell(flat.get(c.name), c) for _line, flat in rows])
        for m in metadata:
            arrays.append([_meta(m, inp, line, flat) for line, flat in rows])
        return pa.RecordBatch.from_arrays(
            [pa.array(a, type=f.type) for a, f in zip(arrays, schema, strict=True)], schema=schema
        )


def _numbered(selects: Iterable[str]) -> str:
    """One statement of these one-row SELECTs, each row led by its place (rw_n)."""
    return " UNION ALL ".join(
        f"SELECT {n} AS rw_n, * FROM ({sql})" for n, sql in enumerate(selects)
    )


def _counted_shallow(path: Path) -> bool:
    """A plain file whose lines' opening brackets, counted at C speed, rule out a deep line (and
    any failure of DuckDB's raw-line read): that read, ~2x the CPU, is then not needed."""
    return is_plain(path) and fast.no_deep_line(str(path), MAX_DEPTH)


def _fits_text(text: str, type_: T) -> bool:
    """A quick yes for the text leaves nearly every event has (any keyword, a plain IPv4, an
    ISO UTC time): `convert_leaf` takes these. False means "ask convert_leaf", not "misfit"."""
    if type_ is T.KEYWORD or type_ is T.TEXT:
        return True
    if type_ is T.IP:
        if _PLAIN_IPV4.fullmatch(text) is not None:
            return True
        # An IPv6 address in hex groups (no embedded IPv4, zone or space): the C parser and
        # ipaddress agree on those, at a tenth of the cost (hosts' IPv6 addresses are unique).
        return _HEX_IPV6.fullmatch(text) is not None and _valid_ipv6(text)
    if type_ in _UNIQUE_TYPES:
        # The shape leaves only the calendar to check: the day (memoised) and the clock fields.
        return (
            _ISO_UTC.fullmatch(text) is not None
            and text[11:13] < "24"
            and text[14:16] < "60"
            and text[17:19] < "60"
            and _valid_day(text[:10])
        )
    return False


def _valid_ipv6(text: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6, text)
    except OSError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _valid_day(day: str) -> bool:
    return _misfit(day, T.DATETIME) is None


def _compiled_walk() -> Callable[[dict[str, object], set[str], set[str]], Flat | None] | None:
    """The compiled walk (_walk.c), None where the install could not build it."""
    try:
        from reconwatch.ingest._walk import walk
    except ImportError:
        return None
    return walk


def _compiled_doubts() -> Callable[[Flat, dict[str, int]], list[str]] | None:
    """The compiled quick yes (_walk.c), None where the install could not build it."""
    try:
        from reconwatch.ingest._walk import doubtful
    except ImportError:
        return None
    return doubtful


_compiled = _compiled_walk()
_doubtful = _compiled_doubts()
# What the compiled quick yes knows of each typed ECS field (_walk.c's QUICK_* codes; 0: none).
_QUICK_CODES = {
    T.IP: 1,
    T.DATETIME: 2,
    T.DATE_NANOS: 2,
    T.INTEGER: 3,
    T.LONG: 4,
    T.UNSIGNED_LONG: 5,
}
_QUICK_KINDS = {name: _QUICK_CODES.get(ECS_FIELDS[name], 0) for name in _NON_TEXT_ECS}


def flatten_noting_arrays(
    doc: dict[str, object], arrays: set[str], odd: set[str], *, compiled: bool = True
) -> Flat:
    """`flatten(doc)`, adding to `arrays` the dotted paths at which `doc` holds a JSON array
    and to `odd` those of leaves that are not text, in one walk: in C (_walk.c, ~8x faster)
    for plain JSON values, else (or with `compiled=False`) in Python, with the same result."""
    if compiled and _compiled is not None:
        flat = _compiled(doc, arrays, odd)
        if flat is not None:
            return flat
    out: Flat = {}
    _walk_noting(doc, "", out, arrays, odd)
    return out


def _walk_noting(value: object, prefix: str, out: Flat, arrays: set[str], odd: set[str]) -> None:
    # flatten's walk with the leaves of an object handled in its loop (most leaves are there).
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(item, dict | list):
                _walk_noting(item, path, out, arrays, odd)
            elif item is not None and path:
                if type(item) is not str:
                    odd.add(path)
                leaves = out.get(path)
                if leaves is None:
                    out[path] = [item]
                else:
                    leaves.append(item)
    elif isinstance(value, list):
        arrays.add(prefix)
        for item in value:
            _walk_noting(item, prefix, out, arrays, odd)
    elif value is not None and prefix:
        if type(value) is not str:
            odd.add(prefix)
        leaves = out.get(prefix)
        if leaves is None:
            out[prefix] = [value]
        else:
            leaves.append(value)


def _misfit(value: object, type_: T) -> str | None:
    """Why a leaf does not fit its ECS type (Elasticsearch rejects the event), or None."""
    try:
        convert_leaf(value, type_)
    except values.ConversionError as exc:
        return str(exc)
    return None


def _count_lines(path: str) -> int:
    """Events in an NDJSON file DuckDB read without complaint: its non-blank lines."""
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        row = con.execute(
            "SELECT count(*) FROM read_json(?, format='newline_delimited', "
            "columns={'@timestamp': 'JSON', 'message': 'JSON'})",
            [path],
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def _cell(vals: list[object] | None, col: Column) -> object:
    cell = _values(vals, col)
    if isinstance(cell, list):
        return [_arrow_value(v, col.type) for v in cell]
    return _arrow_value(cell, col.type)


def _row_cell(vals: list[object] | None, col: Column) -> object:
    cell = _values(vals, col)
    return values.from_list(cell) if isinstance(cell, list) else cell


def _values(vals: list[object] | None, col: Column) -> object:
    """A field's leaves as the column's type: a list (doc-values order) when it is multivalued,
    else its one value; None when none converts, or for several in a single-valued column."""
    if not vals:
        return None
    out = []
    for v in vals:
        try:
            out.append(convert_leaf(v, col.type))
        except values.ConversionError:
            continue  # only fields outside ECS get here: a value the inferred type cannot hold
    if not out:
        return None
    if col.multivalued:
        return doc_values_order(out, col.type)
    return out[0] if len(out) == 1 else None


def doc_values_order(items: list[Any], type_: T) -> list[Any]:
    """A multivalue as Elasticsearch returns it from doc values: sorted; keyword-like types unique."""
    if type_ in (T.KEYWORD, T.IP, T.VERSION, T.TEXT):
        items = list(dict.fromkeys(items))
    return sorted(items, key=lambda v: values.order_key(v, type_))


def _arrow_value(value: object, type_: T) -> object:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    return value


def _meta(name: str, inp: _Input, line: int, flat: Flat) -> object:
    if name == "_version":
        kept = flat.get("_version") if inp.exported else None
        return int(kept[0]) if kept and isinstance(kept[0], int) else 1
    if name == "_index":
        stored = inp.ids or inp.stored is not None or inp.exported
        return inp.index if stored else index_name(inp, flat)
    if name == "_source":
        skip = _STORED_METADATA if inp.exported else ()
        return document_json({k: values.from_list(vs) for k, vs in flat.items() if k not in skip})
    if name != "_id":
        return None  # _ignored: nothing is ignored at "index" time here
    if inp.ids:
        return inp.ids[line - 1]
    given = flat.get("_id")
    if given:
        return str(given[0])
    digest = hashlib.sha1(f"{inp.name}:{line}".encode()).digest()
    return digest[:15].hex()


# Columns an export of a store's index keeps its METADATA in (ingest.sparkread.STORED_METADATA).
_STORED_METADATA = frozenset({"_index", "_id", "_version"})


def index_name(inp: _Input, flat: Flat) -> str:
    """The data stream an event would be indexed into, from its data_stream.* fields when present."""
    parts = [flat.get(f"data_stream.{k}") for k in ("type", "dataset", "namespace")]
    if all(parts):
        return "-".join(str(p[0]) for p in parts if p)
    if inp.index:
        return inp.index
    if inp.patterns:
        return inp.patterns[0]
    return Path(inp.name).name if inp.path is not None else inp.name


def _overlaps(from_pattern: str, index_pattern: str) -> bool:
    """Whether an index FROM names can also be named by the user's index pattern."""
    a, b = from_pattern.strip(), index_pattern.strip()
    if fnmatch.fnmatchcase(a, b) or fnmatch.fnmatchcase(b, a):
        return True
    # Two wildcard patterns overlap when one's literal prefix extends the other's.
    pa_, pb = a.split("*", 1)[0], b.split("*", 1)[0]
    return ("*" in a and pb.startswith(pa_)) or ("*" in b and pa_.startswith(pb))
