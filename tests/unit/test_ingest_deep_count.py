"""The bracket count that spares DuckDB's raw-line read vouches only for files that read finds no candidate in, and does not fail on."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconwatch.ingest import fast

PIECES = st.sampled_from(
    [b"{", b"[", b"}", b"]", b'"a"', b":", b",", b"1", b"\n", b"\r", b"\x1f", b"\xff", b"\xc3\xa9"]
)


# No compiled count (the Python twin alone), and the compiled one where the install built it.
COUNTS = [None] + ([] if fast._compiled_count() is None else [fast._compiled_count()])


@settings(max_examples=200, deadline=None)
@given(st.lists(PIECES, max_size=40), st.integers(0, 4), st.integers(0, 4))
def test_the_compiled_count_is_its_python_twin(
    pieces: list[bytes], carried: int, depth: int
) -> None:
    compiled = fast._compiled_count()
    if compiled is None:
        pytest.skip("the compiled count was not built (no C compiler)")
    buf = b"".join(pieces)
    got = compiled(buf, carried, depth)
    odd = b"\r" in buf or b"\x1f" in buf or not buf.isascii()
    if got == fast._ODD:
        assert odd  # the chunk is looked at in Python
    else:
        assert not odd or got == -1  # a deep line before the odd one: not vouched either way
        assert got == fast._translated_count(buf, carried, depth)


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


@settings(max_examples=150, deadline=None)
@given(st.lists(PIECES, max_size=40), st.integers(1, 4), st.integers(1, 9))
# Newline styles mixed or a stray byte: DuckDB's raw read fails on these (the file then goes to
# the Python reader), so the count must not vouch for them.
@example([b"{", b"\r", b"{", b"\n"], 4, 9)
@example([b"{", b"\r\n", b"{", b"\n"], 4, 3)
@example([b"{", b"\n", b"[", b"\r", b"{", b"\n"], 4, 2)
@example([b'"a"', b"\xff", b"\n"], 4, 1)
@example([b'"a"', b"\x1f", b'"a"', b"\n"], 4, 9)
def test_a_yes_means_the_raw_read_finds_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    con: duckdb.DuckDBPyConnection,
    pieces: list[bytes],
    depth: int,
    chunk: int,
) -> None:
    path = tmp_path_factory.mktemp("deep") / "e.ndjson"
    path.write_bytes(b"".join(pieces))
    verdicts = set()
    for count in COUNTS:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(fast, "_CHUNK", chunk)  # lines and UTF-8 sequences across chunk boundaries
            mp.setattr(fast, "_compiled", count)
            verdicts.add(fast.no_deep_line(str(path), depth))
    assert len(verdicts) == 1
    vouched = verdicts.pop()
    if vouched:
        assert fast.deep_line_candidates(con, str(path), depth) == []
    data = b"".join(pieces)
    lines = data.split(b"\n")
    if any(line.count(b"{") + line.count(b"[") > depth for line in lines):
        assert not vouched
    if b"\r" not in data and b"\x1f" not in data and b"\xff" not in data:
        # Nothing the raw read could fail on: the count decides by brackets alone.
        assert vouched == all(line.count(b"{") + line.count(b"[") <= depth for line in lines)


def test_compressed_names_and_long_lines_are_left_to_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "e.ndjson.gz"
    plain.write_bytes(b'{"a": 1}\n')
    assert not fast.no_deep_line(str(plain), 500)
    long = tmp_path / "long.ndjson"
    long.write_bytes(b'{"a": "' + b"x" * 100 + b'"}\n')
    assert fast.no_deep_line(str(long), 500)
    monkeypatch.setattr(fast, "_LONGEST_LINE", 50)
    monkeypatch.setattr(fast, "_CHUNK", 16)
    assert not fast.no_deep_line(str(long), 500)
    assert not fast.no_deep_line(str(tmp_path / "missing.ndjson"), 500)
