"""The compiled line scan against its Python twin: never takes a line the Python loop refuses, and takes what it takes to the same rows and times."""

from __future__ import annotations

import gc
import gzip
import json
import os
import tracemalloc
from datetime import datetime
from importlib import resources
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconwatch.backends.stream.cells import iso_millis
from reconwatch.backends.stream.executor import StreamExecutor
from reconwatch.backends.stream.fastpath import FastPath, Scanner, compiled_scan_enabled
from reconwatch.backends.stream.lines import COMPILED, BufferLines, split_lines
from reconwatch.engine.watch import EcsCatalog, RuleWatch
from reconwatch.esql.analyze import compile_query
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

if Scanner is None:
    if os.environ.get("RECONWATCH_REQUIRE_COMPILED"):
        pytest.fail("RECONWATCH_REQUIRE_COMPILED is set but the compiled scan was not built")
    pytest.skip(
        "the compiled scan was not built (no C compiler at install)", allow_module_level=True
    )
if not compiled_scan_enabled():
    pytest.skip("RECONWATCH_PURE_PYTHON is set", allow_module_level=True)

# Two BY columns, a residual WHERE and IP/keyword cells: routes through tuples and the memo.
TWO_KEYS = """
    from logs-endpoint.events.network-*
    | where @timestamp >= now() - 90 seconds and host.name != "h2"
    | stats c = count(), d = count_distinct(destination.ip), hi = max(agent.id)
      by process.executable, agent.id
    | where c >= 3 and d < 6"""
# No BY column: every row joins the one group (the lookup is the empty tuple).
NO_KEYS = """
    from logs-endpoint.events.network-*
    | where @timestamp > now() - 1 hour and event.action == "connection_attempted"
    | stats ips = count_distinct(destination.ip)
    | where ips > 3"""


def _fast(text: str | None) -> FastPath:
    plan = load_builtin(DEFAULT_RULE).query if text is None else text
    ex = StreamExecutor(compile_query(plan, EcsCatalog()))
    assert ex.fast is not None and ex.fast.native
    return ex.fast


# A long column: in the WHERE, counted and a BY key.
PORTS = """
    from logs-endpoint.events.network-*
    | where @timestamp > now() - 1 hour and destination.port < 1000
    | stats ports = count_distinct(destination.port) by process.executable, destination.port
    | where ports > 3"""

PLANS = {
    "seed": _fast(None),
    "two-keys": _fast(TWO_KEYS),
    "no-keys": _fast(NO_KEYS),
    "ports": _fast(PORTS),
}


def _take(fp: FastPath, lines: list[Any], native: bool) -> tuple[int, dict[Any, Any], list[Any]]:
    pending: dict[Any, Any] = {}
    times: list[Any] = []
    if native:
        stop = fp._native.scan(lines, pending, {}, times, fp._route)
    else:
        stop = fp._python_scan(lines, pending, {}, times)
    return stop, pending, times


def _converted(time: object) -> object:
    """What the compiled scan puts in T for a time the Python loop holds as text."""
    if type(time) is str and time.isascii():
        ms = iso_millis(time)
        if ms is not None:
            return ms
    return time


def _check_line(fp: FastPath, line: Any) -> bool:
    """The property for one line; True when the compiled scan took it."""
    took, pending, times = _take(fp, [line], native=True)
    want_took, want_pending, want_times = _take(fp, [line], native=False)
    assert took <= want_took, f"took a line the Python loop refuses: {line!r}"
    if took:
        assert times == [_converted(t) for t in want_times], line
        assert _typed(pending) == _typed(want_pending), line
    return bool(took)


def _typed(pending: dict[Any, Any]) -> object:
    """Rows with every value's type, so '1' and ('1',) or 1 never compare equal by accident."""
    return {
        _with_types(k): [tuple(map(_with_types, row)) for row in rows]
        for k, rows in pending.items()
    }


def _with_types(value: object) -> object:
    if type(value) is tuple:
        return ("tuple", tuple(map(_with_types, value)))
    return (type(value).__name__, value)


# -- generated documents -------------------------------------------------------------------------

TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("abcxyz019 ./-_:")),
        st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "\u2028", "😀"]),
        st.characters(),
    ),
    max_size=12,
)
COMMON = st.sampled_from(
    ["connection_attempted", "start", "linux", "/usr/bin/nmap", "10.0.0.1", "a1", "h1", "h2"]
)
SCALAR: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**25), 10**25),
    st.floats(allow_nan=False, allow_infinity=False),
    COMMON,
    TEXT,
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT | COMMON, inner, max_size=3),
    max_leaves=8,
)
INTEGER = st.one_of(
    st.integers(-1000, 70_000),
    st.integers(-(2**64), 2**64),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**18 - 1, 10**18]),
)
LEAF = st.one_of(
    INTEGER,
    INTEGER.map(lambda n: [n]),
    st.sampled_from([80.0, 1e2, -0.0, 22.5, True, False, "80", ["80"]]),
    COMMON,
    COMMON.map(lambda s: [s]),
    TEXT,
    TEXT.map(lambda s: [s]),
    st.none(),
    st.just([]),
    st.lists(COMMON, min_size=2, max_size=2),
    JSON,
)


def _stamp(draw: st.DrawFn) -> object:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        last = datetime(9999, 12, 31, 23, 59, 59, 999_000)  # noqa: DTZ001 (hypothesis bounds)
        t = draw(st.datetimes(datetime(1, 1, 1), last))  # noqa: DTZ001
        return f"{t.year:04d}-{t:%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
    if kind == 1:  # the canonical shape with any digits: Feb 30, hour 24, year 0
        parts = [draw(st.integers(0, 10**n - 1)) for n in (4, 2, 2, 2, 2, 2, 3)]
        return "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z".format(*parts)
    if kind == 2:
        return draw(st.sampled_from(["2025-07-16T09:00:00Z", "2025-07-16T09:00:00.000+00:00"]))
    return draw(LEAF)


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """Defend-like documents whose wanted fields take every shape the decoder may meet."""
    doc: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        doc["@timestamp"] = _stamp(draw)
    for top, leaves in {
        "event": ["action", "type"],
        "destination": ["ip", "port"],
        "agent": ["id"],
        "host": ["name"],
        "process": ["executable"],
    }.items():
        roll = draw(st.integers(0, 9))
        if roll == 0:
            continue
        if roll == 1:
            doc[top] = draw(JSON)  # null, a list, a string where an object is expected
            continue
        obj = {leaf: draw(LEAF) for leaf in leaves if draw(st.integers(0, 5))}
        if top == "host":
            obj["os"] = {"type": draw(st.sampled_from(["linux", "windows"]) | LEAF)}
        if draw(st.integers(0, 3)) == 0:
            obj[draw(TEXT)] = draw(JSON)
        doc[top] = obj
    for _ in range(draw(st.integers(0, 2))):
        doc[draw(TEXT | st.sampled_from(["user", "message", "host.name", "event.action"]))] = draw(
            JSON
        )
    return doc


def _encode(draw: st.DrawFn, doc: dict[str, Any]) -> bytes:
    text = json.dumps(
        doc,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, None, 0, 1])),
        separators=draw(st.sampled_from([None, (",", ":"), (" , ", " : ")])),
    )
    if draw(st.integers(0, 5)) == 0 and text.endswith("}") and len(text) > 2:
        # A duplicate key: msgspec keeps the last one.
        key = draw(st.sampled_from(["event", "@timestamp", "process", "x"]))
        text = text[:-1] + f', "{key}": ' + json.dumps(draw(JSON)) + "}"
    data = text.encode("utf-8", "surrogatepass")
    return (
        draw(st.sampled_from([b"", b" ", b"\t"]))
        + data
        + draw(st.sampled_from([b"", b" ", b"\r", b" x", b"}"]))
    )


NOISE = st.sampled_from(
    [*b'{}[]":,;x\\ 0123456789eE.-+tfnu\x00\x01\x1f\x80\xc3\xed\xff', ord("\n")]
)


@st.composite
def lines(draw: st.DrawFn) -> bytes:
    data = bytearray(_encode(draw, draw(documents())))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2, 3]))):
        at = draw(st.integers(0, len(data)))
        edit = draw(st.integers(0, 2))
        if edit == 0:
            data[at:at] = bytes([draw(NOISE)])
        elif at < len(data):
            data[at : at + 1] = b"" if edit == 1 else bytes([draw(NOISE)])
    return bytes(data)


@pytest.mark.parametrize("plan", sorted(PLANS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=lines())
def test_never_looser_than_the_python_loop_and_same_rows(plan: str, line: bytes) -> None:
    _check_line(PLANS[plan], line)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes(data: bytes) -> None:
    _check_line(PLANS["seed"], data)
    _check_line(PLANS["seed"], b'{"event":' + data + b"}")


@given(line=lines())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_text_lines_as_bytes(line: bytes) -> None:
    """A str line (stdin read as text) is scanned as its UTF-8, like msgspec."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return
    _check_line(PLANS["two-keys"], text)


GOOD = (
    b'{"@timestamp":"2025-07-16T09:00:00.001Z","event":{"action":"connection_attempted",'
    b'"type":["start"]},"host":{"os":{"type":"linux"},"name":"h1"},"agent":{"id":"a1"},'
    b'"process":{"executable":"/usr/bin/nmap"},"destination":{"ip":"10.0.0.1"},"x":%s}'
)
# Values in an unread field that JSON (and msgspec) rejects: the scan must not take them.
NOT_JSON = [
    b'"a\x01b"', b'"a\x1fb"', b'"\\x"', b'"\\u12"', b'"\\ud800"', b'"\\udfff x"',
    b"01", b"1.", b"-", b"1e", b"1e+", b".5", b"+1", b"0x1", b"--1", b"1.e3",
    b"[1,]", b"[,1]", b"[1 2]", b'{"a":1,}', b'{"a" 1}', b'{"a":}', b"{1:2}", b"nul",
    b"truex", b"True", b"NaN", b"Infinity",
    b'["a";"b"]', b'{"k":"v" "k2":"v"}', b'{"k":"v";"k2":"v"}', b"[null null]", b"[[]{}]",
    b'{"k":[]]', b'["a"}', b"[nuxl]", b"[trUe]", b"[fals3]",
]  # fmt: skip
# msgspec skips these unread values; the scan declines them (the general path decides).
STRICTER = [
    b'"\xc0\xaf"',
    b'"\xed\xa0\x80"',
    b'"\xf4\x90\x80\x80"',
    b'"\xff"',
    b"[" * 70 + b"]" * 70,
]


# Not JSON in a wanted field's place: the scan must not take it (read, not skipped, there).
WANTED_NOT_JSON = [
    b'["h1"x', b'["h1",]', b'["h1" "h2"]', b"[nuxl]", b"nuxl", b'"h1\xc3\xc3"', b'"h1\xc3"',
    b'"h1\xed\xa0\x80"', b'"h1\xf4\x90\x80\x80"', b'"h1\\ud800"', b'"h1\\q"',
]  # fmt: skip


@pytest.mark.parametrize("value", WANTED_NOT_JSON)
def test_declines_a_wanted_value_it_cannot_read(value: bytes) -> None:
    line = (GOOD % b"1").replace(b'"h1"', value)
    assert _take(PLANS["seed"], [line], native=True)[0] == 0
    _check_line(PLANS["seed"], line)


def test_declines_a_wanted_key_spelled_with_an_escape() -> None:
    """`"ev\u0065nt"` is msgspec's `event`: the scan cannot compare it, so it declines."""
    line = (GOOD % b"1").replace(b'"event"', b'"ev\\u0065nt"')
    assert _take(PLANS["seed"], [line], native=False)[0] == 1
    assert _take(PLANS["seed"], [line], native=True)[0] == 0


def test_the_second_time_field_when_the_first_is_missing() -> None:
    """The port rule's times: event.ingested (timestamp_override), else @timestamp."""
    fp = RuleWatch.create(load_builtin("port-scanning")).executor.fast
    assert fp is not None and fp.native and len(fp.time_fields) == 2
    line = GOOD % b"1"
    with_ingested = line.replace(b'"action"', b'"ingested":"2025-07-16T09:00:02.500Z","action"')
    for case in (line, with_ingested):
        assert _check_line(fp, case)
    assert _take(fp, [line], native=True)[2] == [iso_millis("2025-07-16T09:00:00.001Z")]
    assert _take(fp, [with_ingested], native=True)[2] == [iso_millis("2025-07-16T09:00:02.500Z")]


def test_takes_unread_values_of_every_json_kind() -> None:
    assert _check_line(PLANS["seed"], GOOD % b"1")
    assert _check_line(PLANS["seed"], GOOD % b'[-0.5e-3, {"k": [true, false, null]}, "\\u00e9"]')


@pytest.mark.parametrize("value", NOT_JSON)
def test_declines_what_json_rejects(value: bytes) -> None:
    line = GOOD % value
    assert _take(PLANS["seed"], [line], native=False)[0] == 0  # the Python loop refuses it
    assert _take(PLANS["seed"], [line], native=True)[0] == 0


@pytest.mark.parametrize("value", STRICTER)
def test_declines_what_it_does_not_validate(value: bytes) -> None:
    assert _take(PLANS["seed"], [GOOD % value], native=True)[0] == 0


def _sample() -> list[bytes]:
    path = resources.files("reconwatch") / "data" / "sample" / "defend-network-sample.ndjson.gz"
    return gzip.decompress(path.read_bytes()).splitlines()


def test_takes_every_ordinary_defend_line() -> None:
    """Not needlessly strict: the shipped Defend sample is taken whole, as the Python loop
    takes it, in one call over many lines."""
    sample = _sample()
    for fp in PLANS.values():
        took, pending, times = _take(fp, sample, native=True)
        want_took, want_pending, want_times = _take(fp, sample, native=False)
        assert took == want_took == len(sample)
        assert times == [_converted(t) for t in want_times]
        assert all(type(t) is int for t in times)
        assert _typed(pending) == _typed(want_pending)


def test_escapes_in_wanted_values_are_decoded() -> None:
    line = json.dumps(
        {
            "@timestamp": "2025-07-16T09:00:00.001Z",
            "event": {"action": "connection_attempted", "type": ["start"]},
            "host": {"os": {"type": "linux"}, "name": 'h\u00e9\t\\"1\u2028'},
            "process": {"executable": "C:\\Windows\\nmap.exe"},
            "agent": {"id": "a\u0001"},
            "destination": {"ip": "10.0.0.1"},
        },
        ensure_ascii=True,
    ).encode()
    assert _check_line(PLANS["seed"], line)


def test_every_escape_in_a_wanted_value() -> None:
    escaped = rb'"\"\\\/\b\f\n\r\t\u0041\u00e9\u00ff\u07ff\u20ac\uffff\u0000"'
    line = (GOOD % b"1").replace(b'"h1"', escaped).replace(b'"/usr/bin/nmap"', escaped)
    assert _check_line(PLANS["seed"], line)
    rows = _take(PLANS["seed"], [line], native=True)[1]
    assert list(rows) == [('"\\/\b\f\n\r\tA\u00e9\u00ff\u07ff\u20ac\uffff\x00',)]


@pytest.mark.parametrize(
    "stamp",
    [
        "1970-01-01T00:00:00.000Z",
        "1969-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "2024-02-29T12:00:00.000Z",
        "2000-02-29T12:00:00.000Z",
        "2023-02-29T12:00:00.000Z",
        "1900-02-29T12:00:00.000Z",
        "2025-04-31T00:00:00.000Z",
        "2025-13-01T00:00:00.000Z",
        "2025-00-10T00:00:00.000Z",
        "2025-01-00T00:00:00.000Z",
        "0000-01-01T00:00:00.000Z",
        "2025-07-16T24:00:00.000Z",
        "2025-07-16T23:60:00.000Z",
        "2025-07-16T23:59:60.000Z",
        "2025-07-16 23:59:59.000Z",
        "2025-07-16T23:59:59.000z",
        "2025-07-16T23:59:59,000Z",
        "2025-07-16T23:59:59.0000",
    ],
)
def test_time_conversion_matches_the_parser(stamp: str) -> None:
    line = (GOOD % b"1").replace(b"2025-07-16T09:00:00.001Z", stamp.encode())
    assert _check_line(PLANS["seed"], line)


def test_stops_at_the_first_line_it_does_not_take() -> None:
    good = _sample()[:3]
    assert _take(PLANS["seed"], [*good, b"{not json", *good], native=True)[0] == 3


def test_many_distinct_values_outlive_the_intern_table() -> None:
    """The per-field intern table starts over when half full; values stay right."""
    base = json.loads(_sample()[0])
    out = []
    for i in range(10_000):
        base["destination"]["ip"] = f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"
        base["process"]["executable"] = f"/bin/x{i % 3000}"
        out.append(json.dumps(base).encode())
    fp = PLANS["seed"]
    got = _take(fp, out, native=True)
    want = _take(fp, out, native=False)
    assert got[0] == want[0] == len(out)
    assert _typed(got[1]) == _typed(want[1])


def test_scanning_does_not_leak() -> None:
    fp = _fast(None)
    sample = _sample()
    _take(fp, sample, native=True)  # intern tables and caches filled
    fp._native.clear()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(5):
            _take(fp, sample, native=True)
            fp._native.clear()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    # Five passes over 2,986 lines: a leaked reference per line would be >= 400 kB.
    assert grown < 64_000, grown


def _take_in_place(fp: FastPath, rows: list[bytes]) -> tuple[int, dict[Any, Any], list[Any]]:
    data = b"".join(r + b"\n" for r in rows)
    lines = split_lines(bytearray(data), len(data))
    assert isinstance(lines, BufferLines)
    pending: dict[Any, Any] = {}
    times: list[Any] = []
    stop = fp._scan(lines[1:], pending, {}, times)  # a view that does not start at line 0
    return stop, pending, times


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(lines().map(lambda b: b.replace(b"\n", b" ")), min_size=1, max_size=6))
def test_lines_read_in_place_equal_lines_as_bytes(rows: list[bytes]) -> None:
    fp = PLANS["two-keys"]
    got = _take_in_place(fp, [b"{}", *rows])
    want = _take(fp, rows, native=True)
    assert got[0] == want[0]
    assert got[2] == want[2]
    assert _typed(got[1]) == _typed(want[1])


def test_sample_read_in_place() -> None:
    fp = PLANS["seed"]
    sample = _sample()
    got = _take_in_place(fp, [b"", *sample])
    assert got[0] == len(sample)
    assert _typed(got[1]) == _typed(_take(fp, sample, native=True)[1])


@pytest.mark.parametrize("value", [b'"h1', b'"h1\\', b'"h1\\"', b'"h\xc3', b'"' + b"x" * 40])
@pytest.mark.parametrize("after", [b"", b'"}}', b'"}}' + b" " * 40, GOOD % b"1"])
def test_a_string_open_at_its_line_end_is_declined_in_place(value: bytes, after: bytes) -> None:
    """Strings are scanned 16 bytes at a time, and a line read in place has the rest of the
    buffer after it: what follows the line (a quote on the next line, say) never closes one
    of its strings."""
    line = b'{"host":{"name":' + value
    for rows in ([b"{}", line], [b"{}", line, after]):
        assert _take_in_place(PLANS["seed"], rows)[0] == 0
        assert _take(PLANS["seed"], rows[1:], native=True)[0] == 0


def test_strings_ending_near_the_buffer_end_in_place() -> None:
    """The last line of a buffer, its strings ending at every distance from the buffer's end
    (where 16 bytes no longer fit): taken as the same line outside the buffer is."""
    taken = 0
    for pad in range(0, 48):
        for closing in (b'"}', b'"', b'\\"}', b'\\u00e9"}'):
            line = (GOOD % (b'"' + b"y" * pad + closing))[:-1]
            want = _take(PLANS["seed"], [line], native=True)
            got = _take_in_place(PLANS["seed"], [b"{}", line])
            assert got[0] == want[0], line
            assert got[2] == want[2]
            assert _typed(got[1]) == _typed(want[1])
            taken += got[0]
    assert taken == 48 * 2  # the lines closing their string and object


@pytest.mark.parametrize(
    ("port", "taken"),
    [
        (b"80", True),
        (b"-0", True),
        (b"[443]", True),
        (b" [ 22 ] ", True),
        (b"null", True),
        (b"999999999999999999", True),
        (b"9223372036854775807", False),  # 19 digits: left to msgspec and the range check
        (b"9223372036854775808", False),
        (b"80.0", False),
        (b"1e2", False),
        (b'"80"', False),
        (b"true", False),
        (b"[22,80]", False),
        (b"[]", False),
    ],
)
def test_long_leaves(port: bytes, taken: bool) -> None:
    line = (GOOD % b"1").replace(b'"ip":"10.0.0.1"', b'"ip":"10.0.0.1","port":' + port)
    assert _check_line(PLANS["ports"], line) is taken


def _block_bytes_in_python(data: bytes, end: int) -> int:
    odd = b"\r" in data[:end] or b"\x1f" in data[:end]
    return int(odd) | (0 if data[:end].isascii() else 2)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300).map(bytearray),
    cut=st.integers(min_value=0, max_value=300),
    odd=st.sampled_from([b"", b"\r", b"\x1f", b"\x80", b"\xff", b"\xc3\xa9"]),
    at=st.integers(min_value=0, max_value=300),
)
def test_block_bytes_as_find_and_isascii_say(
    data: bytearray, cut: int, odd: bytes, at: int
) -> None:
    """The compiled block test (one pass) answers as bytes.find and isascii over buf[:end],
    whatever lies past `end`, at every offset within and around its 64-byte steps."""
    data[min(at, len(data)) : min(at, len(data))] = odd
    end = min(cut, len(data))
    assert COMPILED is not None
    assert COMPILED.block_bytes(data, end) == _block_bytes_in_python(bytes(data), end)


def test_block_bytes_sees_each_byte_at_every_position() -> None:
    assert COMPILED is not None
    for size in (1, 15, 16, 63, 64, 65, 130):
        for pos in range(size):
            for byte, want in ((b"\r", 1), (b"\x1f", 1), (b"\x80", 2), (b"\x7f", 0)):
                data = bytearray(b"a" * size)
                data[pos : pos + 1] = byte
                assert COMPILED.block_bytes(data, size) == want, (size, pos, byte)
                assert COMPILED.block_bytes(data, pos) == 0  # past `end`: not looked at
    with pytest.raises(ValueError, match="end outside"):
        COMPILED.block_bytes(b"abc", 4)
