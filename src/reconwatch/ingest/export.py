"""Events from any readable input written as Parquet partitioned by day (dt=YYYY-MM-DD/), the layout a cluster reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from reconwatch.errors import UsageError
from reconwatch.ingest.dataset import SOURCE_COLUMN, Dataset
from reconwatch.ingest.sparkread import FIELDS_KEY, WRITER, WRITER_KEY

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


def export_parquet(dataset: Dataset, out: Path, rows_per_file: int = ROWS_PER_FILE) -> Exported:
    """Write every good event of `dataset` under `out`/dt=YYYY-MM-DD/ (UTC day of @timestamp),
    one column per field present, typed as the executors read it (lists where multivalued), in
    input order, a new file (data_0, data_1, ...) after about `rows_per_file` rows: a file is
    a cluster's unit of work. `out` must not hold files yet: an export never mixes with older
    data."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        msg = f"--parquet {out}: exists and is not an empty directory"
        raise UsageError(msg)
    cols = dataset.present_fields()
    if not any(c.name == "@timestamp" for c in cols):
        msg = "no event has a @timestamp: nothing to partition by day"
        raise UsageError(msg)
    names = [c.name for c in cols]
    group = max(1, min(rows_per_file, ROW_GROUP))
    import pyarrow as pa

    schema = dataset.arrow_schema(cols, ())
    counted = {"events": 0}

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in dataset.batches(names, dataset.selected_inputs(("*",))):
            counted["events"] += batch.num_rows
            yield batch

    con = duckdb.connect()
    try:
        # One thread keeps each day's rows in input order (first-seen group order reads it).
        con.execute("SET threads = 1")
        con.execute("SET enable_progress_bar = false")
        con.register("rw_export", pa.RecordBatchReader.from_batches(schema, batches()))
        day = f"coalesce(strftime(\"@timestamp\", '%Y-%m-%d'), '{NO_DAY}')"
        out.mkdir(parents=True, exist_ok=True)
        target = str(out).replace("'", "''")
        # The catalog in every footer: a reader of the export knows the fields without reading
        # an event (Dataset's field discovery).
        declared = json.dumps([[c.name, c.type.value, c.multivalued] for c in cols])
        declared = declared.replace("'", "''")
        con.execute(
            f"COPY (SELECT * EXCLUDE ({SOURCE_COLUMN}), {day} AS dt FROM rw_export) "
            f"TO '{target}' (FORMAT parquet, PARTITION_BY (dt), "
            f"ROW_GROUP_SIZE {group}, ROW_GROUPS_PER_FILE {max(1, rows_per_file // group)}, "
            f"KV_METADATA {{'{WRITER_KEY}': '{WRITER}', '{FIELDS_KEY}': '{declared}'}})"
        )
    finally:
        con.close()
    days = sorted(p.name.split("=", 1)[1] for p in out.iterdir() if p.name.startswith("dt="))
    return Exported(counted["events"], days, len(cols))
