"""Following a file by name, driven step by step (no sleeps): rotation by rename, copytruncate,
a shorter truncate, the sensor's own size rotation, files that appear later, and checkpoints
that resume exactly."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.ingest import follow as follow_module
from reconwatch.ingest.follow import Checkpoint, Follower, Position, follow_all
from reconwatch.sensor.outputs import FileSink

Seen = list[tuple[str, int, bytes]]


def drain(follower: Follower) -> Seen:
    return [
        (b.name, b.first + i, bytes(line))
        for b in follower.poll()
        for i, line in enumerate(b.lines)
    ]


def texts(seen: Seen) -> list[bytes]:
    return [line for _name, _number, line in seen]


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


@pytest.fixture
def notices() -> list[str]:
    return []


def make(path: Path, notices: list[str], **kw: object) -> Follower:
    return Follower(path, notice=notices.append, **kw)  # type: ignore[arg-type]


def test_a_missing_file_is_waited_for_then_read(tmp_path: Path, notices: list[str]) -> None:
    path = tmp_path / "events.ndjson"
    f = make(path, notices)
    assert drain(f) == [] and drain(f) == []
    assert notices == [f"{path}: no such file yet; waiting for it"]  # said once
    path.write_bytes(b"a\nb\n")
    assert drain(f) == [(str(path), 1, b"a"), (str(path), 2, b"b")]
    assert notices[-1] == f"{path}: appeared; reading it"


def test_a_line_written_in_pieces_is_read_once_whole(tmp_path: Path, notices: list[str]) -> None:
    path = tmp_path / "e"
    path.write_bytes(b"one\ntw")
    f = make(path, notices)
    assert texts(drain(f)) == [b"one"]
    append(path, b"o\nthr")
    assert texts(drain(f)) == [b"two"]
    append(path, b"ee\n")
    assert drain(f) == [(str(path), 3, b"three")]
    assert drain(f) == []


def test_rename_rotation_reads_the_rest_of_the_old_file_first(
    tmp_path: Path, notices: list[str]
) -> None:
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"a\nb\n")
    f = make(path, notices)
    assert texts(drain(f)) == [b"a", b"b"]
    append(path, b"c\nunfinished")  # written before the rotation, not read yet
    path.rename(tmp_path / "events.ndjson.1")
    path.write_bytes(b"d\n")
    seen = drain(f)
    assert seen == [
        (str(path), 3, b"c"),
        (str(path), 4, b"unfinished"),  # nobody will finish it: a line of its own
        (str(path), 1, b"d"),
    ]
    assert any("rotated" in n for n in notices)
    append(path, b"e\n")
    assert texts(drain(f)) == [b"e"]


def test_rename_without_a_new_file_yet_keeps_reading_the_old_one(
    tmp_path: Path, notices: list[str]
) -> None:
    path = tmp_path / "e"
    path.write_bytes(b"a\n")
    f = make(path, notices)
    drain(f)
    old = tmp_path / "e.1"
    path.rename(old)
    append(old, b"late\n")  # the writer still has the old file open
    assert texts(drain(f)) == [b"late"]
    path.write_bytes(b"new\n")
    assert texts(drain(f)) == [b"new"]


def test_copytruncate_reads_the_lines_from_the_copy_then_the_file_again(
    tmp_path: Path, notices: list[str]
) -> None:
    path = tmp_path / "e.log"
    path.write_bytes(b'{"n": 1}\n{"n": 2}\n')
    f = make(path, notices)
    assert len(drain(f)) == 2
    append(path, b'{"n": 3}\n')  # not read before logrotate copies and truncates
    shutil.copyfile(path, tmp_path / "e.log.1")
    with path.open("r+b") as fh:
        fh.truncate(0)
    append(path, b'{"n": 4}\n')
    seen = drain(f)
    assert seen == [(str(tmp_path / "e.log.1"), 3, b'{"n": 3}'), (str(path), 1, b'{"n": 4}')]
    assert any("copy" in n for n in notices)


def test_truncated_and_grown_past_the_offset_is_seen_by_its_first_bytes(
    tmp_path: Path, notices: list[str]
) -> None:
    path = tmp_path / "e"
    path.write_bytes(b"old-1\nold-2\n")
    f = make(path, notices)
    drain(f)
    with path.open("r+b") as fh:
        fh.truncate(0)
    append(path, b"new-1\nnew-2\nnew-3\n")  # longer than what was read: size alone misses it
    assert texts(drain(f)) == [b"new-1", b"new-2", b"new-3"]
    assert any("truncated" in n for n in notices)


def test_a_shorter_truncate_keeps_what_was_read_and_reads_on(
    tmp_path: Path, notices: list[str]
) -> None:
    path = tmp_path / "e"
    path.write_bytes(b"a\nb\nc\nd\n")
    f = make(path, notices)
    drain(f)
    with path.open("r+b") as fh:
        fh.truncate(4)  # "a\nb\n" stays
    append(path, b"e\n")
    assert texts(drain(f)) == [b"e"]
    assert any("truncated to 4 bytes" in n for n in notices)


@settings(max_examples=25, deadline=None)
@given(polls=st.lists(st.integers(min_value=0, max_value=12), min_size=1, max_size=40))
def test_the_sensors_size_rotation_loses_and_repeats_nothing(
    tmp_path_factory: pytest.TempPathFactory, polls: list[int]
) -> None:
    """FileSink (sensor/outputs.py) renames FILE to FILE.1 (older ones shift) at max_bytes and
    starts a new FILE; the follower polls after a random number of events each time."""
    path = tmp_path_factory.mktemp("sensor") / "events.ndjson"
    sink = FileSink(path, max_bytes=400, keep=50)
    f = Follower(path)
    got: list[bytes] = []
    n = 0
    for step in polls:
        for _ in range(step):
            sink.write({"n": n, "pad": "x" * (n % 37)})
            n += 1
        sink.flush()
        got += texts(drain(f))
    sink.close()
    got += texts(drain(f))
    assert [json.loads(x)["n"] for x in got] == list(range(n))
    assert sink.rotations > 0 or sink.size <= 400


def test_position_is_after_the_last_batch_handed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follow_module, "BATCH_LINES", 2)
    path = tmp_path / "e"
    path.write_bytes(b"aa\nbbb\ncccc\nd\n")
    f = Follower(path)
    batches = f.poll()
    first = next(batches)
    assert list(first.lines) == [b"aa", b"bbb"]
    pos = f.position
    assert pos is not None and (pos.offset, pos.line) == (7, 2)
    next(batches)
    pos = f.position
    assert pos is not None and (pos.offset, pos.line) == (14, 4)


def _stop_after(path: Path, lines: int) -> Position:
    f = Follower(path)
    seen = 0
    for batch in f.poll():
        seen += len(batch.lines)
        if seen >= lines:
            break
    pos = f.position
    f.close()
    assert pos is not None
    return pos


def test_checkpoint_resumes_exactly_in_the_same_file(tmp_path: Path, notices: list[str]) -> None:
    path = tmp_path / "e"
    path.write_bytes(b"1\n2\n3\n")
    checkpoint = Checkpoint(tmp_path / "watch.checkpoint")
    checkpoint.save({str(path): _stop_after(path, 3)})
    append(path, b"4\n5\n")
    f = make(path, notices, start=checkpoint.load()[str(path)])
    assert drain(f) == [(str(path), 4, b"4"), (str(path), 5, b"5")]


def test_checkpoint_after_rotations_while_stopped(tmp_path: Path, notices: list[str]) -> None:
    """Stopped, then the file got more lines and was rotated twice: the rest of the
    checkpointed file (now FILE.2), all of FILE.1, then FILE."""
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"1\n2\n")
    pos = _stop_after(path, 2)
    append(path, b"3\n")
    path.rename(tmp_path / "events.ndjson.1")
    path.write_bytes(b"4\n")
    (tmp_path / "events.ndjson.1").rename(tmp_path / "events.ndjson.2")
    path.rename(tmp_path / "events.ndjson.1")
    path.write_bytes(b"5\n")
    (tmp_path / "events.ndjson.bak").write_bytes(b"not a rotation\n")
    # The same modification time for all (a fast writer): the rotation number orders them.
    for name in ("events.ndjson.2", "events.ndjson.1"):
        os.utime(tmp_path / name, ns=(10**18, 10**18))
    f = make(path, notices, start=pos)
    assert texts(drain(f)) == [b"3", b"4", b"5"]
    assert any("rotated since the checkpoint" in n for n in notices)


def test_checkpoint_of_a_rewritten_file_reads_it_from_the_start(
    tmp_path: Path, notices: list[str]
) -> None:
    path = tmp_path / "e"
    path.write_bytes(b"first version\n")
    pos = _stop_after(path, 1)
    with path.open("r+b") as fh:  # same inode, other content, longer than the offset
        fh.truncate(0)
        fh.write(b"second version, longer\n")
    f = make(path, notices, start=pos)
    assert texts(drain(f)) == [b"second version, longer"]
    assert any("changed since the checkpoint" in n for n in notices)


def test_checkpoint_file_round_trip_and_foreign_files(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "c.json")
    assert cp.load() == {}
    pos = Position(1, 2, 3, 4, "ab", 2)
    cp.save({"x": pos})
    assert cp.load() == {"x": pos}
    (tmp_path / "c.json").write_text('{"something": "else"}')
    with pytest.raises(ValueError, match="not a reconwatch follow checkpoint"):
        cp.load()
    (tmp_path / "c.json").write_text("{")
    with pytest.raises(ValueError, match="not JSON"):
        cp.load()


def test_follow_all_interleaves_files_and_waits_only_when_idle(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"a1\n")
    steps = [lambda: b.write_bytes(b"b1\n"), lambda: append(a, b"a2\n")]
    waits: list[int] = []

    def wait() -> None:
        waits.append(1)
        if steps:
            steps.pop(0)()

    seen = []
    for batch in follow_all([Follower(a), Follower(b)], wait=wait, running=lambda: len(waits) < 4):
        seen += [(Path(batch.name).name, bytes(x)) for x in batch.lines]
    assert seen == [("a", b"a1"), ("b", b"b1"), ("a", b"a2")]
    assert len(waits) == 4


def test_replay_lines_between_two_positions_across_a_rotation(tmp_path: Path) -> None:
    """What a restart reads again to rebuild its window: from a read's start in a file rotated
    since (found by inode and first bytes) to the checkpoint in the current file, no further."""
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"1\n2\n")
    f = Follower(path)
    batches = list(f.poll())
    assert batches[0].base == 0
    window = f.position_at(0, 0)
    assert window is not None
    path.rename(tmp_path / "events.ndjson.1")
    path.write_bytes(b"3\n4\n")
    assert texts(drain(f)) == [b"3", b"4"]
    stop = f.position
    assert stop is not None
    append(path, b"5\n")  # after the checkpoint: not replayed
    got = [
        (Path(b.name).name, b.first + i, bytes(x))
        for b in follow_module.replay_lines(path, window, stop)
        for i, x in enumerate(b.lines)
    ]
    assert got == [
        ("events.ndjson.1", 1, b"1"),
        ("events.ndjson.1", 2, b"2"),
        ("events.ndjson", 1, b"3"),
        ("events.ndjson", 2, b"4"),
    ]
    (tmp_path / "events.ndjson.1").unlink()
    gone: list[str] = []
    assert list(follow_module.replay_lines(path, window, stop, notice=gone.append)) == []
    assert gone and "starts empty" in gone[0]


class _RotatingOs:
    """The follower's `os`, with the writer rotating in between its calls: at the chosen
    call numbers (scandir, open, stat, and between two entries of a directory scan) the sink
    writes enough to rotate once or more, as a fast writer on another core does."""

    def __init__(self, at: dict[int, int], write: object) -> None:
        self.at = at
        self.write = write
        self.calls = 0

    def _tick(self) -> None:
        self.calls += 1
        for _ in range(self.at.get(self.calls, 0)):
            self.write()  # type: ignore[operator]

    def __getattr__(self, name: str) -> object:
        return getattr(os, name)

    def open(self, *args: object, **kw: object) -> int:
        self._tick()
        return os.open(*args, **kw)  # type: ignore[arg-type]

    def stat(self, *args: object, **kw: object) -> os.stat_result:
        self._tick()
        return os.stat(*args, **kw)  # type: ignore[arg-type]

    def scandir(self, path: object) -> object:
        self._tick()
        entries = list(os.scandir(path))  # type: ignore[call-overload]
        out = []
        for entry in entries:
            self._tick()
            out.append(entry)
        return iter(out)


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    at=st.dictionaries(st.integers(1, 60), st.integers(1, 3), max_size=8),
    polls=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=6),
)
def test_rotations_while_the_follower_handles_one_lose_and_repeat_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    at: dict[int, int],
    polls: list[int],
) -> None:
    """The sensor's rotation racing the follower: the writer rotates again between the
    follower's directory scan and its open of the new file, or in the middle of the scan
    (CI once saw `watch --follow` miss a whole rotated file this way, and with it the alert)."""
    path = tmp_path_factory.mktemp("race") / "events.ndjson"
    sink = FileSink(path, max_bytes=300, keep=1000)
    n = 0

    def write_rotation() -> None:
        nonlocal n
        for _ in range(6):  # 6 events of about 60 bytes: at least one rotation
            sink.write({"n": n, "pad": "x" * (n % 29)})
            n += 1
        sink.flush()

    write_rotation()
    f = Follower(path)
    got = texts(drain(f))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(follow_module, "os", _RotatingOs(at, write_rotation))
        for step in polls:
            for _ in range(step):
                write_rotation()
            got += texts(drain(f))
    sink.close()
    got += texts(drain(f))
    got += texts(drain(f))
    assert [json.loads(x)["n"] for x in got] == list(range(n))
