"""Lines of event files as they grow: pipes and replays in one reused buffer, and files followed by name like `tail -F` (rotation, truncation, checkpoints)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import select
import stat
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reconwatch.ingest.formats import LineDecoder

READ_BYTES = 16 << 20
BATCH_LINES = 8192
# The first bytes of a followed file identify it beside (device, inode): an inode number can be
# reused for a new file, and a truncated file that grew again keeps its inode.
FINGERPRINT_BYTES = 1024
# Directory scans until two in a row agree (a writer rotating in a loop could keep them apart).
_SCANS = 8
CHECKPOINT_VERSION = 1
# What rotation appends to a file's name: NAME.1 (logrotate, the sensor), NAME-20250716
# (logrotate's dateext), NAME.2025-07-16. Compressed rotations are not read back.
_ROTATED_SUFFIX = re.compile(r"[.-](\d{1,4}|\d{8}(\d{2,6})?|\d{4}-\d{2}-\d{2}([-_T.]?[\d:]+)?)")

# Splits data[:end] (ending with a newline, or empty) into its lines without newlines. The
# stream executor passes its compiled splitter (lines scanned in place); the default copies.
Split = Callable[[bytearray, int], Sequence[bytes]]
Notice = Callable[[str], None]


def split_copy(data: bytearray, end: int) -> Sequence[bytes]:
    return bytes(data[:end]).split(b"\n")[:-1]


def _ignore(_text: str) -> None:
    return None


class LineBuffer:
    """One read buffer reused for every read (a fresh 16 MiB per read costs its page faults and
    a copy): complete lines are split where they are, a line still being written moves to the
    front. A batch is valid until the next read overwrites the buffer."""

    def __init__(self, split: Split = split_copy, size: int | None = None) -> None:
        self.split = split
        self.buf = bytearray(size or READ_BYTES)
        self.kept = 0  # bytes of an incomplete line at the front of buf

    def fill(self, fd: int, limit: int | None = None) -> int:
        """Bytes read into the buffer after the kept ones: a first read (which waits on a pipe),
        then whatever else can be read at once (a pipe gives at most 64 KiB per read, and a
        batch of a few dozen lines costs more per event). 0 at end of input."""
        if self.kept == len(self.buf):  # one line longer than the buffer
            grown = bytearray(2 * len(self.buf))
            grown[: self.kept] = self.buf
            self.buf = grown
        start = self.kept
        stop = len(self.buf) if limit is None else min(len(self.buf), start + limit)
        view = memoryview(self.buf)
        total = 0
        try:
            got = total = os.readv(fd, [view[start:stop]]) if stop > start else 0
            while got and start + total < stop and select.select([fd], [], [], 0)[0]:
                got = os.readv(fd, [view[start + total : stop]])
                total += got
        except BlockingIOError:
            pass  # a followed FIFO opened without blocking: nothing more now
        finally:
            view.release()
        self.kept += total
        return total

    def take(self) -> tuple[Sequence[bytes], int]:
        """The complete lines now in the buffer and their length in bytes (with newlines).
        `consume` must follow once they are used."""
        end = self.buf.rfind(b"\n", 0, self.kept) + 1
        return self.split(self.buf, end), end

    def consume(self, end: int) -> None:
        """Drop the first `end` bytes (the lines taken); the rest moves to the front."""
        rest = self.kept - end
        self.buf[:rest] = self.buf[end : self.kept]  # same length: moved in place
        self.kept = rest

    def rest(self) -> bytes:
        """The incomplete last line, removed from the buffer."""
        out = bytes(self.buf[: self.kept])
        self.kept = 0
        return out


def read_batches(
    fd: int, split: Split = split_copy, size: int | None = None, limit: int | None = None
) -> Iterator[Sequence[bytes]]:
    """Complete lines of a pipe or file until end of input, in micro-batches: each takes what
    is available (up to `size` bytes, at most BATCH_LINES lines), so a paced pipe is processed
    as soon as a line ends and a fast input in large batches. A last line without a newline
    comes last. `limit`: read at most that many bytes."""
    buffer = LineBuffer(split, size)
    left = limit
    while left is None or left > 0:
        got = buffer.fill(fd, left)
        if not got:
            break
        if left is not None:
            left -= got
        lines, end = buffer.take()
        for start in range(0, len(lines), BATCH_LINES):
            yield lines[start : start + BATCH_LINES]
        buffer.consume(end)
    if buffer.kept:
        yield [buffer.rest()]


@dataclass(frozen=True, slots=True)
class Position:
    """Where reading a followed file stopped: its identity (device, inode, and a fingerprint of
    its first bytes), the offset after the last complete line read, and that line's number."""

    dev: int
    ino: int
    offset: int
    line: int
    fingerprint: str  # sha256 hex of the first `fingerprint_len` bytes
    fingerprint_len: int

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> Position | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                int(data["dev"]),
                int(data["ino"]),
                int(data["offset"]),
                int(data["line"]),
                str(data["fingerprint"]),
                int(data["fingerprint_len"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _head(fd: int, length: int) -> bytes:
    """The first bytes of a regular file; b"" for a FIFO (no offsets to read at)."""
    if not length:
        return b""
    try:
        return os.pread(fd, length, 0)
    except OSError:  # ESPIPE: a FIFO
        return b""


class Checkpoint:
    """Followed files' positions in one small JSON file, replaced atomically (write, fsync,
    rename), so a restart resumes where the last save stopped. `files`: after the last line
    read; `replay`: where the lines still inside a stream's window begin (a restart reads them
    again to rebuild the window, alerting nothing for them)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, object]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            msg = f"checkpoint {self.path} is not JSON"
            raise ValueError(msg) from None
        if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
            msg = f"checkpoint {self.path} is not a reconwatch follow checkpoint (version 1)"
            raise ValueError(msg)
        return data

    def load(self, part: str = "files") -> dict[str, Position]:
        """Saved positions by followed path (`part` "replay": the window's starts); an
        unreadable or foreign file is a ValueError."""
        files = self._read().get(part)
        out: dict[str, Position] = {}
        for name, raw in files.items() if isinstance(files, dict) else []:
            pos = Position.from_json(raw)
            if pos is not None:
                out[str(name)] = pos
        return out

    def save(
        self, positions: dict[str, Position], replay: dict[str, Position] | None = None
    ) -> None:
        body = {
            "version": CHECKPOINT_VERSION,
            "files": {k: p.to_json() for k, p in sorted(positions.items())},
            "replay": {k: p.to_json() for k, p in sorted((replay or {}).items())},
        }
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(body, fh, indent=1)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)


@dataclass(slots=True)
class Batch:
    """Lines read from one file: `name` for reports (the followed file, or a rotated file of
    it read back), `first` the line number of lines[0], `source` the followed path."""

    name: str
    first: int
    lines: Sequence[bytes]
    source: str = ""
    # File offset where the read holding this batch began (a line start) in the followed file
    # as open now; None for lines of a rotated file read back.
    base: int | None = None


class LineDecoderSource:
    """A line format's decoder (ingest.formats.LineDecoder) fed the batches of one input."""

    def __init__(self, decoder: LineDecoder) -> None:
        self.decoder = decoder

    def feed(self, first: int, lines: Sequence[bytes]) -> list[tuple[int, dict[str, object]]]:
        out: list[tuple[int, dict[str, object]]] = []
        for offset, line in enumerate(lines):
            out.extend(self.decoder.feed(bytes(line), first + offset))
        return out

    def flush(self) -> list[tuple[int, dict[str, object]]]:
        return self.decoder.flush()


@dataclass(slots=True)
class _Open:
    """The file being read: its descriptor, identity, and what has been read of it."""

    fd: int
    dev: int
    ino: int
    offset: int  # file offset of the next byte read (the buffer holds the bytes before it)
    line: int  # lines yielded so far
    head: bytes  # its first bytes as read (up to FINGERPRINT_BYTES): the fingerprint


class Follower:
    """One file followed by name, like `tail -F`, without sleeping: `poll()` yields what can be
    read now and returns, the caller decides when to poll again (tests drive it step by step).

    - A file that does not exist yet is waited for (one notice).
    - Rotation by rename (`mv` + a new file, the sensor's size rotation): the old file is read
      to its end through the open descriptor, then the files rotated after it (several
      rotations between two polls), then the new one from its start; rotations racing that
      (between the directory scan and an open) are caught by checking identities and scanning
      again.
    - Truncation in place (copytruncate, `: > file`, a shorter truncate), also when the file
      grew past the offset again (its first KiB changed): the lines written before the
      truncation are read from the rotated copy when one sits beside the file (same first
      bytes, longer than what was read); the file is then read after the whole lines it still
      shares with what was read (a shorter truncate), else from its start.
    - A FIFO is read as a stream (no offsets, no rotation).
    - `start`: a saved Position; reading resumes after its last line, in the same file, or in
      its rotated successor(s) beside it when the file was rotated while nobody followed it.
    """

    def __init__(
        self,
        path: Path,
        *,
        split: Split = split_copy,
        start: Position | None = None,
        notice: Notice = _ignore,
        read_bytes: int | None = None,
    ) -> None:
        self.path = path
        self.name = str(path)
        self.notice = notice
        self.buffer = LineBuffer(split, read_bytes)
        self.file: _Open | None = None
        self._start = start
        self._waiting = False
        # The last rotated file read when the current file could not be opened yet (renamed
        # away, not created again): the next poll reads what was rotated after it first.
        self._after: tuple[int, int] | None = None
        # Where a batch ends, for `position` between batches of one read.
        self._base = 0  # file offset of buffer byte 0
        self._taken = 0  # lines of the current read yielded
        self._lines: Sequence[bytes] = ()
        self._end = 0  # buffer bytes of the current read's complete lines
        self._committed = 0  # file offset after the last read's lines

    # -- reading -------------------------------------------------------------------------------

    def poll(self) -> Iterator[Batch]:
        """Every complete line that can be read now, in batches; returns when caught up."""
        if self.file is None:
            yield from self._resume()
            if self.file is None and self._after is not None:
                yield from self._catch_up(self._after)
            elif self.file is None:
                self._open_current(0, 0)
            if self.file is None:
                return
        # Looked at before reading too: a file truncated and grown past the offset since the
        # last poll must not be read from the middle of its new content.
        change = self._change()
        while self.file is not None:
            if change is not None:
                yield from change
                if self.file is None:
                    return
            yield from self._read_available()
            change = self._change()
            if change is None:
                return

    def close(self) -> None:
        if self.file is not None:
            os.close(self.file.fd)
            self.file = None

    @property
    def position(self) -> Position | None:
        """After the last line yielded (a batch counts once it was handed out)."""
        f = self.file
        if f is None:
            return self._start
        length = min(len(f.head), FINGERPRINT_BYTES)
        return Position(f.dev, f.ino, self._done(), f.line, _digest(f.head[:length]), length)

    def position_at(self, offset: int, line: int) -> Position | None:
        """A position in the file open now (a read's start, for a window's replay)."""
        f = self.file
        if f is None:
            return None
        length = min(len(f.head), FINGERPRINT_BYTES)
        return Position(f.dev, f.ino, offset, line, _digest(f.head[:length]), length)

    def _done(self) -> int:
        """File offset after the last line yielded."""
        if not self._lines:
            return self._committed
        return self._byte_after(self._taken)

    def _read_available(self) -> Iterator[Batch]:
        f = self.file
        assert f is not None
        while True:
            self._base = f.offset - self.buffer.kept
            got = self.buffer.fill(f.fd)
            if not got:
                return
            f.offset += got
            self._learn_head(f)
            lines, end = self.buffer.take()
            self._lines, self._end = lines, end
            for start in range(0, len(lines), BATCH_LINES):
                batch = lines[start : start + BATCH_LINES]
                first = f.line + 1
                f.line += len(batch)
                self._taken = start + len(batch)
                yield Batch(self.name, first, batch, self.name, self._base)
            self.buffer.consume(end)
            self._lines = ()
            self._committed = self._base + end

    def _byte_after(self, taken: int) -> int:
        """File offset after the first `taken` lines of the current read."""
        if taken >= len(self._lines):
            return self._base + self._end
        pos = 0
        buf = self.buffer.buf
        for _ in range(taken):  # only for a read cut into several batches
            pos = buf.index(b"\n", pos) + 1
        return self._base + pos

    def _learn_head(self, f: _Open) -> None:
        if len(f.head) < FINGERPRINT_BYTES:
            f.head = _head(f.fd, FINGERPRINT_BYTES)

    def _rest_line(self) -> Iterator[Batch]:
        """A last line without a newline in a file nobody writes any more: a line of its own."""
        f = self.file
        if f is not None and self.buffer.kept:
            rest = self.buffer.rest()
            f.line += 1
            self._committed = f.offset
            yield Batch(self.name, f.line, [rest], self.name)

    # -- what happened to the file -------------------------------------------------------------

    def _change(self) -> Iterator[Batch] | None:
        """At the end of the open file: None if nothing changed, else the batches of handling
        a rotation or truncation (after which reading goes on)."""
        f = self.file
        assert f is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # renamed away and not created again yet: keep reading the old one
        if (st.st_dev, st.st_ino) != (f.dev, f.ino):
            return self._rotated()
        own = os.fstat(f.fd)
        if not stat.S_ISREG(own.st_mode):
            return None  # a FIFO has no size or content to compare
        known = min(len(f.head), FINGERPRINT_BYTES)
        now = _head(f.fd, known)
        if own.st_size < f.offset or now != f.head[:known]:
            return self._truncated(own.st_size, now)
        return None

    def _rotated(self) -> Iterator[Batch]:
        f = self.file
        assert f is not None
        yield from self._read_available()  # written between the last read and the rename
        yield from self._rest_line()
        self.notice(f"{self.name}: rotated; read the old file to its end, now the new one")
        old = (f.dev, f.ino)
        self.close()
        yield from self._catch_up(old)

    def _catch_up(self, last: tuple[int, int]) -> Iterator[Batch]:
        """After the rotated file `last` was read: the files rotated after it (several
        rotations since the last poll), then the current file is opened. The writer may rotate
        again meanwhile, between the directory scan and the open: a file that was current at
        the scan is then a rotated one the open did not get, so the scan is repeated after the
        open and reading goes on from `last` until nothing lies between it and the open file."""
        self._after = None
        while True:
            newer = self._newer_than(last)
            if newer is None:
                self._open_current(0, 0)  # `last` is gone: which ones came after it is unknown
                return
            moved = False
            for path, st in newer:
                if not (yield from self._read_rotated(path, (st.st_dev, st.st_ino), 0, 0)):
                    moved = True  # renamed again since the scan: scan again from `last`
                    break
                last = (st.st_dev, st.st_ino)
            if not moved and self._opened_after(last):
                return

    def _opened_after(self, last: tuple[int, int]) -> bool:
        """Open the current file after the rotated file `last` was read; False (and closed
        again) when a rotation between the scan and the open left a file between them."""
        if not self._open_current(0, 0):
            self._after = last  # renamed away, not created again yet: the next poll goes on
            return True
        f = self.file
        assert f is not None
        missed = self._newer_than(last) or []
        if all((st.st_dev, st.st_ino) == (f.dev, f.ino) for _path, st in missed):
            return True  # nothing between: the open file (maybe rotated already) is next
        self.close()  # read the missed ones first, then this one
        return False

    def _newer_than(self, ident: tuple[int, int]) -> list[tuple[Path, os.stat_result]] | None:
        """The rotated files after the one with identity `ident`, oldest first; None when that
        one is gone (deleted past the rotation count, or never rotated beside this file)."""
        siblings = self._stable_siblings()
        index = next(
            (i for i, (_p, st) in enumerate(siblings) if (st.st_dev, st.st_ino) == ident), None
        )
        return None if index is None else siblings[index + 1 :]

    def _truncated(self, size: int, now: bytes) -> Iterator[Batch]:
        f = self.file
        assert f is not None
        done = self._done()
        copy = self._rotated_copy(f, done)
        self.buffer.rest()  # an incomplete line of the old content
        if copy is not None:
            yield from self._read_copy(copy, f, done)
        kept = _kept_lines(f.head, now, size)
        if kept:
            # A shorter truncate: the lines still there are the ones read; go on after them.
            self.notice(f"{self.name}: truncated to {kept} bytes; reading on from there")
            f.offset = kept
        else:
            self.notice(f"{self.name}: truncated; reading it again from the start")
            f.offset = 0
            f.line = 0
            f.head = b""
        os.lseek(f.fd, f.offset, os.SEEK_SET)
        self._committed = f.offset
        self._learn_head(f)

    # -- rotated siblings ------------------------------------------------------------------------

    def _stable_siblings(self) -> list[tuple[Path, os.stat_result]]:
        """The siblings as two scans in a row agree on them: a scan during a rotation's renames
        (NAME.2 -> NAME.3, NAME.1 -> NAME.2, ...) can see a file under two names or under none."""
        seen = self._siblings()
        for _ in range(_SCANS):
            again = self._siblings()
            if _names(again) == _names(seen):
                return again
            seen = again
        return seen

    def _siblings(self) -> list[tuple[Path, os.stat_result]]:
        """Plain regular files beside the followed one named like its rotations (NAME.1,
        NAME-20250716, ...), oldest first."""
        found = []
        idents: set[tuple[int, int]] = set()
        name = self.path.name
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.path.parent):
                if not entry.name.startswith(name) or not _ROTATED_SUFFIX.fullmatch(
                    entry.name[len(name) :]
                ):
                    continue
                with contextlib.suppress(OSError):
                    st = entry.stat()
                    if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in idents:
                        idents.add((st.st_dev, st.st_ino))  # seen under two names mid-rename
                        found.append((Path(entry.path), st))
        found.sort(key=lambda item: (item[1].st_mtime_ns, -_rotation_number(item[0])))
        return found

    def _rotated_copy(self, f: _Open, done: int) -> Path | None:
        """A sibling holding more of this file's content than was read (copytruncate's copy)."""
        known = min(len(f.head), FINGERPRINT_BYTES)
        if not known:
            return None
        for path, st in reversed(self._siblings()):
            if st.st_size > done and _starts_with(path, f.head[:known]):
                return path
        return None

    def _read_copy(self, path: Path, f: _Open, done: int) -> Iterator[Batch]:
        """The rest of a rotated copy after what was read of the original."""
        self.notice(f"{self.name}: truncated; reading the rest of its copy {path} first")
        yield from self._read_rotated(path, None, done, f.line)

    def _read_rotated(
        self, path: Path, ident: tuple[int, int] | None, offset: int, line: int
    ) -> Generator[Batch, None, bool]:
        """Another file (a rotated one) from `offset` to its end, as its own batches. With
        `ident`: only if `path` still names that file, else False (a rotation renamed it after
        the scan; the caller scans again)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            if ident is not None and isinstance(exc, FileNotFoundError):
                return False
            self.notice(f"{path}: cannot read the rotated file: {exc.strerror or exc}")
            return True  # unreadable, not moved: scanning again would find it again
        try:
            if ident is not None:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != ident:
                    return False
            os.lseek(fd, offset, os.SEEK_SET)
            number = line
            for lines in read_batches(fd, self.buffer.split, len(self.buffer.buf)):
                yield Batch(str(path), number + 1, lines, self.name)
                number += len(lines)
            return True
        finally:
            os.close(fd)

    # -- opening ---------------------------------------------------------------------------------

    def _open_current(self, offset: int, line: int) -> bool:
        try:
            # Non-blocking: a followed FIFO must not stall the other files (regular files
            # ignore the flag).
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            if not self._waiting:
                self.notice(f"{self.name}: no such file yet; waiting for it")
                self._waiting = True
            return False
        if self._waiting:
            self.notice(f"{self.name}: appeared; reading it")
            self._waiting = False
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            os.lseek(fd, offset, os.SEEK_SET)
        self.buffer.rest()
        self.file = _Open(fd, st.st_dev, st.st_ino, offset, line, _head(fd, FINGERPRINT_BYTES))
        self._committed = offset
        return True

    def _resume(self) -> Iterator[Batch]:
        """Open at a saved position: the same file after its last line, or the rest of it
        where it was rotated to and its successors, then the current file from its start."""
        pos, self._start = self._start, None
        if pos is None:
            return
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == (pos.dev, pos.ino):
            if st.st_size >= pos.offset and self._matches(self.path, pos):
                self._open_current(pos.offset, pos.line)
                return
            self.notice(f"{self.name}: changed since the checkpoint; reading it from the start")
            return
        siblings = self._stable_siblings()
        for path, sst in siblings:
            if (sst.st_dev, sst.st_ino) == (pos.dev, pos.ino) and self._matches(path, pos):
                self.notice(f"{self.name}: rotated since the checkpoint; reading {path} on first")
                yield from self._read_rotated(path, None, pos.offset, pos.line)
                yield from self._catch_up((pos.dev, pos.ino))
                return
        self.notice(
            f"{self.name}: the checkpointed file is gone (rotated away or deleted); "
            "reading the current file from the start"
        )

    @staticmethod
    def _matches(path: Path, pos: Position) -> bool:
        try:
            with path.open("rb") as fh:
                return _digest(fh.read(pos.fingerprint_len)) == pos.fingerprint
        except OSError:
            return False


def _kept_lines(old: bytes, now: bytes, size: int) -> int:
    """Where reading goes on in a file cut shorter: after the whole lines its first bytes still
    share with what was read (0: nothing shared, read it again from the start). Past the first
    FINGERPRINT_BYTES the content is not known, so a file still sharing all of them goes on
    at its size."""
    if len(old) >= FINGERPRINT_BYTES and now == old:
        return size
    same = 0
    for a, b in zip(old, now, strict=False):
        if a != b:
            break
        same += 1
    return old.rfind(b"\n", 0, same) + 1


def _starts_with(path: Path, head: bytes) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(head)) == head
    except OSError:
        return False


def _names(siblings: list[tuple[Path, os.stat_result]]) -> list[tuple[str, int, int]]:
    return [(p.name, st.st_dev, st.st_ino) for p, st in siblings]


def _rotation_number(path: Path) -> int:
    """NAME.3 -> 3: among files of the same modification time the larger number is older."""
    tail = path.name.rsplit(".", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def replay_lines(
    path: Path, start: Position, stop: Position, split: Split = split_copy, notice: Notice = _ignore
) -> Iterator[Batch]:
    """The lines from `start` to `stop` (two checkpointed positions of a followed file, `stop`
    the later), wherever rotation has moved them since: the file holding `start` from its
    offset, the files rotated after it, and the one holding `stop` up to its offset."""
    follower = Follower(path, split=split, notice=notice)
    chain = [p for p, _st in follower._stable_siblings()]
    if path.exists():
        chain.append(path)
    ids = []
    for candidate in chain:
        try:
            st = candidate.stat()
        except OSError:
            st = None
        ids.append((st.st_dev, st.st_ino) if st is not None else None)
    first = _index_of(chain, ids, start)
    last = _index_of(chain, ids, stop)
    if first is None or last is None or last < first:
        notice(f"{path}: the lines of the window before the checkpoint are gone; it starts empty")
        return
    for k in range(first, last + 1):
        offset = start.offset if k == first else 0
        line = start.line if k == first else 0
        end = stop.offset if k == last else None
        yield from _read_range(chain[k], str(path), offset, line, end, split)


def _index_of(chain: list[Path], ids: list[tuple[int, int] | None], pos: Position) -> int | None:
    for k, (candidate, ident) in enumerate(zip(chain, ids, strict=True)):
        if ident == (pos.dev, pos.ino) and Follower._matches(candidate, pos):
            return k
    return None


def _read_range(
    path: Path, source: str, offset: int, line: int, end: int | None, split: Split
) -> Iterator[Batch]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.lseek(fd, offset, os.SEEK_SET)
        limit = None if end is None else max(0, end - offset)
        number = line
        for lines in read_batches(fd, split, limit=limit):
            yield Batch(str(path), number + 1, lines, source)
            number += len(lines)
    finally:
        os.close(fd)


def follow_all(
    followers: Sequence[Follower], *, wait: Callable[[], None], running: Callable[[], bool]
) -> Iterator[Batch]:
    """Batches from every follower in turn; `wait()` when none had anything, until `running()`
    says stop. `wait` is where the real clock (a sleep) enters; tests pass their own."""
    while running():
        idle = True
        for follower in followers:
            for batch in follower.poll():
                idle = False
                yield batch
                if not running():
                    return
        if idle:
            wait()
