"""Fuzz targets for the parsers that read what other users control: the tracer's lines and audit logs.

Shared by tests/unit/test_sensor_fuzz.py (a short hypothesis run in CI) and bench/fuzz_sensor.py
(>= 1M inputs per target). Each target takes one input and checks that the parser either accepts
it (a well-formed Connection whose ECS document encodes) or rejects it cleanly (counted as an
unparsable line, or an IngestError with its path and line); any other exception is a crash.
"""

from __future__ import annotations

import io
import math
import socket
from pathlib import Path

import msgspec
from hypothesis import strategies as st

from reconwatch.ecs.auditd import AuditParser
from reconwatch.ecs.host import HostInfo
from reconwatch.ecs.network import ATTEMPTED, REASONS, RESULT, Connection, EcsEncoder, to_ecs
from reconwatch.errors import IngestError
from reconwatch.ingest.auditd import AuditLines
from reconwatch.ingest.report import IngestReport
from reconwatch.sensor.bpf import COMM_BYTES, FILENAME_BYTES, BpfCollector, encode_buf
from reconwatch.sensor.procs import ProcessCache

HOST = HostInfo(name="h", hostname="h", id="m", agent_id="a")
_AF = {4: socket.AF_INET, 6: socket.AF_INET6}
_ENCODE = msgspec.json.Encoder().encode

# --- what the strategies draw from ---------------------------------------------------------------

_NUMBERS = st.one_of(
    st.integers(0, 2**16).map(str),
    st.integers(0, 2**70).map(str),
    st.sampled_from(["-1", "+1", "1_0", " 1", "0x10", "", "٣", "1e3", "99999999999999999999999"]),
).map(str.encode)
_ADDRESSES = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["127.0.0.1", "::1", "1.2.3", "::ffff:1.2.3.4", "1.2.3.4\0", "", "fe80::1%lo"]),
).map(str.encode)
_STRINGS = st.binary(max_size=40)
_BUFFERS = st.one_of(
    st.tuples(_STRINGS, st.sampled_from([COMM_BYTES, FILENAME_BYTES])).map(
        lambda t: encode_buf(*t)
    ),
    # a well-formed buffer with one character changed, cut, or extended
    st.tuples(st.binary(max_size=16), st.integers(0, 63), st.binary(max_size=2)).map(
        lambda t: (lambda b: b[: t[1]] + t[2] + b[t[1] + 1 :])(encode_buf(t[0], COMM_BYTES))
    ),
)
_FIELD = st.one_of(_NUMBERS, _ADDRESSES, _BUFFERS, _STRINGS, st.sampled_from([b"4", b"6", b"5"]))
_KINDS = st.sampled_from(
    [b"C", b"O", b"W", b"A", b"U", b"X", b"Y", b"Q", b"F", b"P", b"R", b"Lost 3 events", b"", b"C "]
)
# 5/7/9/11: right for X/A/C/O and W
_COUNTS = st.one_of(st.sampled_from([5, 7, 9, 11]), st.integers(0, 14))
_ENDS = st.sampled_from([b"\n", b"", b"\r\n", b"\n\n"])
_COIN = st.integers(0, 9)
_RAW_LINE = st.binary(max_size=300)


_PIDS = st.one_of(st.integers(1, 2**22 + 100), st.integers(2**22 + 1000, 2**22 + 1010))
_PORTS = st.integers(0, 65535)
_V4 = st.ip_addresses(v=4).map(str)
_V6 = st.ip_addresses(v=6).map(str)
_PROTOCOLS = st.sampled_from([6, 17, 1, 58, 0, 255, 132])
_ERRNOS = st.one_of(st.sampled_from([0, 110, 111, 113, 101, 112, 64, 1]), st.integers(0, 2**32))


@st.composite
def valid_tracer_lines(draw: st.DrawFn) -> bytes:
    """A line exactly as the script prints it (any pid, address, port, comm and path bytes)."""
    kind = draw(st.sampled_from("CAUXOWYQ"))
    if kind == "Q":  # a probe's answer: protocol, port/echo id, answer code, socket: valid or not
        numbers = [draw(st.integers(0, 2**64 - 1)), draw(_PIDS), draw(st.integers(0, 2**32))]
        answer = [
            draw(_PROTOCOLS),
            draw(st.sampled_from([0, 9, 65535, 65536])),
            draw(st.integers(0, 6)),
        ]
        socket_ = [draw(st.sampled_from([2, 10, 17, 1])), draw(st.sampled_from([3, 2, 10]))]
        head = "\t".join(map(str, numbers))
        rest = "\t".join(map(str, [*answer, draw(st.integers(0, 2**64 - 1)), *socket_]))
        return f"Q\t{head}\t{draw(_V4)}\t{rest}\n".encode()
    if kind == "Y":  # argv: NUL-separated, the printed length or (cut) FILENAME_BYTES of it
        argv = draw(st.lists(_STRINGS, max_size=8))
        raw = b"".join(arg + b"\0" for arg in argv)
        total = len(raw) + draw(st.sampled_from([0, 0, 0, 1, 300]))
        argbuf = "".join(f"\\x{byte:02x}" for byte in raw[:FILENAME_BYTES])
        return f"Y\t{draw(_PIDS)}\t{total}\t{argbuf}\n".encode()
    head = f"{kind}\t{draw(st.integers(0, 2**64 - 1))}\t{draw(_PIDS)}\t"
    if kind == "X":
        path = encode_buf(draw(_STRINGS), FILENAME_BYTES).decode()
        return f"{head}{draw(_PIDS)}\t{draw(st.integers(0, 2**32))}\t{path}\n".encode()
    family = draw(st.sampled_from([4, 6]))
    address = _V4 if family == 4 else _V6
    head += f"{draw(st.integers(0, 2**32))}\t{family}\t"
    if kind == "O":  # the state left for and the socket's error, valid or not
        numbers = (
            draw(st.sampled_from([1, 7, 3, 12])),
            draw(_ERRNOS),
            draw(st.integers(0, 2**64 - 1)),
        )
        ends = "\t".join(map(str, numbers))
        return f"{head}{draw(address)}\t{draw(_PORTS)}\t{draw(address)}\t{draw(_PORTS)}\t{ends}\n".encode()
    if kind == "W":  # socket type, destination, protocol, port, flags/ICMP type: valid or not
        sock = f"{draw(st.sampled_from([2, 10, 17, 1]))}\t{draw(st.sampled_from([3, 2, 10]))}"
        kind_proto = f"{sock}\t{draw(address)}\t{draw(_PROTOCOLS)}"
        rest = f"{draw(st.sampled_from([0, 0, 9, 65535, 65536]))}\t{draw(st.integers(0, 300))}"
        comm = encode_buf(draw(st.binary(max_size=16)), COMM_BYTES).decode()
        return f"{head}{kind_proto}\t{rest}\t{comm}\n".encode()
    if kind == "C":
        head += f"{draw(address)}\t{draw(_PORTS)}\t"
    comm = encode_buf(draw(st.binary(max_size=16)), COMM_BYTES).decode()
    return f"{head}{draw(address)}\t{draw(_PORTS)}\t{comm}\n".encode()


@st.composite
def tracer_lines(draw: st.DrawFn) -> bytes:
    """Lines as the script prints them, lines near its grammar (a kind, then fields drawn from
    numbers, addresses, buffers and bytes), and arbitrary bytes."""
    choice = draw(_COIN)
    if choice == 0:
        return draw(_RAW_LINE)
    if choice < 4:
        return draw(valid_tracer_lines())
    fields = [draw(_KINDS)] + [draw(_FIELD) for _ in range(draw(_COUNTS))]
    return b"\t".join(fields) + draw(_ENDS)


_AUDIT_KEYS = st.sampled_from(
    [
        "arch",
        "syscall",
        "success",
        "exit",
        "a0",
        "a1",
        "a2",
        "pid",
        "ppid",
        "uid",
        "comm",
        "exe",
        "saddr",
        "proctitle",
        "key",
        "SYSCALL",
        "UID",
    ]
)
_HEX = st.binary(max_size=40).map(lambda b: b.hex().upper())
_SADDR = st.tuples(
    st.sampled_from(["0200", "0A00", "0002", "000A", "0100", ""]),
    st.binary(max_size=26),
).map(lambda t: t[0] + t[1].hex().upper())
_AUDIT_VALUES = st.one_of(
    _HEX,
    _SADDR,
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["c000003e", "40000003", "42", "102", "3", "-115", "connect", "socketcall"]),
    # socket(), sendto(), sendmsg() and their arguments: AF_INET, AF_PACKET, SOCK_RAW, protocols
    st.sampled_from(["41", "44", "46", "2", "11", "a", "ff", "1", "3a", "80003", "-1", "sendto"]),
    st.text(max_size=20).map(lambda s: f'"{s}"'),
    st.text(max_size=20),
)
_AUDIT_TYPES = st.sampled_from(
    ["SYSCALL", "SOCKADDR", "PROCTITLE", "EOE", "UNKNOWN[1300]", "1306", "1327", "PATH", "X"]
)


_AUDIT_PREFIXES = st.sampled_from(["", "node=web-1 ", "Dec  6 01:00:00 host audit: ", "type=X "])
_STAMPS = st.one_of(
    st.sampled_from(["1700000000.123:7", "1700000000.123:8", "1.5:1"]),
    st.tuples(_NUMBERS, _NUMBERS, _NUMBERS).map(
        lambda t: (b"%s.%s:%s" % t).decode("utf-8", "replace")
    ),
)
_AUDIT_PAIRS = st.lists(st.tuples(_AUDIT_KEYS, _AUDIT_VALUES), max_size=10)
_AUDIT_TAILS = st.sampled_from(
    ["", "\x1dSYSCALL=connect UID=root", '\x1dUID="x"', "\x1dSYSCALL=socket", "\x1dSYSCALL=sendto"]
)
_RAW_TEXT = st.text(max_size=200)


@st.composite
def audit_lines(draw: st.DrawFn) -> str:
    """One audit log line: a record of a few events' types and fields, or arbitrary text."""
    if draw(_COIN) == 0:
        return draw(_RAW_TEXT)
    head = f"{draw(_AUDIT_PREFIXES)}type={draw(_AUDIT_TYPES)} msg=audit({draw(_STAMPS)}): "
    body = " ".join(f"{k}={v}" for k, v in draw(_AUDIT_PAIRS))
    return head + body + draw(_AUDIT_TAILS)


# --- the checks -----------------------------------------------------------------------------------


class Crash(AssertionError):
    """A parser broke its contract: an exception escaped, or it accepted something malformed."""


def check_connection(conn: Connection) -> None:
    """An accepted Connection is well formed and its document encodes (both encoders agree)."""
    if not (isinstance(conn.pid, int) and conn.pid >= 0 and conn.family in _AF):
        raise Crash(f"bad pid/family: {conn!r}")
    if not (0 <= conn.dst_port <= 65535 and math.isfinite(conn.timestamp)):
        raise Crash(f"bad port/time: {conn!r}")
    for number in (conn.ppid, conn.uid, conn.src_port):
        if number is not None and not (isinstance(number, int) and number >= 0):
            raise Crash(f"bad ppid/uid/source port: {conn!r}")
    if conn.src_port is not None and conn.src_port > 65535:
        raise Crash(f"bad source port: {conn!r}")
    for ip in (conn.dst_ip, conn.src_ip):
        if ip is not None:
            socket.inet_pton(_AF[6 if ":" in ip else 4], ip)
    if conn.action == RESULT and not (
        conn.reason in REASONS
        and conn.outcome == REASONS[conn.reason]
        and isinstance(conn.duration_ns, int)
        and 0 <= conn.duration_ns < 2**64
    ):
        raise Crash(f"bad outcome: {conn!r}")
    if conn.action == RESULT and conn.probe in ("raw", "packet", "datagram"):
        # an answer to a raw or packet probe (IPv4): no flags, no ICMP type, a probe's transport
        if not (
            conn.transport in ("tcp", "udp", "icmp")
            and conn.family == 4
            and conn.tcp_flags is None
            and conn.icmp_type is None
            and conn.reason in ("open", "refused", "unreachable", "answered")
        ):
            raise Crash(f"bad probe answer: {conn!r}")
    elif conn.probe in ("raw", "datagram", "packet") and not conn.port_known:
        # audit's raw send: the address only; the transport is the socket's protocol, if any
        if not (
            conn.transport in (None, "tcp", "udp", "icmp", "ipv6-icmp")
            and conn.tcp_flags is None
            and conn.icmp_type is None
            and conn.action == ATTEMPTED
        ):
            raise Crash(f"bad audit raw send: {conn!r}")
    elif conn.probe in ("raw", "datagram", "packet") and not (
        conn.transport in ("tcp", "udp", "icmp", "ipv6-icmp")
        and (conn.icmp_type is not None) == conn.transport.endswith("icmp")
        and (conn.tcp_flags is not None) == (conn.transport == "tcp")
        and (conn.probe != "datagram" or conn.transport.endswith("icmp"))
    ):
        raise Crash(f"bad raw probe: {conn!r}")
    data = EcsEncoder(HOST).encode(conn, 1.7e9)
    if data != _ENCODE(to_ecs(conn, HOST, 1.7e9)):
        raise Crash(f"the cached encoder disagrees with to_ecs for {conn!r}")


def _tally(c: BpfCollector) -> int:
    s = c.stats
    counted = s.bad_lines + s.execs + s.attempted + s.results + s.accepted + s.udp + s.udp_repeats
    counted += s.own + s.probes + s.probe_repeats + s.arglists + s.answers + s.answer_repeats
    counted += s.fold_reports
    return counted + len(s.tracer_messages)


def tracer_collector() -> BpfCollector:
    # a long miss TTL: most fuzzed pids do not exist, and /proc need not be asked again
    return BpfCollector(binary="bpftrace", cache=ProcessCache(miss_ttl=3600.0))


def check_tracer_line(c: BpfCollector, line: bytes) -> str:
    """'accepted' (an event, exec or own/repeated connection), 'message' (bpftrace's own text),
    'rejected' (an unparsable line, counted and sampled) or 'ignored' (padding, blank, loss)."""
    before, bad, messages = _tally(c), c.stats.bad_lines, len(c.stats.tracer_messages)
    conn = c.handle_line(line)
    grew = _tally(c) - before
    if conn is not None:
        check_connection(conn)
    if grew > 1 or (grew == 0 and not _ignorable(line)):
        raise Crash(f"{line!r} counted {grew} times")
    if c.stats.bad_lines > bad:
        if conn is not None or not c.stats.bad_samples:
            raise Crash(f"{line!r} rejected without a trace")
        return "rejected"
    if len(c.stats.tracer_messages) > messages:
        return "message"
    return "accepted" if grew else "ignored"


def _ignorable(line: bytes) -> bool:
    return line.startswith(b"P\t") or not line.strip() or b"Lost" in line


def check_audit_records(lines: list[str]) -> str:
    """The sensor's audit parser over a few lines (one event's records and neighbours)."""
    errors: list[IngestError] = []
    parser = AuditParser(path="fuzz.log", on_error=errors.append)
    found = [conn for number, text in enumerate(lines, 1) for conn in parser.feed(text, number)]
    found += parser.flush()
    for conn in found:
        check_connection(conn)
    for error in errors:
        if error.path != "fuzz.log" or not (error.line and 1 <= error.line <= len(lines)):
            raise Crash(f"error without its place: {error!r}")
    if len(errors) != parser.error_count:
        raise Crash("errors counted and reported differ")
    return "rejected" if errors else ("accepted" if found else "ignored")


def check_audit_file(data: bytes) -> str:
    """ingest's audit log reader over the bytes of a whole (small) file."""
    report = IngestReport()
    reader = AuditLines(Path("fuzz.log"), report)
    found: list[tuple[int, dict[str, object]]] = []
    number = 0
    for number, raw in enumerate(io.BytesIO(data), 1):
        found += reader.feed(raw, number)
    found += reader.flush()
    for line, doc in found:
        if not 1 <= line <= max(number, 1):
            raise Crash(f"event placed at line {line} of {number}")
        _ENCODE(doc)
    for error in report.errors:
        if not isinstance(error, IngestError) or error.path != "fuzz.log":
            raise Crash(f"error without its place: {error!r}")
        if error.line is not None and not 1 <= error.line <= number:
            raise Crash(f"error at line {error.line} of {number}")
    return "rejected" if report.errors else ("accepted" if found else "ignored")


audit_files = st.lists(
    st.one_of(
        audit_lines().map(lambda s: s.encode("utf-8", "surrogatepass")), st.binary(max_size=80)
    ),
    max_size=8,
).map(b"\n".join)
audit_records = st.lists(audit_lines(), min_size=1, max_size=6)
