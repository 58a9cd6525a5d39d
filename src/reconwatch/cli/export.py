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
        done, datasets = _from_store(from_store, parquet, rows_per_file)
    else:
        if not files:
            raise UsageError("give event files to export, or --from-store DATA_DIR")
        if input_format is not None:
            formats.get(input_format)
        require_files(files)
        dataset = Dataset.from_files(files, input_format=input_format)
        done = export_parquet(dataset, parquet, rows_per_file, functions=udf.register)
        datasets = [dataset]
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    errors = [e for dataset in datasets for e in dataset.report.errors]
    for e in errors[:20]:
        err.print(f"warning: skipped {e.one_line()}", markup=False)
    if errors:
        err.print(f"warning: {len(errors)} bad event(s) skipped", markup=False)
    span = f"{done.days[0]} .. {done.days[-1]}" if done.days else "no day"
    err.print(
        f"{done.events} event(s), {done.columns} field(s) -> {parquet} "
        f"({len(done.days)} day partition(s): {span})",
        markup=False,
    )
    unusable = [line for dataset in datasets for line in dataset.unusable_inputs()]
    if unusable:
        for line in unusable:
            err.print(f"error: {line}", markup=False)
        raise typer.Exit(2)


def _from_store(
    data_dir: Path, parquet: Path, rows_per_file: int
) -> tuple[Exported, list[Dataset]]:
    """Every stored event, an index at a time under `parquet`/N-INDEX/ (N its place among the
    store's indices, so a directory's files come in the store's order), read where the store
    keeps them (its own cursors run the reader's SQL over its events table; the documents
    DuckDB cannot read exactly go through the validating reader, as a rule run's do). Each row
    keeps the `_index`, `_id` and `_version` the store gave it, and each file's footer names its
    index: a FROM over the export reads the indices it would read in the store."""
    from datetime import UTC, datetime

    from reconwatch.ingest.export import Exported, export_parquet
    from reconwatch.store.db import DB_FILE, Store
    from reconwatch.store.window import window_dataset

    if not (data_dir / DB_FILE).is_file():
        msg = f"--from-store {data_dir}: no store there ({DB_FILE} is missing)"
        raise UsageError(msg)
    if parquet.exists() and (not parquet.is_dir() or any(parquet.iterdir())):
        msg = f"--parquet {parquet}: exists and is not an empty directory"
        raise UsageError(msg)

    def now() -> datetime:  # the store stamps nothing on a read; its clock is not consulted
        return datetime.now(UTC)

    store = Store(data_dir, now)
    datasets: list[Dataset] = []
    done: list[Exported] = []
    try:
        indices = store.indices()
        if not indices:  # says there is nothing to export, as for files without events
            datasets.append(window_dataset(store, ("*",), None, None))
            export_parquet(
                datasets[0],
                parquet,
                rows_per_file,
                functions=_registered,
                connect=store.query_cursor,
            )
        for n, index in enumerate(indices, start=1):
            dataset = window_dataset(store, (index,), None, None)
            datasets.append(dataset)
            done.append(
                export_parquet(
                    dataset,
                    parquet / f"{n:04d}-{index}",
                    rows_per_file,
                    functions=_registered,
                    connect=store.query_cursor,
                    index=index,
                )
            )
    finally:
        store.close()
    days = sorted({day for d in done for day in d.days})
    total = Exported(sum(d.events for d in done), days, max((d.columns for d in done), default=0))
    return total, datasets


def _registered(_con: object) -> None:
    """The store's cursors have the reader's SQL functions already (Store.query_cursor)."""
