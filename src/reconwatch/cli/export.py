"""`reconwatch export`: events from any readable input as day-partitioned Parquet for a cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reconwatch.cli.inputs import InputFormatOption, require_files
from reconwatch.ingest.export import ROWS_PER_FILE


def register(app: typer.Typer) -> None:
    app.command("export")(export)


def export(
    files: Annotated[
        list[str],
        typer.Argument(
            help="Event files: NDJSON (.gz), JSON arrays, Parquet, Linux audit logs.",
            metavar="FILES...",
        ),
    ],
    parquet: Annotated[
        Path,
        typer.Option(
            "--parquet",
            help="Write Parquet under this new directory, one dt=YYYY-MM-DD/ per UTC day "
            "of @timestamp (the layout --engine spark prunes by a rule's time range).",
            metavar="DIR",
        ),
    ],
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
) -> None:
    """Write events as Parquet partitioned by day. Bad events are skipped and reported."""
    from reconwatch.ingest import Dataset, formats
    from reconwatch.ingest.export import export_parquet

    if input_format is not None:
        formats.get(input_format)
    require_files(files)
    dataset = Dataset.from_files(files, input_format=input_format)
    done = export_parquet(dataset, parquet, rows_per_file)
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
