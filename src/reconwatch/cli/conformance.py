"""`reconwatch conformance DIR`: Elastic's csv-spec cases run on our executors, passed / failed / skipped."""

from __future__ import annotations

import json
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from reconwatch.conformance.runner import (
    BACKENDS,
    DEFAULT_LIMITS,
    Outcome,
    Summary,
    run_all,
    spec_files,
)
from reconwatch.errors import UsageError


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


def _count(summary: Summary, backend: str, outcome: Outcome, file: str | None = None) -> int:
    return sum(
        1
        for r in summary.results
        if r.backend == backend and r.outcome is outcome and file in (None, r.case.file)
    )


def _table(summary: Summary, backends: tuple[str, ...]) -> Table:
    """One row per file and backend, then the totals; the pass rate is over the cases run."""
    table = Table(title="csv-spec conformance")
    table.add_column("file", no_wrap=True)
    table.add_column("backend", no_wrap=True)
    for outcome in Outcome:
        table.add_column(outcome.value, justify="right")
    table.add_column("pass rate", justify="right")

    def cells(backend: str, file: str | None) -> list[str]:
        counts = {o: _count(summary, backend, o, file) for o in Outcome}
        run = counts[Outcome.PASSED] + counts[Outcome.FAILED]
        rate = f"{100 * counts[Outcome.PASSED] / run:.1f}%" if run else "-"
        return [*(str(counts[o]) for o in Outcome), rate]

    for file in summary.files:
        for backend in backends:
            table.add_row(file, backend, *cells(backend, file))
    table.add_section()
    for backend in backends:
        table.add_row("total", backend, *cells(backend, None))
    return table


def _details(console: Console, summary: Summary, verbose: bool) -> None:
    for problem in summary.problems:
        console.print(f"problem: {problem.one_line()}", markup=False)
    for r in summary.results:
        if r.outcome is Outcome.FAILED:
            console.print(f"FAILED  {r.case.id} [{r.backend}] ({r.case.where})", markup=False)
            for line in r.diff or (r.reason,):
                console.print(f"    {line}", markup=False)
            if verbose:
                for line in r.case.query.splitlines():
                    console.print(f"    | {line}", markup=False)
        elif verbose and r.outcome is Outcome.SKIPPED:
            console.print(f"skipped {r.case.id} [{r.backend}]: {r.reason}", markup=False)


def _as_json(summary: Summary, backends: tuple[str, ...]) -> str:
    totals = {
        b: {
            o.value: sum(1 for r in summary.results if r.backend == b and r.outcome is o)
            for o in Outcome
        }
        for b in backends
    }
    cases = [
        {
            "id": r.case.id,
            "file": r.case.file,
            "line": r.case.line,
            "backend": r.backend,
            "outcome": r.outcome.value,
            "reason": r.reason,
            "diff": list(r.diff),
        }
        for r in summary.results
    ]
    problems = [p.one_line() for p in summary.problems]
    return json.dumps({"totals": totals, "problems": problems, "cases": cases}, indent=2)


def register(app: typer.Typer) -> None:
    @app.command("conformance")
    def conformance_cmd(
        directory: Annotated[
            Path,
            typer.Argument(
                help="A csv-spec directory (specs*/*.csv-spec, data/, mappings/) or a folder of "
                "*.csv-spec files whose parent holds data/."
            ),
        ],
        backend: Annotated[
            str,
            typer.Option(
                "--backend", help=f"Executor to run the cases on: {', '.join(BACKENDS)} or both."
            ),
        ] = "duckdb",
        case: Annotated[
            str | None, typer.Option("--case", help="Only this case: NAME or FILE#NAME.")
        ] = None,
        verbose: Annotated[
            bool, typer.Option("--verbose", "-v", help="Also list skips and failing queries.")
        ] = False,
        output: Annotated[
            OutputFormat, typer.Option("--format", help="table (with failures) or json.")
        ] = OutputFormat.table,
        timeout: Annotated[
            float,
            typer.Option(
                "--timeout",
                min=0,
                help="Seconds one case may run (in a worker process) before it fails; 0: no "
                "limits, in this process.",
            ),
        ] = DEFAULT_LIMITS.seconds,
    ) -> None:
        """Run Elastic's ES|QL csv-spec cases; exit 1 if any case fails."""
        if not spec_files(directory):
            msg = f"{directory}: no *.csv-spec files (looked in {directory / 'specs'} and {directory})"
            raise UsageError(msg)
        if backend != "both" and backend not in BACKENDS:
            msg = f"--backend {backend}: known executors are {', '.join(BACKENDS)} (or both)"
            raise UsageError(msg)
        backends = BACKENDS if backend == "both" else (backend,)
        limits = replace(DEFAULT_LIMITS, seconds=timeout) if timeout > 0 else None
        summary = run_all(directory, backends, case, limits=limits)
        if case is not None and not summary.results:
            msg = f"no case named {case}"
            raise UsageError(msg)
        console = Console(highlight=False, soft_wrap=True)
        if output is OutputFormat.json:
            print(_as_json(summary, backends))
        else:
            _details(console, summary, verbose)
            console.print(_table(summary, backends))
        if not summary.ok:
            raise typer.Exit(1)
