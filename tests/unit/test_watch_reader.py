"""The pipe and replay reader (ingest.follow.read_batches): lines from one reused buffer, in place, with carries, long lines and pipes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.backends.stream import lines as lines_module
from reconwatch.backends.stream.lines import BufferLines, split_lines
from reconwatch.ingest import follow as follow_module

COMPILED = lines_module._line_starts is not None
SPLITTERS = [
    "python",
    pytest.param("compiled", marks=pytest.mark.skipif(not COMPILED, reason="not built")),
]


@pytest.fixture(params=SPLITTERS)
def splitter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(lines_module, "_line_starts", None)
    return str(request.param)


def _read_all(fd: int) -> list[bytes]:
    return [bytes(line) for batch in follow_module.read_batches(fd, split_lines) for line in batch]


TEXT = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30)


@settings(max_examples=150, deadline=None)
@given(rows=TEXT, tail=st.booleans())
def test_split_lines_equals_bytes_split(rows: list[bytes], tail: bool) -> None:
    data = b"".join(r + b"\n" for r in rows) + (b"partial" if tail else b"")
    end = data.rfind(b"\n") + 1
    got = split_lines(bytearray(data), end)
    assert list(got) == rows
    assert all(type(x) is bytes for x in got)
    if rows:
        assert got[-1] == rows[-1]
        assert list(got[1:3]) == rows[1:3]
        assert list(got[2:][:-1]) == rows[2:][:-1]


@pytest.mark.skipif(not COMPILED, reason="the compiled scan was not built")
def test_buffer_lines_index_errors() -> None:
    got = split_lines(b"a\nbb\n", 5)
    assert isinstance(got, BufferLines) and len(got) == 2
    with pytest.raises(IndexError):
        got[2]
    with pytest.raises(ValueError):
        got[::2]
    with pytest.raises(ValueError):
        lines_module._line_starts(b"a\nb", 3)  # not ending with a newline


@pytest.mark.parametrize("size", [7, 64, 1 << 20])
def test_file_with_long_lines_and_no_final_newline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, splitter: str, size: int
) -> None:
    """Lines longer than the buffer grow it; a line carried over many reads stays whole."""
    monkeypatch.setattr(follow_module, "READ_BYTES", size)
    rows = [b"x" * n + b"\r" for n in (0, 3, 150, 7, 1000, 1)] + [b'{"a": 1}'] * 50
    path = tmp_path / "e.ndjson"
    path.write_bytes(b"\n".join(rows))  # no newline at the end
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_all(fd) == rows
    finally:
        os.close(fd)


def test_pipe_written_in_pieces(monkeypatch: pytest.MonkeyPatch, splitter: str) -> None:
    """A line split across writes arrives whole, once, in order."""
    monkeypatch.setattr(follow_module, "READ_BYTES", 256)
    rows = [f'{{"n": {i}, "pad": "{"p" * (i % 97)}"}}'.encode() for i in range(400)]
    data = b"\n".join(rows) + b"\n"
    read_fd, write_fd = os.pipe()

    def writer() -> None:
        for step, cut in enumerate(range(0, len(data), 333)):
            os.write(write_fd, data[cut : cut + 333])
            if step % 10 == 9:
                time.sleep(0.002)
        os.close(write_fd)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert _read_all(read_fd) == rows
    finally:
        thread.join()
        os.close(read_fd)


def test_follow_meets_end_of_file_mid_line(tmp_path: Path, splitter: str) -> None:
    """--follow: a line whose second half is appended while the reader waits at end of file
    arrives whole, once (the wait is injected: it appends the rest)."""
    path = tmp_path / "e.ndjson"
    path.write_bytes(b'{"n": 1}\n{"n": ')
    appended: list[int] = []

    def wait() -> None:
        if not appended:
            with path.open("ab") as handle:
                handle.write(b'2}\n{"n": 3}\n')
        appended.append(1)

    follower = follow_module.Follower(path, split=split_lines)
    got: list[bytes] = []
    batches = follow_module.follow_all([follower], wait=wait, running=lambda: len(got) < 3)
    for batch in batches:
        got += [bytes(line) for line in batch.lines]
    follower.close()
    assert got == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    assert len(appended) == 1  # the reader met the half line at end of file exactly once
