"""The tracer's batched map entries (`@b`, `@w`, `@q`), parsed in one step, against the line kinds
they stand for (`B`, `W`, `Q`), parsed field by field: the same events, counts and rejections."""

from __future__ import annotations

import io
import socket
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.ecs.host import HostInfo
from reconwatch.ecs.network import Connection, EcsEncoder
from reconwatch.sensor.bpf import BpfCollector, Stats, encode_buf, read_lines
from reconwatch.sensor.procs import ProcessCache

HOST = HostInfo(name="h", hostname="h", id="m", agent_id="a")
GONE = 2**22 + 4321  # no such pid: the executable is unknown, as for a scanner that has exited
LIVE = 1  # init: /proc resolves it

_PIDS = st.sampled_from([GONE, LIVE, 0])
# valid and out-of-range values of each field kind
_WORDS = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([2**32, 2**64 - 1]))
_PORTS = st.one_of(st.integers(0, 65535), st.sampled_from([65536, 99999]))
_BIG = st.integers(0, 2**64 - 1)
# comm bytes as %r prints them; no backslash (%r prints it raw, so `\x41` would be ambiguous)
_COMMS = st.binary(max_size=16).filter(lambda b: b"\\" not in b)


def percent_r(data: bytes) -> bytes:
    """What bpftrace's `%r` prints for a buffer: printable ASCII raw, every other byte \\xNN."""
    return b"".join(bytes([c]) if 0x20 <= c < 0x7F else b"\\x%02x" % c for c in data)


def outcome(c: BpfCollector, line: bytes) -> tuple[list[bytes], Stats]:
    """What a collector makes of one line: the encoded events (attempt, then its outcome), and
    its counts (tracer lines and batch counts aside, which only the map entries have)."""
    events: list[Connection] = []
    conn = c.handle_line(line)
    if conn is not None:
        events.append(conn)
    if c.pending_result is not None:
        events.append(c.pending_result)
    encoder = EcsEncoder(HOST)
    stats = c.stats
    stats.lines = 0
    stats.bad_samples = []
    return [encoder.encode(e, 1.7e9) for e in events], stats


def pair() -> tuple[BpfCollector, BpfCollector]:
    """Two collectors that agree on the clock and share the process cache."""
    a = BpfCollector(binary="bpftrace", cache=ProcessCache())
    b = BpfCollector(binary="bpftrace", cache=a.cache)
    b._clock_offset = a._clock_offset
    return a, b


def address(family: int, words: list[int]) -> bytes:
    af = socket.AF_INET if family == 2 else socket.AF_INET6
    packed = struct.pack("<I", words[0]) if family == 2 else struct.pack("<4I", *words)
    return socket.inet_ntop(af, packed).encode()


@settings(max_examples=150, deadline=None)
@given(
    nsecs=_BIG,
    pid=_PIDS,
    uid=st.sampled_from([0, 65534, 4000000]),
    family=st.sampled_from([2, 10, 3]),
    words=st.lists(_WORDS, min_size=8, max_size=8),
    sport=_PORTS,
    dport=_PORTS,
    state=st.sampled_from([0, 1, 2, 7]),
    err=st.sampled_from([0, 111, 110, 113, 5, 4095, 4096]),
    took=st.one_of(st.just(0), st.integers(0, 2**40)),
    name=_COMMS,
)
def test_an_attempt_entry_gives_what_its_combined_line_gives(
    nsecs: int,
    pid: int,
    uid: int,
    family: int,
    words: list[int],
    sport: int,
    dport: int,
    state: int,
    err: int,
    took: int,
    name: bytes,
) -> None:
    numbers = ", ".join(str(n) for n in [pid, uid, family, *words[:4], sport, *words[4:], dport])
    entry = b"@b1[%d, 7]: (%s, %d, %d, %d, %s)\n" % (
        nsecs,
        numbers.encode(),
        state,
        err,
        took,
        percent_r(name.ljust(16, b"\0")),
    )
    by_map, by_line = pair()
    got, got_stats = outcome(by_map, entry)
    if family == 3 or max(words) > 0xFFFFFFFF or (state == 0 and (err or took)):
        # a B (or C) line cannot say that: the entry alone is rejected
        assert got == [] and got_stats.bad_lines == 1
        return
    src = address(family, words[:4])
    dst = address(family, words[4:])
    # state 0: an attempt batched before its outcome came, what a C line says
    kind = b"C" if state == 0 else b"B"
    fields = [kind, b"%d" % nsecs, b"%d" % pid, b"%d" % uid, b"4" if family == 2 else b"6", src]
    fields += [b"%d" % sport, dst, b"%d" % dport, encode_buf(name, 16)]
    if state:
        fields += [b"%d" % state, b"%d" % err, b"%d" % took]
    want, want_stats = outcome(by_line, b"\t".join(fields) + b"\n")
    assert got == want
    assert got_stats == want_stats


@settings(max_examples=150, deadline=None)
@given(
    nsecs=st.integers(0, 2**62),
    pid=_PIDS,
    sockfamily=st.sampled_from([2, 10, 17, 1]),
    socktype=st.sampled_from([2, 3, 1]),
    daddr=_WORDS,
    proto=st.sampled_from([6, 17, 1, 47]),
    port=_PORTS,
    detail=st.sampled_from([0, 2, 8, 18, 13, 3, 255, 256]),
    key=_PORTS,
    answer=st.sampled_from([0, 1, 2, 3, 4, 5, 9]),
    took=st.integers(0, 2**40),
    name=_COMMS,
)
def test_a_probe_entry_gives_what_its_packet_and_answer_lines_give(
    nsecs: int,
    pid: int,
    sockfamily: int,
    socktype: int,
    daddr: int,
    proto: int,
    port: int,
    detail: int,
    key: int,
    answer: int,
    took: int,
    name: bytes,
) -> None:
    answered = nsecs + 1000 if answer else 0
    numbers = [pid, 0, sockfamily, socktype, daddr, proto, port, detail, key, answer, answered]
    entry = b"@w0[%d, 9]: (%s, %d, %s)\n" % (
        nsecs,
        ", ".join(str(n) for n in numbers).encode(),
        took,
        percent_r(name.ljust(16, b"\0")),
    )
    by_map, by_line = pair()
    got, got_stats = outcome(by_map, entry)
    if daddr > 0xFFFFFFFF:
        assert got == [] and got_stats.bad_lines == 1
        return
    dst = address(2, [daddr])
    numbers_w = [b"%d" % n for n in (nsecs, pid, 0)] + [b"4", b"%d" % sockfamily]
    numbers_w += [b"%d" % socktype, dst, b"%d" % proto, b"%d" % port, b"%d" % detail]
    w_line = b"\t".join([b"W", *numbers_w, encode_buf(name, 16)]) + b"\n"
    q_line = None
    scratch = BpfCollector(binary="bpftrace", cache=by_line.cache)
    if scratch.handle_line(w_line) is None and scratch.stats.bad_lines:
        assert got == [] and got_stats.bad_lines == 1  # the entry is checked whole
        return
    if answer:
        q = [answered, pid, 0]
        tail = [proto, key, answer, took, sockfamily, socktype]
        q_line = b"\t".join([b"Q", *(b"%d" % n for n in q), dst, *(b"%d" % n for n in tail)])
        # the entry is checked whole: a bad answer rejects the probe too
        if scratch.handle_line(q_line + b"\n") is None and scratch.stats.bad_lines:
            assert got == [] and got_stats.bad_lines == 1
            return
    want, want_stats = outcome(by_line, w_line)
    if q_line is not None:
        answer_events, want_stats = outcome(by_line, q_line + b"\n")
        want += answer_events
    assert got == want
    assert got_stats == want_stats


@settings(max_examples=100, deadline=None)
@given(
    nsecs=st.integers(0, 2**62),
    pid=_PIDS,
    daddr=_WORDS,
    proto=st.sampled_from([6, 17, 1, 47]),
    key=_PORTS,
    answer=st.sampled_from([1, 2, 3, 4, 5, 9]),
    took=_BIG,
    sockfamily=st.sampled_from([2, 17, 1]),
    socktype=st.sampled_from([2, 3]),
)
def test_an_answer_entry_gives_what_its_answer_line_gives(
    nsecs: int,
    pid: int,
    daddr: int,
    proto: int,
    key: int,
    answer: int,
    took: int,
    sockfamily: int,
    socktype: int,
) -> None:
    numbers = [0, daddr, proto, key, answer, took, sockfamily, socktype]
    entry = b"@q1[%d, %d]: (%s)\n" % (nsecs, pid, ", ".join(str(n) for n in numbers).encode())
    by_map, by_line = pair()
    got, got_stats = outcome(by_map, entry)
    if daddr > 0xFFFFFFFF:
        assert got == [] and got_stats.bad_lines == 1
        return
    tail = [proto, key, answer, took, sockfamily, socktype]
    line = [b"Q", b"%d" % nsecs, b"%d" % pid, b"0", address(2, [daddr])]
    want, want_stats = outcome(by_line, b"\t".join(line + [b"%d" % n for n in tail]) + b"\n")
    assert got == want
    assert got_stats == want_stats


def test_an_entry_with_a_signed_or_spaced_number_is_rejected() -> None:
    good = b"@b0[2000, 1]: (1, 0, 2, 1, 0, 0, 0, 1, 2, 0, 0, 0, 9, 7, 111, 7, x)"
    for bad in (b"(+1, 0,", b"( 1, 0,", b"(1_0, 0,", b"(\xd9\xa3, 0,"):
        c = BpfCollector(binary="bpftrace", cache=ProcessCache())
        assert c.handle_line(good.replace(b"(1, 0,", bad)) is None
        assert c.stats.bad_lines == 1 and c.stats.attempted == 0
    c = BpfCollector(binary="bpftrace", cache=ProcessCache())
    assert c.handle_line(good) is not None and c.stats.bad_lines == 0


def test_lines_are_read_in_blocks_and_split_whole() -> None:
    text = b"a\n" + b"b" * 10 + b"\n\nc\n@b0: 1\nlast"
    for size in (1, 3, 7, 64):
        lines = [
            line
            for block in read_lines(io.BufferedReader(io.BytesIO(text)), size)
            for line in block
        ]
        assert lines == [b"a", b"b" * 10, b"", b"c", b"@b0: 1", b"last"]
    assert list(read_lines(io.BufferedReader(io.BytesIO(b"")))) == []
