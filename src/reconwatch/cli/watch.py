"""`reconwatch watch`: run rules over events as they arrive (replayed, piped or followed files) and print alerts as they fire."""

from __future__ import annotations

import contextlib
import functools
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from reconwatch.alerts.sinks import FORMATS, open_sink
from reconwatch.backends.stream.executor import RealertPolicy, StreamExecutor
from reconwatch.cli.inputs import (
    AlertsOutput,
    DetectorState,
    DetectorStateOption,
    MemoryLimit,
    QueryTimeout,
    SyslogYear,
    print_notes,
    require_files,
)
from reconwatch.cli.plain import query_limits
from reconwatch.engine import feed
from reconwatch.engine.collector import settle
from reconwatch.engine.native.contact import Contact, contact_of
from reconwatch.engine.native.watch import NativeWatch
from reconwatch.engine.watch import RuleWatch
from reconwatch.errors import IngestError, QueryError, RuleRunError, UsageError
from reconwatch.ingest import formats
from reconwatch.ingest.follow import Checkpoint
from reconwatch.ingest.locate import is_plain
from reconwatch.ingest.report import IngestReport
from reconwatch.plan.catalog import Catalog
from reconwatch.plan.documents import flatten
from reconwatch.plan.limits import DEFAULT_MEMORY, RULE_RUN_SECONDS, limited
from reconwatch.rules.builtin import DEFAULT_RULE, load_rule_specs, streamable
from reconwatch.rules.datemath import parse_interval
from reconwatch.rules.model import Rule

T = TypeVar("T")


class _Stop(Exception):
    """SIGINT or SIGTERM while waiting for input."""


class _Signals:
    """SIGINT and SIGTERM end the watch with its summary (and checkpoint): at once while it
    waits for input, else after the batch in hand, so no batch is half processed."""

    def __init__(self) -> None:
        self.stopped = False
        self.waiting = False
        self._previous: dict[int, object] = {}

    def install(self) -> None:
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread (an embedding caller): signals stay theirs
            self.restore()

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.stopped = True
        if self.waiting:
            raise _Stop

    def guard(self, items: Iterable[T]) -> Iterator[T]:
        """`items`, each fetched as waiting (a signal stops at once) and handed out as work
        (a signal stops after it)."""
        it = iter(items)
        while not self.stopped:
            self.waiting = True
            try:
                if self.stopped:
                    return
                item = next(it)
            except (StopIteration, _Stop):
                return
            finally:
                self.waiting = False
            yield item

    def sleep(self, seconds: float) -> None:
        self.waiting = True
        try:
            if not self.stopped:
                time.sleep(seconds)
        except _Stop:
            pass
        finally:
            self.waiting = False


def _millis(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return int(parse_interval(text).total_seconds() * 1000)
    except Exception:
        msg = f"{option} {text!r}: expected a duration such as 90s, 5m or 1h"
        raise UsageError(msg) from None


def _catalog(
    paths: list[str], follow: bool, forced: str | None, year: int | None
) -> Catalog | None:
    """Replayed files give the analyser their real fields (as `detect` sees them); a live stream
    is analysed against the ECS fields alone."""
    if follow or not paths or "-" in paths:
        return None
    from reconwatch.ingest import Dataset

    return Dataset.from_files(paths, input_format=forced, year=year)


def _path_line(executor: StreamExecutor) -> str:
    """Which path ran the events: operators see when the compiled scan is missing."""
    fast = executor.fast
    if fast is None:
        return "path: general, event by event (the plan's shape is not the fast path's)"
    scan = "compiled scan" if fast.native else "Python scan (_scan.c not built or turned off)"
    return f"path: micro-batch fast path, {scan}; " + " ".join(
        f"{k}={v}" for k, v in fast.stats.items()
    )


def _plain_files(paths: list[str]) -> list[Path]:
    """Watched files an event's line can be sought in (regular files, not compressed; a FIFO
    must not be opened here: that would take its first bytes)."""
    return [Path(raw) for raw in paths if Path(raw).is_file() and is_plain(Path(raw))]


def _create_watches(
    rules: list[Rule],
    failed: list[RuleRunError],
    create: Callable[[Rule], RuleWatch | NativeWatch],
) -> list[RuleWatch | NativeWatch]:
    """A watch per rule; a rule whose query fails joins `failed`, naming its file (with several
    rules, which one failed is not in the query error itself), and the others run, as in
    `detect`. A single rule's failure, or no rule left, is the error."""
    watches: list[RuleWatch | NativeWatch] = []
    for rule in rules:
        try:
            watches.append(create(rule))
        except QueryError as exc:
            failure = RuleRunError(rule.label, exc)
            if len(rules) == 1 and not failed:
                raise failure from None
            failed.append(failure)
    if not watches:
        raise failed[0]
    return watches


def _learn(
    watches: list[RuleWatch | NativeWatch],
    history: list[str],
    forced: str | None,
    report: IngestReport,
) -> None:
    """--history: every file read (bad events reported) and handed, only to learn, to the
    native detectors; then read again for the ES|QL rules, each window filled with the
    history's last window-length of events (their matches there are not alerted)."""
    if not history:
        return
    require_files(history)
    native = [w for w in watches if isinstance(w, NativeWatch)]
    streaming = [w for w in watches if isinstance(w, RuleWatch)]
    contacts: list[Contact] = []
    latest: int | None = None
    for raw in history:
        for line, value in formats.read_events(Path(raw), report, forced):
            if not isinstance(value, dict):
                report.add("not a JSON object", raw, line)
                continue
            flat = flatten(value)
            if (contact := contact_of(flat)) is not None:
                contacts.append(contact)
            if streaming and (ms := streaming[0].executor.event_time(flat)) is not None:
                latest = ms if latest is None else max(latest, ms)
    for watch in native:
        watch.learn(contacts)
    if latest is not None:
        _prime(streaming, history, forced, latest, report.year)
    settle()  # the learned and primed state is long-lived: out of the collector's full passes


def _prime(
    watches: list[RuleWatch],
    history: list[str],
    forced: str | None,
    latest: int,
    report_year: int | None,
) -> None:
    """The history's events from each rule's window before `latest`, in file order (a second
    read: its bad events were reported by the first)."""
    quiet = IngestReport(report_year)
    for raw in history:
        for _line, value in formats.read_events(Path(raw), quiet, forced):
            if not isinstance(value, dict):
                continue
            flat = flatten(value)
            for watch in watches:
                ms = watch.executor.event_time(flat)
                if ms is not None and ms > latest - watch.executor.window.length_ms:
                    watch.prime([flat])


def _check_inputs(paths: list[str], follow: bool, checkpoint: str | None) -> None:
    if checkpoint is not None and not follow:
        raise UsageError("--checkpoint goes with --follow")
    if follow and "-" in paths:
        raise UsageError("--follow reads files by name; a pipe (-) is read to its end anyway")
    files = [p for p in paths if p != "-"]
    if not follow:
        require_files(files)  # a missing file or a directory is refused, as by detect
        return
    folders = [p for p in files if Path(p).is_dir()]
    if folders:
        raise UsageError(f"--follow: a directory, not an event file: {', '.join(folders)}")


def _summary(
    watches: list[RuleWatch | NativeWatch],
    report: IngestReport,
    alerts: int,
    stats: bool,
    replayed: int = 0,
) -> int:
    """Print the warnings and the summary; return the number of events read."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    print_notes(report.notes, err)
    for line in report.lines(cap=20):
        err.print(f"warning: skipped {line}", markup=False)
    events = late = 0
    for watch in watches:
        metrics = watch.executor.refresh_metrics()
        events = max(events, metrics.events)
        late += metrics.outside_window + metrics.too_late
        if stats:
            label = f"{watch.rule.name}: " if len(watches) > 1 else ""
            err.print(
                label + " ".join(f"{k}={v}" for k, v in metrics.as_dict().items()), markup=False
            )
            if isinstance(watch, NativeWatch):
                detector = watch.executor.detector
                err.print(
                    f"{label}path: native detector, groups={detector.groups} "
                    f"state_bytes={detector.state_bytes()} (measured)",
                    markup=False,
                )
            else:
                err.print(label + _path_line(watch.executor), markup=False)
    rules = f" of {len(watches)} rules" if len(watches) > 1 else ""
    again = f" (and {replayed} read again to rebuild the window)" if replayed else ""
    err.print(
        f"{alerts} alert(s){rules} from {events - replayed} event(s){again}; "
        f"{report.skipped} bad line(s) skipped, {late} late event(s) dropped",
        markup=False,
    )
    return events


def register(app: typer.Typer) -> None:
    @app.command("watch")
    def watch_cmd(
        files: Annotated[
            list[str] | None,
            typer.Argument(
                help="Event files (NDJSON, audit logs; others too when replayed), or - for stdin "
                "(default)."
            ),
        ] = None,
        rule: Annotated[
            list[str] | None,
            typer.Option(
                "--rule",
                "-r",
                help=f"Pack (recon), built-in name, rule_id or TOML path; repeatable, every rule "
                "runs over the "
                f"same events (default {DEFAULT_RULE}).",
            ),
        ] = None,
        follow: Annotated[
            bool,
            typer.Option(
                "--follow",
                "-F",
                help="Follow the files by name as they grow, like tail -F (rotation and "
                "truncation included); a missing file is waited for.",
            ),
        ] = False,
        checkpoint: Annotated[
            str | None,
            typer.Option(
                "--checkpoint",
                help="With --follow: keep the read position in this file, so a restart goes on "
                "after the last line read (through rotations made meanwhile).",
            ),
        ] = None,
        input_format: Annotated[
            str | None,
            typer.Option(
                "--input-format",
                help="Read every input as this format (ndjson, auditd, ...); default: by content.",
            ),
        ] = None,
        lateness: Annotated[
            str | None,
            typer.Option(
                "--lateness",
                help="Drop events older than this behind the latest event time (default: the window).",
            ),
        ] = None,
        rearm: Annotated[
            str | None,
            typer.Option(
                "--rearm-after",
                help="Alert a group again once it stopped matching this long (default: the "
                "rule's interval, capped at its window).",
            ),
        ] = None,
        growth: Annotated[
            float | None,
            typer.Option(
                "--realert-growth",
                help="Also alert again when the distinct count grows by this factor (> 1, e.g. 10).",
            ),
        ] = None,
        growth_column: Annotated[
            str | None,
            typer.Option(
                "--realert-column",
                help="Numeric output column --realert-growth watches (default: the first "
                "count_distinct, else count).",
            ),
        ] = None,
        stats: Annotated[
            bool, typer.Option("--stats", help="Print state metrics to stderr at the end.")
        ] = False,
        space: Annotated[
            str, typer.Option("--space", help="Kibana space id used in alert ids.")
        ] = "default",
        no_evidence: Annotated[
            bool, typer.Option("--no-evidence", help="Alerts without reconwatch.evidence.")
        ] = False,
        fmt: Annotated[
            str | None,
            typer.Option(
                "--format",
                "-f",
                help=f"Output: {' | '.join(FORMATS)}, as for detect. Default: by the -o "
                "file's extension (else ndjson); on stdout table on a terminal, ndjson when piped.",
                metavar="FORMAT",
            ),
        ] = None,
        output: AlertsOutput = None,
        history: Annotated[
            list[str] | None,
            typer.Option(
                "--history",
                help="Event files from before the stream, read first and only to learn: the "
                "native detectors' baselines, and each ES|QL rule's window filled with its "
                "last window-length (not alerted); repeatable.",
                metavar="FILE",
            ),
        ] = None,
        state_path: DetectorStateOption = None,
        year: SyslogYear = None,
        memory_limit: MemoryLimit = DEFAULT_MEMORY,
        timeout: QueryTimeout = RULE_RUN_SECONDS,
    ) -> None:
        """Evaluate rules continuously over a sliding event-time window; alerts print as they fire."""
        # Each event's work per rule and each evidence query: a time budget, DuckDB's memory.
        limits = query_limits(memory_limit, timeout)
        bounded = contextlib.ExitStack()
        bounded.enter_context(limited(limits))
        signals = _Signals()
        signals.install()
        signals.waiting = True  # Ctrl-C while starting (a replayed file is scanned): stop there
        try:
            paths = list(files or [])
            _check_inputs(paths, follow, checkpoint)
            if input_format is not None:
                formats.get(input_format)
            specs = list(rule or [DEFAULT_RULE])
            chosen, failed = load_rule_specs(specs)
            chosen, scheduled = streamable(chosen, specs)
            policy = RealertPolicy(_millis(rearm, "--rearm-after"), growth, growth_column)
            catalog = _catalog(paths, follow, input_format, year)
            lateness_ms = _millis(lateness, "--lateness")
            stream_watch = functools.partial(
                RuleWatch.create,
                catalog=catalog,
                lateness_ms=lateness_ms,
                policy=policy,
                space=space,
                files=_plain_files(paths),
                evidence=not no_evidence,
            )

            err = Console(stderr=True, highlight=False, soft_wrap=True)
            state = DetectorState(state_path, chosen, err)

            def create(rule: Rule) -> RuleWatch | NativeWatch:
                if rule.native:
                    saved = state.detectors.get(rule.rule_id)
                    return NativeWatch.create(rule, space=space, detector=saved)
                return stream_watch(rule)

            watches = _create_watches(chosen, failed, create)
            report = IngestReport(year)
            _learn(watches, history or [], input_format, report)
            signals.waiting = False
            sink = open_sink(output, fmt, rules={r.label: r for r in chosen}, inputs=paths)
            for left in scheduled:
                err.print(
                    f"watch: {left.label} left out: it runs on a schedule only (detect, serve)",
                    markup=False,
                )
            for failure in failed:  # at once: a follow may run for days
                err.print(f"error: {failure.render()}", markup=False)
            alerts = 0

            def notice(text: str) -> None:
                err.print(f"watch: {text}", markup=False)

            def emit(batch: list[dict[str, object]]) -> None:
                nonlocal alerts
                if batch:
                    sink.write(batch)
                    alerts += len(batch)

            run = feed.Feed(watches, report, emit, signals)
            try:
                if follow:
                    store = Checkpoint(Path(checkpoint)) if checkpoint is not None else None
                    try:
                        feed.follow(run, paths, input_format, store, notice)
                    except ValueError as exc:  # an unreadable checkpoint
                        raise UsageError(f"--checkpoint: {exc}") from None
                    run.flush_decoders()
                else:
                    for raw in paths or ["-"]:
                        if signals.stopped:
                            break
                        feed.replay(run, raw, input_format)
            except BrokenPipeError:
                raise  # the reader of the alerts went away (`| head`): main leaves quietly
            except OSError as exc:
                raise IngestError(f"cannot read: {exc.strerror or exc}", exc.filename) from None
            finally:
                sink.close()
            for w in watches:
                if isinstance(w, NativeWatch):
                    state.detectors[w.rule.rule_id] = w.executor.detector
            state.save()
            events = _summary(watches, report, alerts, stats, run.replayed)
            if events == 0 and report.skipped:
                # Every input unrecognised or every line bad: a clean-looking exit 0 would hide it.
                where = ", ".join(paths) or "-"
                raise IngestError(
                    f"no events read: {report.skipped} bad line(s) or unrecognised input(s) (above)",
                    where,
                )
            if failed:
                err.print(f"error: {len(failed)} rule(s) failed (above)", markup=False)
                raise typer.Exit(max(f.exit_code for f in failed))
        except _Stop:
            raise typer.Exit(130) from None  # stopped before any event was read
        finally:
            signals.restore()  # an in-process caller (tests) keeps its own handlers
            bounded.close()
