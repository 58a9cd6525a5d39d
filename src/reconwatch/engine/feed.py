"""Events into rule watches: replayed files, pipes, and files followed by name with checkpoints that resume reading and rebuild the window."""

from __future__ import annotations

import os
import stat
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from reconwatch.backends.stream.lines import split_lines
from reconwatch.engine.collector import settle
from reconwatch.engine.native.watch import NativeWatch
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
from reconwatch.plan.documents import flatten

FOLLOW_POLL_S = 0.2
# A running follow saves its checkpoint at most this often (and always when it stops).
CHECKPOINT_EVERY_S = 1.0
Emit = Callable[[list[dict[str, object]]], None]
T = TypeVar("T")


class Stopper(Protocol):
    """When to stop: `guard` hands out items until told to stop, `sleep` waits between polls."""

    @property
    def stopped(self) -> bool: ...

    def guard(self, items: Iterable[T]) -> Iterator[T]: ...

    def sleep(self, seconds: float) -> None: ...


class Unstopped:
    """A Stopper that never stops by itself (the caller stops iterating); waits with sleep."""

    stopped = False

    def guard(self, items: Iterable[T]) -> Iterator[T]:
        return iter(items)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(slots=True)
class Feed:
    """Every rule's watch over the same input, the report of bad input, the alerts out, and
    what says when to stop (SIGINT/SIGTERM in the CLI)."""

    watches: list[RuleWatch | NativeWatch]
    report: IngestReport
    emit: Emit
    stopper: Stopper
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
        settle()

    def events(self, name: str, events: Iterable[tuple[int, object]]) -> None:
        for line, value in events:
            if not isinstance(value, dict):
                self.report.add("not a JSON object", name, line)
                continue
            flat = flatten(value)
            for watch in self.watches:
                self.emit(watch.push(flat))
        settle()

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


def replay(run: Feed, raw: str, forced: str | None) -> None:
    """A file (or stdin) read to its end: plain NDJSON line by line in one reused buffer,
    other formats through their registered reader."""
    if raw == "-":
        pipe_format(forced)  # a format a pipe cannot carry is refused before stdin is touched
        read_pipe(run, sys.stdin.fileno(), forced)
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
            for batch in run.stopper.guard(read_batches(fd, split_lines)):
                run.lines(raw, number, batch)
                number += len(batch)
        finally:
            os.close(fd)
        return
    run.events(raw, run.stopper.guard(fmt.read(path, run.report)))


def pipe_format(forced: str | None) -> formats.InputFormat:
    """The line format a pipe is read as (NDJSON by default); a UsageError for another."""
    fmt = formats.get(forced) if forced is not None else formats.get("ndjson")
    if not fmt.lines:
        msg = (
            f"--input-format {fmt.name}: stdin is read line by line (a line format such as ndjson)"
        )
        raise UsageError(msg)
    return fmt


def read_pipe(run: Feed, fd: int, forced: str | None, name: str = "<stdin>") -> None:
    """A pipe (stdin) read to its end as a line format (NDJSON by default)."""
    fmt = pipe_format(forced)
    if fmt.line_decoder is not None:
        run.decoders[name] = LineDecoderSource(fmt.line_decoder(Path(name), run.report))
    number = 1
    for batch in run.stopper.guard(read_batches(fd, split_lines)):
        run.batch(name, name, number, batch)
        number += len(batch)
    run.flush_decoders()


def follow_format(path: Path, forced: str | None) -> formats.InputFormat:
    """The line format of a file to follow; a compressed or non-line file is refused."""
    if path.suffix in (".gz", ".zst", ".bz2", ".xz"):
        msg = (
            f"--follow {path}: a compressed file cannot be followed (nothing appends to it); "
            "replay it without --follow"
        )
        raise UsageError(msg)
    fmt = formats.get(forced) if forced is not None else None
    try:
        fifo = stat.S_ISFIFO(path.stat().st_mode)
    except OSError:
        fifo = False
    if fifo:  # its head cannot be read ahead without taking the lines from the watch
        return _line_format(path, fmt or formats.get("ndjson"))
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
    return _line_format(path, fmt)


def _line_format(path: Path, fmt: formats.InputFormat) -> formats.InputFormat:
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
    watches: list[RuleWatch | NativeWatch]
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


def _rebuild(run: Feed, path: Path, start: Position, stop: Position, notice: Notice) -> None:
    """The lines between the window's start and the checkpoint, read again so the window is
    what it was when the last run stopped; their alerts were printed by that run."""
    quiet = Feed(run.watches, IngestReport(), lambda _alerts: None, run.stopper, run.decoders)
    before = max(w.executor.refresh_metrics().events for w in run.watches)
    lines = 0
    for batch in run.stopper.guard(replay_lines(path, start, stop, split_lines, notice)):
        quiet.batch(batch.source, batch.name, batch.first, batch.lines)
        lines += len(batch.lines)
    run.replayed += max(w.executor.refresh_metrics().events for w in run.watches) - before
    notice(f"{path}: window rebuilt from {lines} line(s) read before the checkpoint")


def follow(
    run: Feed,
    paths: list[str],
    forced: str | None,
    checkpoint: Checkpoint | None,
    notice: Notice,
    poll_s: float = FOLLOW_POLL_S,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Follow the files by name until the stopper says stop; with a checkpoint, resume after
    its positions (rebuilding the window first) and save it as reading goes on, at most
    every CHECKPOINT_EVERY_S of `clock` (the real clock enters here; tests pass theirs)."""
    start = checkpoint.load() if checkpoint is not None else {}
    replay = checkpoint.load("replay") if checkpoint is not None else {}

    followers: list[Follower] = []
    following = _Following(followers, checkpoint, run.watches, clock, saved=start)
    for raw in paths:
        path = Path(raw)
        fmt = follow_format(path, forced)
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
    stopper = run.stopper

    def wait() -> None:
        following.save()
        stopper.sleep(poll_s)

    try:
        batches = follow_all(followers, wait=wait, running=lambda: not stopper.stopped)
        # Not guarded: follow_all stops between batches when told to, and only its wait
        # blocks (stopper.sleep), so a signal never lands inside a follower's bookkeeping.
        for batch in batches:
            run.batch(batch.source, batch.name, batch.first, batch.lines)
            following.note(by_name[batch.source], batch)
            following.save()
    finally:
        following.save(force=True)
        for f in followers:
            f.close()
