"""Command-line pieces the commands share: event files checked before anything runs, the alerts output option."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reconwatch.errors import UsageError
from reconwatch.plan.limits import DEFAULT_MEMORY, QueryLimits, parse_memory, parse_seconds

# detect's and watch's -o: where alerts go.
AlertsOutput = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Write alerts to this file (- is stdout).", metavar="FILE"),
]

# A query's resource limits (query, detect): DuckDB's memory and a time budget per query run.
MemoryLimit = Annotated[
    str,
    typer.Option(
        "--memory-limit",
        help="Memory one query may use in DuckDB (e.g. 512MB, 4GB); past it the query stops "
        "with an error.",
        metavar="SIZE",
    ),
]
QueryTimeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Cancel a query (each rule run) after this many seconds; 0: no budget.",
        metavar="SECONDS",
    ),
]

# query's, detect's and watch's --year: the year of syslog stamps that carry none.
SyslogYear = Annotated[
    int | None,
    typer.Option(
        "--year",
        help="Year of syslog time stamps without one (iptables, Sysmon); default: each file's "
        "modification year.",
        metavar="YEAR",
        min=1970,
        max=9999,
    ),
]


def query_limits(memory: str = DEFAULT_MEMORY, seconds: float | None = None) -> QueryLimits:
    """The limits the options ask for (a UsageError for a size or a budget that is not one)."""
    return QueryLimits(parse_memory(memory), parse_seconds(seconds))


def print_notes(notes: Iterable[str], err: Console) -> None:
    """What the readers assumed (a syslog year), once per file, on stderr."""
    for line in notes:
        err.print(f"note: {line}", markup=False)


def require_files(paths: Iterable[str]) -> None:
    """A mistyped name or a directory must not read as "no alerts" or an empty result: refuse
    it before any run (exit 2)."""
    paths = list(paths)
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    folders = [p for p in paths if Path(p).is_dir()]
    if folders:
        raise UsageError(f"a directory, not an event file: {', '.join(folders)}")
