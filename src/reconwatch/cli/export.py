"""`reconwatch export`: events from any readable input as day-partitioned Parquet for a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from reconwatch.cli.inputs import InputFormatOption, require_files
from reconwatch.errors import UsageError
from reconwatch.ingest.export import ROWS_PER_FILE

if TYPE_CHECKING:
    from reconwatch.ingest import Dataset
    from reconwatch.ingest.export import Exported


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    parquet: Annotated[
        Path,
        typer.Option(
            "--parquet",
            help="Write Parquet under this new directory, one dt=YYYY-MM-DD/ per UTC day "
            "of @timestamp (the layout --engine spark prunes by a rule's time range).",
            metavar="DIR",
        ),
    ],
    files: Annotated[
        list[str] | None,
        typer.Argument(
            help="Event files: NDJSON (.gz), JSON arrays, Parquet, Linux audit logs.",
            metavar="FILES...",
            show_default=False,
        ),
    ] = None,
    rows_per_file: Annotated[
        int,
        typer.Option(
            "--rows-per-file",
            help="Start a new file after about this many rows (a file is one task on a cluster).",
            metavar="ROWS",
            min=1,
        ),
    ] = ROWS_PER_FILE,
    input_format: InputFormatOption = None,
    from_store: Annotated[
        Path | None,
        typer.Option(
            "--from-store",
            help="Export the events of the service's store in this data directory (every "
            "index; stop `reconwatch serve` first: the store is one process's).",
            metavar="DATA_DIR",
        ),
    ] = None,
) -> None:
    """Write events as Parquet partitioned by day. Bad events are skipped and reported."""
    from reconwatch.backends.duckdb import udf
    from reconwatch.ingest import Dataset, formats
    from reconwatch.ingest.export import export_parquet

    if from_store is not None:
        if files or input_format is not None:
            msg = "--from-store exports the store's events: give no FILES and no --input-format"
            raise UsageError(msg)
        done, dataset = _from_store(from_store, parquet, rows_per_file)
    else:
        if not files:
            raise UsageError("give event files to export, or --from-store DATA_DIR")
        if input_format is not None:
            formats.get(input_format)
        require_files(files)
        dataset = Dataset.from_files(files, input_format=input_format)
        done = export_parquet(dataset, parquet, rows_per_file, functions=udf.register)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    report = dataset.report
    for e in report.errors[:20]:
        err.print(f"warning: skipped {e.one_line()}", markup=False)
    if report.errors:
        err.print(f"warning: {len(report.errors)} bad event(s) skipped", markup=False)
    span = f"{done.days[0]} .. {done.days[-1]}" if done.days else "no day"
    err.print(
        f"{done.events} event(s), {done.columns} field(s) -> {parquet} "
        f"({len(done.days)} day partition(s): {span})",
        markup=False,
    )
    if dataset.unusable_inputs():
        for line in dataset.unusable_inputs():
            err.print(f"error: {line}", markup=False)
        raise typer.Exit(2)


def _from_store(data_dir: Path, parquet: Path, rows_per_file: int) -> tuple[Exported, Dataset]:
    """Every stored event of every index, read where the store keeps them (its own cursors run
    the reader's SQL over its events table); the documents DuckDB cannot read exactly go through
    the validating reader, as a rule run's do."""
    from datetime import UTC, datetime

    from reconwatch.ingest.export import export_parquet
    from reconwatch.store.db import DB_FILE, Store
    from reconwatch.store.window import window_dataset

    if not (data_dir / DB_FILE).is_file():
        msg = f"--from-store {data_dir}: no store there ({DB_FILE} is missing)"
        raise UsageError(msg)

    def now() -> datetime:  # the store stamps nothing on a read; its clock is not consulted
        return datetime.now(UTC)

    store = Store(data_dir, now)
    try:
        dataset = window_dataset(store, ("*",), None, None)
        done = export_parquet(
            dataset, parquet, rows_per_file, functions=_registered, connect=store.query_cursor
        )
    finally:
        store.close()
    return done, dataset


def _registered(_con: object) -> None:
    """The store's cursors have the reader's SQL functions already (Store.query_cursor)."""
