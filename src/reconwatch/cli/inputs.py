"""Command-line pieces the commands share: event files checked before anything runs, the alerts output option."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from reconwatch.engine.native.detector import Detector
    from reconwatch.rules.model import Rule

# These live with the commands that run without Typer (query): detect and watch take them here.
from reconwatch.cli.plain import (
    choose_engine,
    expand_inputs,
    print_notes,
    query_limits,
    require_files,
)

__all__ = [
    "AlertsOutput",
    "DetectorState",
    "DetectorStateOption",
    "EngineOption",
    "InputFormatOption",
    "MemoryLimit",
    "QueryTimeout",
    "SparkMasterOption",
    "SyslogYear",
    "choose_engine",
    "expand_inputs",
    "print_notes",
    "query_limits",
    "require_files",
]

# detect's and watch's -o: where alerts go.
AlertsOutput = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Write alerts to this file (- is stdout).", metavar="FILE"),
]

# query's and export's --input-format (detect's help lists the formats; watch reads streams).
InputFormatOption = Annotated[
    str | None,
    typer.Option(
        "--input-format",
        help="Read every file as this format (ndjson, json, parquet, auditd, ...); "
        "default: by content.",
        metavar="FORMAT",
    ),
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

# query's and detect's --engine and --spark-master: which batch executor runs the queries.
EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="Executor: duckdb (default), spark (local mode unless --spark-master), reference.",
        metavar="ENGINE",
    ),
]
SparkMasterOption = Annotated[
    str | None,
    typer.Option(
        "--spark-master",
        help="With --engine spark: the master URL (spark://HOST:7077; default local[*]).",
        metavar="URL",
    ),
]

# detect's and watch's --state: the native detectors' learned state, read before and saved after.
DetectorStateOption = Annotated[
    str | None,
    typer.Option(
        "--state",
        help="Native detectors' learned state (baselines, walks): read before the run if the "
        "file exists, saved after it, so the next run goes on from there. An unusable file is "
        "named on stderr and the detectors start fresh.",
        metavar="FILE",
    ),
]


class DetectorState:
    """--state for one run: the saved detectors of the chosen rules (notices for unusable
    ones on stderr), and the file they are saved back to."""

    def __init__(self, path: str | None, rules: Iterable[Rule], err: Console) -> None:
        from reconwatch.engine.native.state import StateFile

        self.rules = [r for r in rules if r.native]
        self.file = StateFile(Path(path)) if path is not None else None
        self.detectors: MutableMapping[str, Detector] = {}
        if self.file is None:
            return
        if not self.rules:
            err.print(f"--state {path}: no native detector rule runs: left as it is", markup=False)
            return
        notices = self.file.read()
        loaded, more = self.file.detectors(self.rules)
        self.detectors.update(loaded)
        for line in [*notices, *more]:
            err.print(f"warning: {line}", markup=False)

    def save(self) -> None:
        """Write the detectors back (an OutputError naming the file if it cannot be written)."""
        if self.file is not None and self.rules:
            self.file.write(self.rules, self.detectors)
