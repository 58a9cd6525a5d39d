"""Command-line pieces the commands share: event files checked before anything runs, the alerts output option."""

from __future__ import annotations

from typing import Annotated

import typer

# These live with the commands that run without Typer (query): detect and watch take them here.
from reconwatch.cli.plain import print_notes, query_limits, require_files

__all__ = [
    "AlertsOutput",
    "MemoryLimit",
    "QueryTimeout",
    "SyslogYear",
    "print_notes",
    "query_limits",
    "require_files",
]

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
