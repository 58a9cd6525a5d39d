"""`reconwatch detect`: run detection rules over event files the way Kibana does, print alerts."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from reconwatch.alerts.sinks import FORMATS, AlertSink, open_sink
from reconwatch.cli.inputs import (
    AlertsOutput,
    DetectorState,
    DetectorStateOption,
    EngineOption,
    MemoryLimit,
    QueryTimeout,
    SparkMasterOption,
    SyslogYear,
    choose_engine,
    expand_inputs,
    print_notes,
    query_limits,
    require_files,
)
from reconwatch.engine.detect import (
    DatasetBackend,
    DetectReport,
    EventSpan,
    OnRun,
    Schedule,
    detect,
    empty_runs,
    event_span,
)
from reconwatch.engine.run import RunResult
from reconwatch.errors import ReconwatchError, RuleRunError, UsageError
from reconwatch.ingest import formats
from reconwatch.plan.limits import DEFAULT_MEMORY, RULE_RUN_SECONDS, limited
from reconwatch.plan.values import ConversionError, format_datetime, parse_datetime
from reconwatch.rules.builtin import DEFAULT_RULE, load_rule_specs
from reconwatch.rules.datemath import parse_interval
from reconwatch.rules.exceptions import ExceptionList, check_fields, load_exceptions
from reconwatch.rules.model import Rule

if TYPE_CHECKING:
    from reconwatch.ingest import Dataset

SAMPLE_FILE = "defend-network-sample.ndjson.gz"
# The shipped sample covers 09:00-10:00Z; the demo is the hourly run right after it.
SAMPLE_RUN_AT = "2025-07-16T10:00:00Z"
INPUT_FORMAT_HELP = (
    "Read every input as this format: "
    + ", ".join(formats.names())
    + ". Default: by content (an unrecognised file is reported by name)."
)
# Kibana refuses a manual run reaching back more than 90 days
# (MAX_SCHEDULE_BACKFILL_LOOKBACK_WINDOW_DAYS); --from/--to gets the same bound by default.
MAX_RANGE_DEFAULT = "90d"
# Bad events listed one by one on stderr (then only counted).
MAX_REPORTED = 20
# Fewer runs than this finish before a progress bar is worth drawing.
PROGRESS_MIN_RUNS = 10


# Kibana's default timeout of one rule run (xpack.alerting.rules.run.timeout, 5m); --timeout.
RULE_RUN_TIMEOUT = RULE_RUN_SECONDS


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


def _max_range(text: str) -> timedelta:
    try:
        return parse_interval(text)
    except Exception:
        msg = f"--max-range {text!r}: expected a duration such as 90d or 2160h"
        raise UsageError(msg) from None


def _schedule(
    now: str | None, first: str | None, last: str | None, demo: bool, max_range: str
) -> Schedule:
    if (first is None) != (last is None):
        raise UsageError("--from and --to go together")
    if first is not None and last is not None:
        if now is not None:
            raise UsageError("--now cannot be combined with --from/--to")
        start, end = parse_time(first, "--from"), parse_time(last, "--to")
        limit = _max_range(max_range)
        if end - start > limit:
            days = math.ceil((end - start) / timedelta(days=1))
            msg = (
                f"--from/--to spans {days:,} days; a manual run covers at most {max_range}, "
                f"as in Kibana (split the range, or raise the bound with --max-range {days}d)"
            )
            raise UsageError(msg)
        return Schedule(first=start, last=end)
    default = SAMPLE_RUN_AT if demo else "now"
    return Schedule(at=parse_time(now or default, "--now"))


def _output_format(fmt: str | None, as_report: bool) -> str | None:
    if fmt is not None and fmt not in FORMATS and fmt in formats.names():
        msg = f"--format {fmt}: {fmt} is an input format; use --input-format {fmt}"
        raise UsageError(msg)
    if as_report:
        if fmt not in (None, "report"):
            raise UsageError(f"--report contradicts --format {fmt}")
        return "report"
    return fmt


@contextlib.contextmanager
def _progress(total: int, err: Console) -> Iterator[OnRun | None]:
    """A progress bar on stderr for long --from/--to ranges, only on a terminal."""
    if total < PROGRESS_MIN_RUNS or not err.is_terminal:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]runs"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[alerts]} alert(s)"),
        TextColumn("[dim]{task.fields[at]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("runs", total=total, alerts=0, at="")
        alerts = 0

        def advance(rule: Rule, run: RunResult) -> None:
            nonlocal alerts
            alerts += len(run.alerts)
            at = run.window.run_at.strftime("%Y-%m-%d %H:%MZ")
            bar.update(task, advance=1, alerts=alerts, at=f"{rule.label} run at {at}")

        yield advance


def _report_unusable(dataset: Dataset, err: Console) -> list[str]:
    """Name every input that gave no event at all (with what it looks like if unrecognised)."""
    unusable = dataset.unusable_inputs()
    for line in unusable:
        err.print(f"error: {line}", markup=False)
    return unusable


def _no_events_notes(
    rules: list[Rule], report: DetectReport, backend: DatasetBackend, schedule: Schedule
) -> list[str]:
    """For rules without alerts whose runs saw no event at all: the runs' and the inputs' time
    spans, so a wrong --now is visible at once."""
    notes: list[str] = []
    failed = {f.label for f in report.failures}
    alerted = {rule.label for rule, run in report.runs if run.alerts}
    for rule in rules:
        if rule.label in alerted or rule.label in failed or rule.native:
            continue
        windows = schedule.windows(rule)
        span = event_span(rule, backend, windows[-1].run_at)
        if span is None or any(span.overlaps(w) for w in windows):
            continue
        covered = f"{format_datetime(windows[0].start)} .. {format_datetime(windows[-1].end)}"
        if span.events == 0 or span.first is None or span.last is None:
            events = "the inputs hold no events"
        else:
            events = (
                f"the inputs' {span.events} event(s) span "
                f"{format_datetime(span.first)} .. {format_datetime(span.last)}"
            )
        notes.append(
            f"{rule.label}: no events in any run window: the runs covered {covered}, {events} "
            "(choose --now or --from/--to inside the events' span)"
        )
    return notes


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        files: Annotated[
            list[str] | None,
            typer.Argument(
                help="Event files: NDJSON (.gz), JSON, Parquet, Linux audit logs, Zeek conn.log, "
                "pcap/pcapng, iptables LOG lines, Suricata EVE, Sysmon for Linux, osquery (with --engine spark also directories and "
                "glob patterns).",
                metavar="FILES...",
            ),
        ] = None,
        rule: Annotated[
            list[str] | None,
            typer.Option(
                "--rule",
                "-r",
                help=f"Pack (recon), built-in name, rule_id or TOML path; repeatable "
                f"(default {DEFAULT_RULE}).",
                metavar="RULE",
            ),
        ] = None,
        now: Annotated[
            str | None,
            typer.Option(
                "--now", help="Run time T (ISO-8601; default: the current time).", metavar="TIME"
            ),
        ] = None,
        first: Annotated[
            str | None,
            typer.Option(
                "--from",
                help="With --to: every scheduled run between the two times.",
                metavar="TIME",
            ),
        ] = None,
        last: Annotated[
            str | None, typer.Option("--to", help="End of the --from range.", metavar="TIME")
        ] = None,
        max_range: Annotated[
            str,
            typer.Option(
                "--max-range",
                help="Longest --from/--to range, as Kibana bounds manual runs.",
                metavar="DURATION",
            ),
        ] = MAX_RANGE_DEFAULT,
        exceptions: Annotated[
            list[str] | None,
            typer.Option(
                "--exceptions",
                "-e",
                help="Exception list: Kibana NDJSON export or .toml; repeatable.",
                metavar="FILE",
            ),
        ] = None,
        fmt: Annotated[
            str | None,
            typer.Option(
                "--format",
                "-f",
                help=f"Output: {' | '.join(FORMATS)}. Default: by the -o file's extension "
                "(else ndjson); on stdout table on a terminal, ndjson when piped.",
                metavar="FORMAT",
            ),
        ] = None,
        input_format: Annotated[
            str | None,
            typer.Option(
                "--input-format",
                help=INPUT_FORMAT_HELP,
                metavar="FORMAT",
            ),
        ] = None,
        output: AlertsOutput = None,
        year: SyslogYear = None,
        replay: Annotated[
            bool,
            typer.Option(
                "--replay",
                help="Forensic: every scheduled run across the inputs' own time span (per rule); "
                "runs whose window holds none of the events are named on stderr.",
            ),
        ] = False,
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
            str,
            typer.Option("--space", help="Kibana space id used in alert ids.", metavar="SPACE"),
        ] = "default",
        memory_limit: MemoryLimit = DEFAULT_MEMORY,
        timeout: QueryTimeout = RULE_RUN_TIMEOUT,
        history: Annotated[
            list[str] | None,
            typer.Option(
                "--history",
                help="Event files from before the period, read only by the native detectors, "
                "only to learn (baselines); repeatable.",
                metavar="FILE",
            ),
        ] = None,
        state_path: DetectorStateOption = None,
        engine: EngineOption = "duckdb",
        spark_master: SparkMasterOption = None,
    ) -> None:
        """Run detection rules over events as Kibana's ES|QL rule executor would and print alerts."""
        from reconwatch.ingest import Dataset

        err = Console(stderr=True, highlight=False, soft_wrap=True)
        paths = list(files or [])
        if demo:
            paths.append(str(sample_path()))
        if not paths:
            raise UsageError("give event files to read, or --demo for the shipped sample")
        limits = query_limits(memory_limit, timeout)
        out_format = _output_format(fmt, as_report)
        if input_format is not None:
            formats.get(input_format)  # a UsageError listing the registered formats
        backend_name = choose_engine(engine, spark_master)
        paths = expand_inputs(paths, backend_name)
        rules, failed = load_rule_specs(list(rule or [DEFAULT_RULE]))
        lists: list[ExceptionList] = [load_exceptions(p) for p in exceptions or []]
        require_files(paths)
        if replay and (now is not None or first is not None or last is not None or demo):
            raise UsageError(
                "--replay takes the inputs' own time span: not with --now/--from/--to/--demo"
            )
        schedule = Schedule() if replay else _schedule(now, first, last, demo, max_range)
        dataset = Dataset.from_files(paths, input_format=input_format, year=year)
        if lists:
            fields = {name: col.type for name, col in dataset.fields(("*",)).items()}
            for lst in lists:
                check_fields(lst, fields)
        sink = open_sink(output, out_format, rules={r.label: r for r in rules}, inputs=paths)
        if backend_name == "spark" and schedule.total(rules) > len(rules):
            # Many runs of a rule: each exported file read once, its rows cached for the rest.
            dataset.keep_spark_reads()
        backend = DatasetBackend(dataset, engine=backend_name)
        learned = _history(history or [], input_format, year)
        state = DetectorState(state_path, rules, err)
        if replay:
            with limited(limits):
                schedule = _replay_schedule(rules, backend, max_range, err)
        if backend_name != "spark" and schedule.total(rules) > len(rules):
            # Many runs of a rule: the Parquet files DuckDB reads are read and converted once.
            dataset.keep_parquet_reads()
        with _progress(schedule.total(rules), err) as on_run, limited(limits):
            report = detect(
                rules,
                backend,
                schedule,
                exceptions=lists,
                evidence=not no_evidence,
                space=space,
                on_run=on_run,
                history=None if learned is None else DatasetBackend(learned),
                detectors=state.detectors,
            )
        state.save()
        if learned is not None:
            _report_unusable(learned, err)
        if replay:
            with limited(limits):
                _report_empty_runs(rules, backend, schedule, err)
        _finish(report, rules, failed, dataset, backend, schedule, sink, err)


def _history(paths: list[str], input_format: str | None, year: int | None) -> Dataset | None:
    """The --history files as a dataset (each must exist), or None without any."""
    if not paths:
        return None
    from reconwatch.ingest import Dataset

    require_files(paths)
    return Dataset.from_files(paths, input_format=input_format, year=year)


# The replay's span is read with this query time (the rule's FROM alone does not use now()).
_SPAN_QUERY_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def _reads(rule: Rule) -> Rule:
    """The rule as far as its events go: a native detector's source is the network events
    its detectors read, an ES|QL rule's is its own FROM."""
    if not rule.native:
        return rule
    from reconwatch.engine.native.run import SOURCE

    return dataclasses.replace(rule, query=SOURCE)


def _replay_schedule(
    rules: list[Rule], backend: DatasetBackend, max_range: str, err: Console
) -> Schedule:
    """Each rule's runs over its own events' span; a rule whose source holds no event with a
    time gets none (said on stderr); a span longer than --max-range is refused."""
    spans: dict[str, EventSpan] = {}
    limit = _max_range(max_range)
    for rule in rules:
        try:
            span = event_span(_reads(rule), backend, _SPAN_QUERY_TIME)
        except ReconwatchError:
            continue  # the run itself reports the rule's failure
        if span is None or span.first is None or span.last is None:
            err.print(f"replay: {rule.label}: the inputs hold no event it reads", markup=False)
            continue
        if span.last - span.first > limit:
            days = math.ceil((span.last - span.first) / timedelta(days=1))
            msg = (
                f"--replay: the events span {days:,} days, more than --max-range {max_range} "
                f"(raise it with --max-range {days}d)"
            )
            raise UsageError(msg)
        spans[rule.label] = span
        err.print(
            f"replay: {rule.label}: {span.events} event(s) from {format_datetime(span.first)} to "
            f"{format_datetime(span.last)}",
            markup=False,
        )
    return Schedule(spans=spans)


def _report_empty_runs(
    rules: list[Rule], backend: DatasetBackend, schedule: Schedule, err: Console
) -> None:
    """Runs of the replay whose window held none of the events, as ranges of run times."""
    for rule in rules:
        windows = schedule.windows(rule)
        empty = {w.run_at for w in empty_runs(_reads(rule), backend, windows)}
        for first, last, count in _stretches([w.run_at for w in windows], empty):
            when = (
                format_datetime(first)
                if count == 1
                else (f"{format_datetime(first)} .. {format_datetime(last)}")
            )
            err.print(
                f"replay: {rule.label}: {count} run(s) at {when}: the window held none of the "
                "inputs' events",
                markup=False,
            )


def _stretches(
    times: list[datetime], chosen: set[datetime]
) -> list[tuple[datetime, datetime, int]]:
    """Consecutive runs in `chosen` as (first, last, how many)."""
    out: list[tuple[datetime, datetime, int]] = []
    previous = -2
    for i, moment in enumerate(times):
        if moment not in chosen:
            continue
        if i == previous + 1:
            first, _last, count = out[-1]
            out[-1] = (first, moment, count + 1)
        else:
            out.append((moment, moment, 1))
        previous = i
    return out


def _finish(
    report: DetectReport,
    rules: list[Rule],
    failed: list[RuleRunError],
    dataset: Dataset,
    backend: DatasetBackend,
    schedule: Schedule,
    sink: AlertSink,
    err: Console,
) -> None:
    """Warnings, the alerts, the summary; then the error exit when an input or a rule failed."""
    # An unrecognised file is an error of its own (_report_unusable), not a skipped event.
    print_notes(dataset.report.notes, err)
    bad = [e for e in dataset.report.errors if not isinstance(e, formats.UnrecognisedFormatError)]
    if bad:
        for e in bad[:MAX_REPORTED]:
            err.print(f"warning: skipped {e.one_line()}", markup=False)
        err.print(f"warning: {len(bad)} bad event(s) skipped", markup=False)
    for w in report.warnings:
        err.print(f"warning: {w}", markup=False)
    try:
        sink.write(report.alerts)
    finally:
        sink.close()
    failed = [*failed, *report.failures]
    for failure in failed:
        err.print(f"error: {failure.render()}", markup=False)
    unusable = _report_unusable(dataset, err)
    if not report.alerts and not failed and not unusable:
        for note in _no_events_notes(rules, report, backend, schedule):
            err.print(f"warning: {note}", markup=False)
    ran = len(rules) - len(report.failures)
    summary = f"{len(report.alerts)} alert(s) from {len(report.runs)} run(s) of {ran} rule(s)"
    if suppressed := sum(report.suppressed):
        summary += f"; {suppressed} duplicate alert(s) suppressed"
    if failed:
        summary += f"; {len(failed)} rule(s) failed"
    err.print(summary, markup=False)
    if failed:
        code = max(f.exit_code for f in failed)
        raise typer.Exit(code)
    if unusable:
        raise typer.Exit(2)
