"""Events from any readable input written as Parquet partitioned by day (dt=YYYY-MM-DD/), the layout a cluster reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from reconwatch.errors import UsageError
from reconwatch.ingest.dataset import SOURCE_COLUMN, Dataset

# Events without a @timestamp (or an unparseable one) go to dt=none: never pruned.
NO_DAY = "none"


@dataclass(frozen=True, slots=True)
class Exported:
    events: int
    days: list[str]
    columns: int


def export_parquet(dataset: Dataset, out: Path) -> Exported:
    """Write every good event of `dataset` under `out`/dt=YYYY-MM-DD/ (UTC day of @timestamp),
    one column per field present, typed as the executors read it (lists where multivalued), in
    input order. `out` must not hold files yet: an export never mixes with older data."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        msg = f"--parquet {out}: exists and is not an empty directory"
        raise UsageError(msg)
    cols = dataset.present_fields()
    if not any(c.name == "@timestamp" for c in cols):
        msg = "no event has a @timestamp: nothing to partition by day"
        raise UsageError(msg)
    names = [c.name for c in cols]
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
        con.execute(
            f"COPY (SELECT * EXCLUDE ({SOURCE_COLUMN}), {day} AS dt FROM rw_export) "
            f"TO '{target}' (FORMAT parquet, PARTITION_BY (dt))"
        )
    finally:
        con.close()
    days = sorted(p.name.split("=", 1)[1] for p in out.iterdir() if p.name.startswith("dt="))
    return Exported(counted["events"], days, len(cols))
