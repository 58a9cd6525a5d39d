"""`reconwatch watch`: run rules over events as they arrive (replayed, piped or followed files) and print alerts as they fire."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from reconwatch.alerts.sinks import FORMATS, open_sink
from reconwatch.backends.stream.executor import RealertPolicy, StreamExecutor
from reconwatch.backends.stream.lines import split_lines
from reconwatch.cli.inputs import require_files
from reconwatch.engine.watch import RuleWatch
from reconwatch.errors import IngestError, UsageError
from reconwatch.ingest import formats
from reconwatch.ingest.follow import (
    Batch,
    Checkpoint,
    Follower,
    LineDecoderSource,
    Notice,
    Position,
    follow_all,
    read_batches,
    replay_lines,
)
from reconwatch.ingest.head import read_head
from reconwatch.ingest.locate import is_plain
from reconwatch.ingest.report import IngestReport
from reconwatch.plan.catalog import Catalog
from reconwatch.plan.documents import flatten
from reconwatch.rules.builtin import DEFAULT_RULE, resolve_rule
from reconwatch.rules.datemath import parse_interval

FOLLOW_POLL_S = 0.2
# A running follow saves its checkpoint at most this often (and always when it stops).
CHECKPOINT_EVERY_S = 1.0
Emit = Callable[[list[dict[str, object]]], None]
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


@dataclass(slots=True)
class _Run:
    """Every rule's watch over the same input, the report of bad input, and the alerts out."""

    watches: list[RuleWatch]
    report: IngestReport
    emit: Emit
    signals: _Signals
    # NDJSON lines go to the executors as they are; other line formats decode them first.
    decoders: dict[str, LineDecoderSource] = field(default_factory=dict)
    # Events read again after a restart to rebuild the window (not new events).
    replayed: int = 0

    def lines(self, name: str, first: int, batch: Sequence[bytes]) -> None:
        """One batch of NDJSON lines through every rule; a bad line is reported once."""
        errors: dict[int, str] = {}
        for watch in self.watches:
            found: list[tuple[int, str]] = []
            self.emit(watch.push_lines(batch, found))
            for index, reason in found:
                errors.setdefault(index, reason)
        for index in sorted(errors):
            self.report.add(errors[index], name, first + index)

    def events(self, name: str, events: Iterable[tuple[int, object]]) -> None:
        for line, value in events:
            if not isinstance(value, dict):
                self.report.add("not a JSON object", name, line)
                continue
            flat = flatten(value)
            for watch in self.watches:
                self.emit(watch.push(flat))

    def batch(self, source: str, name: str, first: int, batch: Sequence[bytes]) -> None:
        """Lines of `name` (the followed `source` itself or a rotated file of it)."""
        decoder = self.decoders.get(source)
        if decoder is None:
            self.lines(name, first, batch)
        else:
            self.events(name, decoder.feed(first, batch))

    def flush_decoders(self) -> None:
        for name, decoder in self.decoders.items():
            self.events(name, decoder.flush())


def _replay(run: _Run, raw: str, forced: str | None) -> None:
    """A file (or stdin) read to its end: plain NDJSON line by line in one reused buffer,
    other formats through their registered reader."""
    if raw == "-":
        _stdin(run, forced)
        return
    path = Path(raw)
    try:
        fmt = formats.resolve(path, forced)
    except OSError as exc:
        run.report.add(f"cannot read file: {exc.strerror or exc}", raw, None)
        return
    except IngestError as exc:  # unrecognised: named, and the other inputs go on
        run.report.errors.append(exc)
        return
    if fmt.duckdb and fmt.line_decoder is None and is_plain(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            number = 1
            for batch in run.signals.guard(read_batches(fd, split_lines)):
                run.lines(raw, number, batch)
                number += len(batch)
        finally:
            os.close(fd)
        return
    run.events(raw, run.signals.guard(fmt.read(path, run.report)))


def _stdin(run: _Run, forced: str | None) -> None:
    fmt = formats.get(forced) if forced is not None else formats.get("ndjson")
    if not fmt.lines:
        msg = (
            f"--input-format {fmt.name}: stdin is read line by line (a line format such as ndjson)"
        )
        raise UsageError(msg)
    if fmt.line_decoder is not None:
        run.decoders["<stdin>"] = LineDecoderSource(fmt.line_decoder(Path("<stdin>"), run.report))
    number = 1
    for batch in run.signals.guard(read_batches(sys.stdin.fileno(), split_lines)):
        run.batch("<stdin>", "<stdin>", number, batch)
        number += len(batch)
    run.flush_decoders()


def _follow_format(path: Path, forced: str | None) -> formats.InputFormat:
    """The line format of a file to follow; a compressed or non-line file is refused."""
    if path.suffix in (".gz", ".zst", ".bz2", ".xz"):
        msg = (
            f"--follow {path}: a compressed file cannot be followed (nothing appends to it); "
            "replay it without --follow"
        )
        raise UsageError(msg)
    fmt = formats.get(forced) if forced is not None else None
    try:
        head = read_head(path)
    except FileNotFoundError:
        return fmt or formats.get("ndjson")  # waited for; NDJSON unless said otherwise
    except OSError as exc:
        msg = f"--follow {path}: cannot read: {exc.strerror or exc}"
        raise UsageError(msg) from None
    if head.compressed:
        msg = f"--follow {path}: a gzip file cannot be followed; replay it without --follow"
        raise UsageError(msg)
    if fmt is None:
        try:
            fmt = formats.sniff(path, head)
        except IngestError as exc:
            raise UsageError(exc.one_line()) from None
    if not fmt.lines:
        msg = f"--follow {path}: {fmt.name} is not a line format; replay it without --follow"
        raise UsageError(msg)
    return fmt


@dataclass(slots=True)
class _Following:
    """The followed files, their checkpoint, and when it was last saved. Per file it also keeps
    where the reads still inside the window began (`anchors`: the read's start, the window's
    end after it), so the checkpoint says from where a restart rebuilds the window."""

    followers: list[Follower]
    checkpoint: Checkpoint | None
    watches: list[RuleWatch]
    clock: Callable[[], float] = time.monotonic
    saved_at: float = 0.0
    saved: dict[str, Position] = field(default_factory=dict)
    anchors: dict[str, deque[tuple[Position, int]]] = field(default_factory=dict)

    def window_end(self) -> int | None:
        ends = [w.executor.clock.end_ms for w in self.watches]
        known = [e for e in ends if e is not None]
        return max(known) if known else None

    def note(self, follower: Follower, batch: Batch) -> None:
        """A batch of the followed file was processed: the window's earliest read may move."""
        end = self.window_end()
        if self.checkpoint is None or batch.base is None or end is None:
            return
        queue = self.anchors.setdefault(_key(follower.path), deque())
        last = queue[-1][0] if queue else None
        pos = follower.position_at(batch.base, batch.first - 1)
        if pos is None:
            return
        if last is not None and (last.dev, last.ino, last.offset) == (pos.dev, pos.ino, pos.offset):
            queue[-1] = (last, end)
        else:
            queue.append((pos, end))
        # A read whose events all came before the window's start is not needed any more.
        start = end - max(w.executor.window.length_ms for w in self.watches)
        while len(queue) > 1 and queue[0][1] < start:
            queue.popleft()

    def positions(self) -> dict[str, Position]:
        out = dict(self.saved)
        for f in self.followers:
            pos = f.position
            if pos is not None:
                out[_key(f.path)] = pos
        return out

    def save(self, force: bool = False) -> None:
        if self.checkpoint is None:
            return
        now = self.clock()
        if not force and now - self.saved_at < CHECKPOINT_EVERY_S:
            return
        positions = self.positions()
        replay = {k: q[0][0] for k, q in self.anchors.items() if q}
        if positions != self.saved or force:
            self.checkpoint.save(positions, replay)
            self.saved = positions
        self.saved_at = now


def _key(path: Path) -> str:
    return os.path.abspath(path)


def _rebuild(run: _Run, path: Path, start: Position, stop: Position, notice: Notice) -> None:
    """The lines between the window's start and the checkpoint, read again so the window is
    what it was when the last run stopped; their alerts were printed by that run."""
    quiet = _Run(run.watches, IngestReport(), lambda _alerts: None, run.signals, run.decoders)
    before = max(w.executor.refresh_metrics().events for w in run.watches)
    lines = 0
    for batch in run.signals.guard(replay_lines(path, start, stop, split_lines, notice)):
        quiet.batch(batch.source, batch.name, batch.first, batch.lines)
        lines += len(batch.lines)
    run.replayed += max(w.executor.refresh_metrics().events for w in run.watches) - before
    notice(f"{path}: window rebuilt from {lines} line(s) read before the checkpoint")


def _follow(
    run: _Run, paths: list[str], forced: str | None, checkpoint: Checkpoint | None, err: Console
) -> None:
    start = checkpoint.load() if checkpoint is not None else {}
    replay = checkpoint.load("replay") if checkpoint is not None else {}

    def notice(text: str) -> None:
        err.print(f"watch: {text}", markup=False)

    followers: list[Follower] = []
    following = _Following(followers, checkpoint, run.watches, saved=start)
    for raw in paths:
        path = Path(raw)
        fmt = _follow_format(path, forced)
        if fmt.line_decoder is not None:
            run.decoders[raw] = LineDecoderSource(fmt.line_decoder(path, run.report))
        key = _key(path)
        resume = start.get(key)
        where = f"after line {resume.line} (checkpoint)" if resume is not None else "from its start"
        notice(f"following {path} as {fmt.name}, {where}")
        window = replay.get(key)
        if resume is not None and window is not None and window != resume:
            _rebuild(run, path, window, resume, notice)
            end = following.window_end()
            if end is not None:
                following.anchors[key] = deque([(window, end)])
        followers.append(Follower(path, split=split_lines, start=resume, notice=notice))
    by_name = {f.name: f for f in followers}
    signals = run.signals

    def wait() -> None:
        following.save()
        signals.sleep(FOLLOW_POLL_S)

    try:
        batches = follow_all(followers, wait=wait, running=lambda: not signals.stopped)
        for batch in signals.guard(batches):
            run.batch(batch.source, batch.name, batch.first, batch.lines)
            following.note(by_name[batch.source], batch)
            following.save()
    finally:
        following.save(force=True)
        for f in followers:
            f.close()


def _catalog(paths: list[str], follow: bool, forced: str | None) -> Catalog | None:
    """Replayed files give the analyser their real fields (as `detect` sees them); a live stream
    is analysed against the ECS fields alone."""
    if follow or not paths or "-" in paths:
        return None
    from reconwatch.ingest import Dataset

    return Dataset.from_files(paths, input_format=forced)


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
    watches: list[RuleWatch], report: IngestReport, alerts: int, stats: bool, replayed: int = 0
) -> None:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
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
            err.print(label + _path_line(watch.executor), markup=False)
    rules = f" of {len(watches)} rules" if len(watches) > 1 else ""
    again = f" (and {replayed} read again to rebuild the window)" if replayed else ""
    err.print(
        f"{alerts} alert(s){rules} from {events - replayed} event(s){again}; "
        f"{report.skipped} bad line(s) skipped, {late} late event(s) dropped",
        markup=False,
    )


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
                help=f"Built-in name, rule_id or TOML path; repeatable, every rule runs over the "
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
        output: Annotated[
            str | None,
            typer.Option(
                "--output", "-o", help="Write alerts to this file (- is stdout).", metavar="FILE"
            ),
        ] = None,
    ) -> None:
        """Evaluate rules continuously over a sliding event-time window; alerts print as they fire."""
        signals = _Signals()
        signals.install()
        signals.waiting = True  # Ctrl-C while starting (a replayed file is scanned): stop there
        try:
            paths = list(files or [])
            _check_inputs(paths, follow, checkpoint)
            if input_format is not None:
                formats.get(input_format)
            chosen = [resolve_rule(r) for r in (rule or [DEFAULT_RULE])]
            policy = RealertPolicy(_millis(rearm, "--rearm-after"), growth, growth_column)
            catalog = _catalog(paths, follow, input_format)
            lateness_ms = _millis(lateness, "--lateness")
            watches = [
                RuleWatch.create(
                    r,
                    catalog,
                    lateness_ms=lateness_ms,
                    policy=policy,
                    space=space,
                    files=_plain_files(paths),
                    evidence=not no_evidence,
                )
                for r in chosen
            ]
            signals.waiting = False
            report = IngestReport()
            sink = open_sink(output, fmt, rules={r.label: r for r in chosen}, inputs=paths)
            err = Console(stderr=True, highlight=False, soft_wrap=True)
            alerts = 0

            def emit(batch: list[dict[str, object]]) -> None:
                nonlocal alerts
                if batch:
                    sink.write(batch)
                    alerts += len(batch)

            run = _Run(watches, report, emit, signals)
            try:
                if follow:
                    store = Checkpoint(Path(checkpoint)) if checkpoint is not None else None
                    try:
                        _follow(run, paths, input_format, store, err)
                    except ValueError as exc:  # an unreadable checkpoint
                        raise UsageError(f"--checkpoint: {exc}") from None
                    run.flush_decoders()
                else:
                    for raw in paths or ["-"]:
                        if signals.stopped:
                            break
                        _replay(run, raw, input_format)
            except OSError as exc:
                raise IngestError(f"cannot read: {exc.strerror or exc}", exc.filename) from None
            finally:
                sink.close()
            _summary(watches, report, alerts, stats, run.replayed)
        except _Stop:
            raise typer.Exit(130) from None  # stopped before any event was read
        finally:
            signals.restore()  # an in-process caller (tests) keeps its own handlers
