"""`reconwatch query`: run ES|QL over event files and print the result table."""

# No `from __future__ import annotations`: Typer reads the option declarations made inside
# register() from the annotations themselves, and Typer is imported only there (the common
# argv runs without it: `plain_run`).
import csv
import io
import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from reconwatch.cli.plain import (
    Option,
    choose_engine,
    echo,
    expand_inputs,
    parse_args,
    print_notes,
    query_limits,
    require_files,
)
from reconwatch.errors import UsageError
from reconwatch.plan import values
from reconwatch.plan.catalog import Result
from reconwatch.plan.limits import DEFAULT_MEMORY

if TYPE_CHECKING:
    import typer
    from rich.console import Console

    from reconwatch.ingest import Dataset

MAX_REPORTED = 20


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    ndjson = "ndjson"


# The options as Typer declares them (register) that the argv reader running without Typer
# takes; --timeout and --year (numbers Typer converts and range-checks) are left to Typer.
PLAIN_OPTIONS = {
    "--format": Option("fmt", choices=tuple(f.value for f in Format)),
    "--now": Option("now"),
    "--index": Option("index", multiple=True),
    "--explain": Option("explain_", flag=True),
    "--input-format": Option("input_format"),
    "--memory-limit": Option("memory_limit"),
    "--engine": Option("engine"),
    "--spark-master": Option("spark_master"),
}


def plain_run(args: Sequence[str]) -> Callable[[], int] | None:
    """The command for `query ARGS` without Typer, when ARGS use only the common forms (None:
    Typer parses them, help and usage errors included)."""
    parsed = parse_args(args, PLAIN_OPTIONS, required=1)
    if parsed is None:
        return None
    (esql, *files), opts = parsed
    fmt = opts.get("fmt")
    memory = opts.get("memory_limit")

    def run() -> int:
        return run_query_command(
            esql,
            files or None,
            Format(fmt) if isinstance(fmt, str) else None,
            opts.get("now"),  # type: ignore[arg-type]
            opts.get("index"),  # type: ignore[arg-type]
            bool(opts.get("explain_")),
            opts.get("input_format"),  # type: ignore[arg-type]
            memory if isinstance(memory, str) else DEFAULT_MEMORY,
            engine=str(opts.get("engine") or "duckdb"),
            spark_master=opts.get("spark_master"),  # type: ignore[arg-type]
        )

    return run


def register(app: "typer.Typer") -> None:
    import typer

    from reconwatch.cli.inputs import (
        EngineOption,
        InputFormatOption,
        MemoryLimit,
        QueryTimeout,
        SparkMasterOption,
        SyslogYear,
    )

    def query(
        esql: Annotated[str, typer.Argument(help="The ES|QL query.")],
        files: Annotated[
            list[str] | None,
            typer.Argument(
                help="Event files: NDJSON (.gz), JSON arrays, Parquet, Linux audit logs "
                "(with --engine spark also directories and glob patterns)."
            ),
        ] = None,
        fmt: Annotated[
            Format | None,
            typer.Option("--format", help="Default: table on a terminal, ndjson when piped."),
        ] = None,
        now: Annotated[
            str | None, typer.Option(help="Query time for NOW(), ISO-8601 (default: the clock).")
        ] = None,
        index: Annotated[
            list[str] | None,
            typer.Option(
                help="PATTERN=GLOB: files read only by FROM clauses naming PATTERN (repeatable)."
            ),
        ] = None,
        explain_: Annotated[
            bool, typer.Option("--explain", help="Print the plan and SQL instead of running.")
        ] = False,
        input_format: InputFormatOption = None,
        memory_limit: MemoryLimit = DEFAULT_MEMORY,
        timeout: QueryTimeout = 0,
        year: SyslogYear = None,
        engine: EngineOption = "duckdb",
        spark_master: SparkMasterOption = None,
    ) -> None:
        """Run an ES|QL query over event files. Bad events are skipped and reported on stderr."""
        code = run_query_command(
            esql,
            files,
            fmt,
            now,
            index,
            explain_,
            input_format,
            memory_limit,
            timeout,
            year,
            engine=engine,
            spark_master=spark_master,
        )
        if code:
            raise typer.Exit(code)

    app.command("query")(query)


def run_query_command(
    esql: str,
    files: list[str] | None,
    fmt: Format | None,
    now: str | None,
    index: list[str] | None,
    explain_: bool,
    input_format: str | None,
    memory_limit: str = DEFAULT_MEMORY,
    timeout: float = 0,
    year: int | None = None,
    *,
    engine: str = "duckdb",
    spark_master: str | None = None,
) -> int:
    """The command itself, however its arguments were read; returns the exit code."""
    from reconwatch.ingest import Dataset, formats
    from reconwatch.plan.limits import limited
    from reconwatch.query import explain, run_query, warning_header

    limits = query_limits(memory_limit, timeout)

    if input_format is not None:
        formats.get(input_format)  # a UsageError listing the registered formats
    backend = choose_engine(engine, spark_master)
    paths = expand_inputs(files or [], backend)
    require_files(paths)
    dataset = Dataset.from_files(
        paths, _index_map(index or []), input_format=input_format, year=year
    )
    query_time = _parse_now(now)
    if explain_:
        echo(explain(esql, dataset, now=query_time, engine=backend))
        return 0
    with limited(limits):
        result = run_query(esql, dataset, now=query_time, backend=backend)
    _report_bad_events(dataset)
    for text in result.warnings:
        # Elasticsearch's response headers, one line each, as `curl -i` would show them.
        echo(f"Warning: {warning_header(text)}", err=True)
    chosen = fmt or (Format.table if sys.stdout.isatty() else Format.ndjson)
    _print(result, chosen)
    return 2 if _report_unusable(dataset) else 0


def _report_unusable(dataset: "Dataset") -> bool:
    """An input that gave no event at all is named, with what it looks like when no format
    recognises it: the result is not what the user asked for."""
    unusable = dataset.unusable_inputs()
    if unusable:
        err = _stderr_console()
        for line in unusable:
            err.print(f"error: {line}", markup=False)
    return bool(unusable)


def _stderr_console() -> "Console":
    """rich for the messages on stderr, loaded only when there is something to say."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _index_map(items: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        pattern, sep, pathglob = item.partition("=")
        if not sep or not pattern or not pathglob:
            msg = f"--index {item}: expected PATTERN=GLOB"
            raise UsageError(msg)
        out.append((pattern, pathglob))
    return out


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)  # the real clock, at the edge only
    try:
        return values.parse_datetime(text)
    except values.ConversionError as exc:
        msg = f"--now {text}: {exc}"
        raise UsageError(msg) from None


def _report_bad_events(dataset: "Dataset") -> None:
    from reconwatch.ingest.formats import UnrecognisedFormatError

    report = dataset.report
    # An unrecognised file is an error of its own (_report_unusable), not a skipped event.
    bad = [e for e in report.errors if not isinstance(e, UnrecognisedFormatError)]
    if not report.notes and not bad:
        return
    err = _stderr_console()
    print_notes(report.notes, err)
    if not bad:
        return
    for e in bad[:MAX_REPORTED]:
        err.print(f"warning: skipped {e.one_line()}", markup=False)
    err.print(f"warning: {len(bad)} bad event(s) skipped, {report.events} processed", markup=False)


def jsonable(value: object) -> object:
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return values.format_datetime(value)
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    return value


def _text(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, float):
        return values.java_double(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return values.format_datetime(value)
    return str(value)


def _print(result: Result, fmt: Format) -> None:
    names = [c.name for c in result.columns]
    out = sys.stdout
    if fmt is Format.ndjson:
        for row in result.rows:
            out.write(json.dumps(dict(zip(names, map(jsonable, row), strict=True))) + "\n")
    elif fmt is Format.json:
        out.write(
            json.dumps(
                [dict(zip(names, map(jsonable, r), strict=True)) for r in result.rows], indent=2
            )
            + "\n"
        )
    elif fmt is Format.csv:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(names)
        for row in result.rows:
            writer.writerow(["" if v is None else _text(v) for v in row])
        out.write(buf.getvalue())
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*names, show_lines=False)
        for row in result.rows:
            table.add_row(*(_text(v) for v in row))
        Console(highlight=False).print(table)
