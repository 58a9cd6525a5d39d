"""`reconwatch detect`: run detection rules over event files the way Kibana does, print alerts."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reconwatch.alerts.render import print_reports, table, to_json, to_ndjson
from reconwatch.engine.detect import DatasetBackend, DetectReport, Schedule, detect
from reconwatch.errors import UsageError
from reconwatch.ingest import formats
from reconwatch.plan.values import ConversionError, parse_datetime
from reconwatch.rules.builtin import DEFAULT_RULE, resolve_rule
from reconwatch.rules.exceptions import ExceptionList, load_exceptions
from reconwatch.rules.model import Rule

SAMPLE_FILE = "defend-network-sample.ndjson.gz"
# The shipped sample covers 09:00-10:00Z; the demo is the hourly run right after it.
SAMPLE_RUN_AT = "2025-07-16T10:00:00Z"
FORMATS = ("table", "ndjson", "json")
# Input formats --format also accepts (issue 5: `reconwatch detect --format auditd audit.log`).
INPUT_FORMATS = ("auditd",)
INPUT_FORMAT_HELP = (
    "Read every input as this format: "
    + ", ".join(formats.names())
    + ". Default: by content (an unrecognised file is reported by name)."
)


def parse_time(text: str, option: str) -> datetime:
    if text == "now":
        return datetime.now(UTC)  # the CLI is the edge where the real clock may be read
    try:
        return parse_datetime(text)
    except ConversionError:
        msg = f"{option} {text!r}: expected an ISO-8601 time such as 2025-07-16T10:00:00Z, or now"
        raise UsageError(msg) from None


def sample_path() -> Path:
    return Path(str(resources.files("reconwatch").joinpath("data", "sample", SAMPLE_FILE)))


def _schedule(now: str | None, first: str | None, last: str | None, demo: bool) -> Schedule:
    if (first is None) != (last is None):
        raise UsageError("--from and --to go together")
    if first is not None and last is not None:
        if now is not None:
            raise UsageError("--now cannot be combined with --from/--to")
        return Schedule(first=parse_time(first, "--from"), last=parse_time(last, "--to"))
    default = SAMPLE_RUN_AT if demo else "now"
    return Schedule(at=parse_time(now or default, "--now"))


def _write(
    report: DetectReport, rules: list[Rule], fmt: str, as_report: bool, output: str | None
) -> None:
    alerts = report.alerts
    if output is not None:
        with open(output, "w", encoding="utf-8") as fh:
            if fmt == "table" or as_report:
                print_to = Console(file=fh, width=120, force_terminal=False)
                _render(print_to, alerts, rules, fmt, as_report)
            else:
                fh.write(to_json(alerts) if fmt == "json" else to_ndjson(alerts))
        return
    # Machine formats must not be wrapped; the table and reports wrap to the terminal.
    _render(Console(soft_wrap=fmt != "table" and not as_report), alerts, rules, fmt, as_report)


def _render(
    console: Console, alerts: list[dict[str, object]], rules: list[Rule], fmt: str, as_report: bool
) -> None:
    if as_report:
        print_reports(console, alerts, {r.label: r for r in rules})
    elif fmt == "table":
        console.print(table(alerts) if alerts else "no alerts")
    else:
        console.file.write(to_json(alerts) if fmt == "json" else to_ndjson(alerts))


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        files: Annotated[
            list[str] | None,
            typer.Argument(help="Event files: NDJSON (.gz), JSON, Parquet, Linux audit logs."),
        ] = None,
        rule: Annotated[
            list[str] | None,
            typer.Option(
                "--rule",
                "-r",
                help=f"Built-in name, rule_id or TOML path; repeatable (default {DEFAULT_RULE}).",
            ),
        ] = None,
        now: Annotated[
            str | None,
            typer.Option("--now", help="Run time T (ISO-8601; default: the current time)."),
        ] = None,
        first: Annotated[
            str | None,
            typer.Option("--from", help="With --to: every scheduled run between the two times."),
        ] = None,
        last: Annotated[str | None, typer.Option("--to", help="End of the --from range.")] = None,
        exceptions: Annotated[
            list[str] | None,
            typer.Option(
                "--exceptions",
                "-e",
                help="Exception list: Kibana NDJSON export or .toml; repeatable.",
            ),
        ] = None,
        fmt: Annotated[
            str | None,
            typer.Option(
                "--format",
                "-f",
                help="Output: table (terminal default) | ndjson (piped default) | json; "
                "or auditd: the inputs are audit logs (same as --input-format auditd).",
            ),
        ] = None,
        input_format: Annotated[
            str | None,
            typer.Option(
                "--input-format",
                help=INPUT_FORMAT_HELP,
            ),
        ] = None,
        output: Annotated[
            str | None, typer.Option("--output", "-o", help="Write alerts to this file.")
        ] = None,
        as_report: Annotated[
            bool,
            typer.Option(
                "--report", help="Readable report per alert with the rule's investigation guide."
            ),
        ] = False,
        demo: Annotated[
            bool, typer.Option("--demo", help="Run over the shipped sample at its own time.")
        ] = False,
        no_evidence: Annotated[
            bool, typer.Option("--no-evidence", help="Skip the evidence queries.")
        ] = False,
        space: Annotated[
            str, typer.Option("--space", help="Kibana space id used in alert ids.")
        ] = "default",
    ) -> None:
        """Run detection rules over events as Kibana's ES|QL rule executor would and print alerts."""
        from reconwatch.ingest import Dataset

        paths = list(files or [])
        if demo:
            paths.append(str(sample_path()))
        if not paths:
            raise UsageError("give event files to read, or --demo for the shipped sample")
        if fmt in INPUT_FORMATS:
            if input_format not in (None, fmt):
                raise UsageError(f"--format {fmt} contradicts --input-format {input_format}")
            input_format, fmt = fmt, None
        if input_format is not None:
            formats.get(input_format)  # a UsageError listing the registered formats
        chosen = fmt or ("table" if sys.stdout.isatty() else "ndjson")
        if chosen not in FORMATS:
            known = ", ".join(FORMATS + INPUT_FORMATS)
            raise UsageError(f"--format {chosen!r}: choose one of {known}")
        rules = [resolve_rule(r) for r in (rule or [DEFAULT_RULE])]
        lists: list[ExceptionList] = [load_exceptions(p) for p in exceptions or []]
        # A mistyped file name must not read as "no alerts": refuse it before any run.
        missing = [p for p in paths if not Path(p).exists()]
        if missing:
            raise UsageError(f"no such file: {', '.join(missing)}")
        schedule = _schedule(now, first, last, demo)
        dataset = Dataset.from_files(paths, input_format=input_format)
        report = detect(
            rules, DatasetBackend(dataset), schedule, exceptions=lists, evidence=not no_evidence
        )
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        ingest = getattr(dataset, "report", None)
        if ingest is not None and ingest.skipped:
            for line in ingest.lines(cap=20):
                err.print(f"warning: skipped {line}", markup=False)
            err.print(f"warning: {ingest.skipped} bad event(s) skipped", markup=False)
        for w in report.warnings:
            err.print(f"warning: {w}", markup=False)
        _write(report, rules, chosen, as_report, output)
        runs = len(report.runs)
        summary = f"{len(report.alerts)} alert(s) from {runs} run(s) of {len(rules)} rule(s)"
        if suppressed := sum(report.suppressed):
            summary += f"; {suppressed} duplicate alert(s) suppressed"
        err.print(summary, markup=False)
