"""`reconwatch watch`: run a rule over NDJSON events as they arrive and print alerts as they fire."""

from __future__ import annotations

import os
import select
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from reconwatch.alerts.sinks import FORMATS, open_sink
from reconwatch.backends.stream.executor import RealertPolicy, StreamExecutor
from reconwatch.backends.stream.lines import split_lines
from reconwatch.engine.watch import RuleWatch
from reconwatch.errors import UsageError
from reconwatch.ingest.formats import read_events
from reconwatch.ingest.locate import is_plain
from reconwatch.ingest.report import IngestReport
from reconwatch.plan.catalog import Catalog
from reconwatch.plan.documents import flatten
from reconwatch.rules.builtin import DEFAULT_RULE, resolve_rule
from reconwatch.rules.datemath import parse_interval

# Files read line by line with the plan's own decoder; others (.gz, JSON arrays) via ingest.
PLAIN_NDJSON = (".ndjson", ".jsonl")
FOLLOW_POLL_S = 0.2
READ_BYTES = 16 << 20
BATCH_LINES = 8192
Emit = Callable[[list[dict[str, object]]], None]


def _millis(text: str | None, option: str) -> int | None:
    if text is None:
        return None
    try:
        return int(parse_interval(text).total_seconds() * 1000)
    except Exception:
        msg = f"{option} {text!r}: expected a duration such as 90s, 5m or 1h"
        raise UsageError(msg) from None


def _fill(fd: int, buf: bytearray, start: int) -> int:
    """Bytes read into buf[start:]: a first read that waits for input, then whatever else can
    be read at once (a pipe gives at most its 64 KiB per read, and a batch of a few dozen lines
    costs more per event). 0 at end of input."""
    view = memoryview(buf)
    try:
        got = total = os.readv(fd, [view[start:]])
        while got and start + total < len(buf) and select.select([fd], [], [], 0)[0]:
            got = os.readv(fd, [view[start + total :]])
            total += got
    finally:
        view.release()
    return total


def _batches(
    fd: int, follow: bool, pause: Callable[[float], None] = time.sleep
) -> Iterator[Sequence[bytes]]:
    """Complete lines as they arrive, in micro-batches: each batch takes whatever is available
    (up to READ_BYTES), so a slow or paced input is processed as soon as a line ends and a fast
    one in batches of many lines. With `follow`, waits (`pause`, injected by tests) for lines
    appended at end of input.

    One buffer is reused for every read (a fresh 16 MiB per read costs its page faults and a
    copy): the lines are scanned where they are, and a line still being written moves to the
    front. A batch is used before the next read overwrites the buffer."""
    buf = bytearray(READ_BYTES)
    kept = 0  # a line still being written, at the front of buf
    while True:
        if kept == len(buf):  # one line longer than the buffer
            grown = bytearray(2 * len(buf))
            grown[:kept] = buf
            buf = grown
        got = _fill(fd, buf, kept)
        if not got:
            if not follow:
                break
            pause(FOLLOW_POLL_S)
            continue
        size = kept + got
        end = buf.rfind(b"\n", 0, size) + 1
        lines = split_lines(buf, end)
        for start in range(0, len(lines), BATCH_LINES):
            yield lines[start : start + BATCH_LINES]
        kept = size - end
        buf[:kept] = buf[end:size]  # same length: moved in place
    if kept:
        yield [bytes(buf[:kept])]


def _sources(paths: list[str], follow: bool) -> Iterator[tuple[str, int]]:
    """(input name, file descriptor) for stdin and the plain NDJSON files, in order."""
    for raw in paths or ["-"]:
        if raw == "-":
            yield "<stdin>", sys.stdin.fileno()
            continue
        fd = os.open(raw, os.O_RDONLY)
        try:
            yield raw, fd
        finally:
            os.close(fd)


def _watch_lines(
    watch: RuleWatch, name: str, fd: int, follow: bool, report: IngestReport, emit: Emit
) -> None:
    number = 0
    for batch in _batches(fd, follow):
        errors: list[tuple[int, str]] = []
        emit(watch.push_lines(batch, errors))
        for index, reason in errors:
            report.add(reason, name, number + index + 1)
        number += len(batch)


def _watch_documents(watch: RuleWatch, path: str, report: IngestReport, emit: Emit) -> None:
    """.gz files and JSON arrays, read by ingest, event by event."""
    for line, value in read_events(Path(path), report):
        if isinstance(value, dict):
            emit(watch.push(flatten(value)))
        else:
            report.add("not a JSON object", path, line)


def _catalog(paths: list[str], follow: bool) -> Catalog | None:
    """Replayed files give the analyser their real fields (as `detect` sees them); a live stream
    is analysed against the ECS fields alone."""
    if follow or not paths or "-" in paths:
        return None
    from reconwatch.ingest import Dataset

    return Dataset.from_files(paths)


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
    """Watched files an event's line can be sought in (not stdin, not compressed)."""
    return [Path(raw) for raw in paths if raw != "-" and is_plain(Path(raw))]


def register(app: typer.Typer) -> None:
    @app.command("watch")
    def watch_cmd(
        files: Annotated[
            list[str] | None,
            typer.Argument(
                help="NDJSON event files (.gz when replayed), or - for stdin (default)."
            ),
        ] = None,
        rule: Annotated[
            str, typer.Option("--rule", "-r", help="Built-in name, rule_id or TOML path.")
        ] = DEFAULT_RULE,
        follow: Annotated[
            bool, typer.Option("--follow", "-F", help="Keep reading lines appended to the input.")
        ] = False,
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
                help="Alert a group again after it stopped matching this long (default: the window).",
            ),
        ] = None,
        growth: Annotated[
            float | None,
            typer.Option(
                "--realert-growth",
                help="Also alert again when the distinct count grows by this factor (e.g. 10).",
            ),
        ] = None,
        growth_column: Annotated[
            str | None,
            typer.Option(
                "--realert-column",
                help="Column --realert-growth watches (default: first count_distinct).",
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
        output: Annotated[
            str | None,
            typer.Option(
                "--output", "-o", help="Write alerts to this file (- is stdout).", metavar="FILE"
            ),
        ] = None,
    ) -> None:
        """Evaluate a rule continuously over a sliding event-time window; alerts print as they fire."""
        paths = list(files or [])
        chosen = resolve_rule(rule)
        policy = RealertPolicy(_millis(rearm, "--rearm-after"), growth, growth_column)
        watch = RuleWatch.create(
            chosen,
            _catalog(paths, follow),
            lateness_ms=_millis(lateness, "--lateness"),
            policy=policy,
            space=space,
            files=_plain_files(paths),
            evidence=not no_evidence,
        )
        report = IngestReport()
        sink = open_sink(output, fmt, rules={chosen.label: chosen})
        err = Console(stderr=True, highlight=False, soft_wrap=True)
        alerts = 0

        def emit(batch: list[dict[str, object]]) -> None:
            nonlocal alerts
            if batch:
                sink.write(batch)
                alerts += len(batch)

        try:
            for raw in paths or ["-"]:
                if raw != "-" and not follow and Path(raw).suffix not in PLAIN_NDJSON:
                    _watch_documents(watch, raw, report, emit)
                    continue
                for name, fd in _sources([raw], follow):
                    _watch_lines(watch, name, fd, follow, report, emit)
        except KeyboardInterrupt:
            pass
        finally:
            sink.close()
        for line in report.lines(cap=20):
            err.print(f"warning: skipped {line}", markup=False)
        metrics = watch.executor.refresh_metrics()
        if stats:
            err.print(" ".join(f"{k}={v}" for k, v in metrics.as_dict().items()), markup=False)
            err.print(_path_line(watch.executor), markup=False)
        err.print(
            f"{alerts} alert(s) from {metrics.events} event(s); {report.skipped} bad line(s) skipped, "
            f"{metrics.outside_window + metrics.too_late} late event(s) dropped",
            markup=False,
        )
