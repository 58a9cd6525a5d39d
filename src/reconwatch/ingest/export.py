"""Events from any readable input written as Parquet partitioned by day (dt=YYYY-MM-DD/), the layout a cluster reads."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from reconwatch.errors import UsageError
from reconwatch.ingest import fast
from reconwatch.ingest.dataset import Dataset
from reconwatch.ingest.sparkread import FIELDS_KEY, INDEX_KEY, STORED_METADATA, WRITER, WRITER_KEY
from reconwatch.plan.nodes import Column

# Events without a @timestamp (or an unparseable one) go to dt=none: never pruned.
NO_DAY = "none"
# Rows per file, in row groups of at most ROW_GROUP rows (DuckDB's own default size; DuckDB
# rounds a row group up to its 2,048-row vectors, so small files hold at least that many).
ROWS_PER_FILE = 250_000
ROW_GROUP = 100_000


@dataclass(frozen=True, slots=True)
class Exported:
    events: int
    days: list[str]
    columns: int


def export_parquet(
    dataset: Dataset,
    out: Path,
    rows_per_file: int = ROWS_PER_FILE,
    *,
    functions: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    connect: Callable[[], duckdb.DuckDBPyConnection] = duckdb.connect,
    index: str | None = None,
) -> Exported:
    """Write every good event of `dataset` under `out`/dt=YYYY-MM-DD/ (UTC day of @timestamp),
    one column per field present, typed as the executors read it (lists where multivalued), in
    input order, a new file (data_0, data_1, ...) after about `rows_per_file` rows: a file is
    a cluster's unit of work. `out` must not hold files yet: an export never mixes with older
    data.

    With `functions` (what installs the SQL functions DuckDB's reader calls: the executors'
    backends.duckdb.udf.register), DuckDB reads the files its reader takes (NDJSON, as on the
    query path) and writes the Parquet itself; other inputs, and a file with bad events, go
    through the validating Python reader, which reports each bad event (file:line). Without,
    every input goes through the Python reader (the same output, many times slower). `connect`:
    a new connection (a store's cursor, whose SQL reads its events table: Dataset.from_store).
    `index`: the events are one stored index's (Dataset.from_store); each row then keeps the
    `_index`, `_id` and `_version` the store gave it, and every footer names the index, so a
    reader selects the files by a FROM's index patterns as the store selects its indices."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        msg = f"--parquet {out}: exists and is not an empty directory"
        raise UsageError(msg)
    inputs = dataset.selected_inputs(("*",))
    duckdb_reader = functions is not None
    as_json = 0
    while True:
        # A new connection per attempt: a failed COPY leaves its Python reader mid-read.
        con = _connect(connect, functions)
        try:
            cols = dataset.export_fields(con) if duckdb_reader else dataset.present_fields()
            _need_timestamp(cols)
            metadata = STORED_METADATA if index is not None else ()
            _source(con, dataset, cols, inputs, duckdb_reader, metadata)
            out.mkdir(parents=True, exist_ok=True)
            events = _copy(con, cols, out, rows_per_file, index)
            break
        except duckdb.Error as exc:
            # A file DuckDB cannot read exactly (bad events, a field holding several values or
            # another type than sampled): learn, start again with what was learnt.
            if not duckdb_reader or not dataset.scan_failed(str(exc), inputs):
                raise
            if fast.JSON_LEAF in str(exc):
                as_json += 1
                if as_json > 1:
                    # Not one odd value but a file writing fields in several spellings (dotted
                    # keys): every field read as JSON, not a restart per field.
                    dataset.read_as_json([c.name for c in cols])
            _empty(out)
        finally:
            con.close()
    days = sorted(p.name.split("=", 1)[1] for p in out.iterdir() if p.name.startswith("dt="))
    return Exported(events, days, len(cols))


def _connect(
    connect: Callable[[], duckdb.DuckDBPyConnection],
    functions: Callable[[duckdb.DuckDBPyConnection], None] | None,
) -> duckdb.DuckDBPyConnection:
    con = connect()
    # One thread keeps each day's rows in input order (first-seen group order reads it).
    con.execute("SET threads = 1")
    con.execute("SET enable_progress_bar = false")
    if functions is not None:
        functions(con)
    return con


def _need_timestamp(cols: Sequence[Column]) -> None:
    if not any(c.name == "@timestamp" for c in cols):
        msg = "no event has a @timestamp: nothing to partition by day"
        raise UsageError(msg)


def _source(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    cols: Sequence[Column],
    inputs: Sequence[int],
    duckdb_reader: bool,
    metadata: Sequence[str] = (),
) -> None:
    """`rw_source` on `con`: the events' columns, the METADATA ones asked for, and __src."""
    names = [c.name for c in cols]
    if duckdb_reader:
        dataset.register_source(con, names, inputs, metadata, in_order=True)
        return
    import pyarrow as pa

    schema = dataset.arrow_schema(cols, metadata)
    batches = dataset.batches(names, inputs, metadata)
    con.register("rw_python", pa.RecordBatchReader.from_batches(schema, batches))
    con.execute("CREATE OR REPLACE TEMP VIEW rw_source AS SELECT * FROM rw_python")


def _copy(
    con: duckdb.DuckDBPyConnection,
    cols: Sequence[Column],
    out: Path,
    rows_per_file: int,
    index: str | None = None,
) -> int:
    """COPY rw_source to `out` by day; the number of events written. With `index`, the stored
    METADATA columns too (not declared as fields: a FROM reads them only as METADATA)."""
    group = max(1, min(rows_per_file, ROW_GROUP))
    day = f"coalesce(strftime(\"@timestamp\", '%Y-%m-%d'), '{NO_DAY}')"
    target = str(out).replace("'", "''")
    # The catalog in every footer: a reader of the export knows the fields without reading
    # an event (Dataset's field discovery).
    declared = json.dumps([[c.name, c.type.value, c.multivalued] for c in cols])
    declared = declared.replace("'", "''")
    names = [c.name for c in cols] + (list(STORED_METADATA) if index is not None else [])
    listed = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
    kv = f"'{WRITER_KEY}': '{WRITER}', '{FIELDS_KEY}': '{declared}'"
    if index is not None:
        kv += f", '{INDEX_KEY}': '{index.replace(chr(39), chr(39) * 2)}'"
    row = con.execute(
        f"COPY (SELECT {listed}, {day} AS dt FROM rw_source) "
        f"TO '{target}' (FORMAT parquet, PARTITION_BY (dt), "
        f"ROW_GROUP_SIZE {group}, ROW_GROUPS_PER_FILE {max(1, rows_per_file // group)}, "
        f"KV_METADATA {{{kv}}})"
    ).fetchall()
    return int(row[0][0]) if row else 0


def _empty(out: Path) -> None:
    """Remove what a failed COPY left under `out` (it was empty before the export)."""
    for child in out.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
