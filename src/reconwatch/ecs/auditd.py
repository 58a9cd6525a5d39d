"""Linux audit records (SYSCALL + SOCKADDR + PROCTITLE) for connect() and raw sends -> Elastic Defend network events."""

from __future__ import annotations

import ipaddress
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from reconwatch.ecs.host import HostInfo
from reconwatch.ecs.network import (
    ATTEMPTED,
    PROBE_DATAGRAM,
    PROBE_PACKET,
    PROBE_RAW,
    Connection,
    to_ecs,
)
from reconwatch.errors import IngestError

# Record header; the prefix may be a syslog line or auditd's `node=` field, so search, not match.
# Digit counts are bounded: epoch seconds up to 2286, as the kernel prints them; longer runs
# (a float overflow, or int()'s 4300-digit limit) make the line "not an audit record".
_HEADER = re.compile(
    r"type=(?P<type>[A-Z_]+|UNKNOWN\[\d{1,10}\]|\d{1,10})\s+(?:msg=)?"
    r"audit\((?P<sec>\d{1,10})\.(?P<ms>\d{1,9}):(?P<serial>\d{1,20})\):?\s?"
)
_FIELD = re.compile(r'(\w+)=("(?:[^"]*)"|\'[^\']*\'|\S*)')
_NUMERIC_TYPES = {"1300": "SYSCALL", "1306": "SOCKADDR", "1327": "PROCTITLE", "1320": "EOE"}
_WANTED = frozenset({"SYSCALL", "SOCKADDR", "PROCTITLE", "EOE"})
# auditd's ENRICHED log format appends interpreted fields after a GS (0x1d) separator.
_ENRICHED_SEP = "\x1d"
_ENRICHED_TAIL = re.compile(r"[A-Z][A-Z0-9_]*=")
EINPROGRESS = -115
AF_INET, AF_INET6 = 2, 10
_MAX_PENDING = 256

# connect() per audit arch (AUDIT_ARCH_*): direct syscall numbers, and socketcall where it exists.
_CONNECT = {
    0xC000003E: 42,  # x86_64
    0x40000003: 362,  # i386
    0xC00000B7: 203,  # aarch64
    0x40000028: 283,  # arm (EABI)
    0x80000015: 328,  # ppc64
    0xC0000015: 328,  # ppc64le
    0x00000014: 328,  # ppc
    0x80000016: 362,  # s390x
    0x00000016: 362,  # s390
    0xC00000F3: 203,  # riscv64
    0xC0000102: 203,  # loongarch64
}
_SOCKETCALL = {0x40000003: 102, 0x80000015: 102, 0xC0000015: 102, 0x00000014: 102, 0x80000016: 102}
_SYS_CONNECT = 3  # socketcall(2) call number for connect
_ARCH_LE = 0x40000000
# socket(), sendto() and sendmsg() per audit arch (the ones a raw sender's records come from),
# and their socketcall(2) call numbers.
_SOCKET = {0xC000003E: 41, 0x40000003: 359, 0xC00000B7: 198, 0xC00000F3: 198, 0xC0000102: 198}
SEND_SYSCALLS = _SEND = {
    0xC000003E: {44: "sendto", 46: "sendmsg"},
    0x40000003: {369: "sendto", 370: "sendmsg"},
    0xC00000B7: {206: "sendto", 211: "sendmsg"},
    0xC00000F3: {206: "sendto", 211: "sendmsg"},
    0xC0000102: {206: "sendto", 211: "sendmsg"},
}
AF_PACKET = 17
SOCK_DGRAM, SOCK_RAW = 2, 3
_SOCK_TYPE_MASK = 0xF  # SOCK_NONBLOCK and SOCK_CLOEXEC are or-ed into socket()'s type
# A raw IP socket's protocol -> network.transport (IPPROTO_RAW: the packet says, audit does not)
_RAW_TRANSPORTS = {6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp"}
_SOCKETS_MAX = 4096


@dataclass(frozen=True, slots=True)
class ProbeSocket:
    """A socket() that made a raw IP, packet or ICMP datagram socket: what its sends are."""

    pid: int
    fd: int
    family: int
    type: int
    protocol: int
    arch: int

    @property
    def probe(self) -> str:
        if self.family == AF_PACKET:
            return PROBE_PACKET
        return PROBE_RAW if self.type == SOCK_RAW else PROBE_DATAGRAM

    @property
    def transport(self) -> str | None:
        return None if self.family == AF_PACKET else _RAW_TRANSPORTS.get(self.protocol)


def probe_socket(family: int, sock_type: int, protocol: int) -> bool:
    """Whether socket(family, type, protocol) is one whose sends are probes: SOCK_RAW IPv4/IPv6,
    AF_PACKET, or an ICMP datagram ("ping") socket."""
    kind = sock_type & _SOCK_TYPE_MASK
    if family == AF_PACKET:
        return kind in (SOCK_RAW, SOCK_DGRAM)
    if family in (AF_INET, AF_INET6):
        return kind == SOCK_RAW or (kind == SOCK_DGRAM and protocol in (1, 58))
    return False


@dataclass(frozen=True, slots=True)
class SockAddr:
    family: int
    ip: str | None = None
    port: int | None = None


def decode_sockaddr(hex_text: str, *, big_endian: bool = False) -> SockAddr:
    """Decode a SOCKADDR saddr: sa_family in the audited host's byte order, port big-endian."""
    raw = bytes.fromhex(hex_text)
    if len(raw) < 2:
        raise ValueError("saddr shorter than sa_family")
    family = int.from_bytes(raw[:2], "big" if big_endian else "little")
    if family == AF_INET:
        if len(raw) < 8:
            raise ValueError("AF_INET saddr shorter than 8 bytes")
        return SockAddr(
            family, str(ipaddress.IPv4Address(raw[4:8])), int.from_bytes(raw[2:4], "big")
        )
    if family == AF_INET6:
        if len(raw) < 24:
            raise ValueError("AF_INET6 saddr shorter than 24 bytes")
        addr = ipaddress.IPv6Address(raw[8:24])
        mapped = addr.ipv4_mapped
        return SockAddr(family, str(mapped or addr), int.from_bytes(raw[2:4], "big"))
    return SockAddr(family)


def _unquote(value: str) -> str:
    """Audit values are "quoted", hex-encoded (when they hold spaces or controls), or bare."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if value and len(value) % 2 == 0 and all(c in "0123456789ABCDEFabcdef" for c in value):
        try:
            return bytes.fromhex(value).decode("utf-8", "surrogateescape")
        except ValueError:
            return value
    return value


def _fields(body: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in _FIELD.finditer(body)}


def _enriched(extra: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _fields(extra).items()}


@dataclass(slots=True)
class _Pending:
    """The records of one audit event (same timestamp:serial), as they arrive."""

    timestamp: float
    line: int
    syscall: dict[str, str] | None = None
    enriched: dict[str, str] = field(default_factory=dict)
    saddr: str | None = None
    proctitle: str | None = None


class AuditParser:
    """Reassembles audit events line by line; connect() events come out as Connections.

    Bad records are reported through on_error (an IngestError with path and line) and skipped.
    """

    def __init__(
        self,
        *,
        path: str,
        on_error: Callable[[IngestError], None] | None = None,
        on_socket: Callable[[ProbeSocket], None] | None = None,
    ) -> None:
        self.path = path
        self.on_error = on_error
        self.on_socket = on_socket
        self.error_count = 0
        self.pending: OrderedDict[str, _Pending] = OrderedDict()
        # (pid, fd) -> the raw/packet/datagram socket its socket() record made
        self.sockets: OrderedDict[tuple[int, int], ProbeSocket] = OrderedDict()
        self._sent: OrderedDict[tuple[int, str | None, str], None] = OrderedDict()
        self.raw_sends = 0
        self.raw_repeats = 0
        self.raw_unaddressed = 0  # sends whose destination audit does not record

    def _error(self, reason: str, line: int) -> None:
        self.error_count += 1
        if self.on_error is not None:
            self.on_error(IngestError(reason, self.path, line))

    def feed(self, text: str, line: int) -> Iterator[Connection]:
        """Take one log line; yields the connections of events it completes."""
        text = text.rstrip("\r\n")
        if not text.strip():
            return
        body, _, extra = text.partition(_ENRICHED_SEP)
        header = _HEADER.search(body)
        if header is None and _ENRICHED_TAIL.match(body):
            return  # the enriched half of a record split by str.splitlines(); nothing we need
        if header is None:
            self._error("not an audit record (no `type=... msg=audit(...)` header)", line)
            return
        rtype = header.group("type")
        rtype = _NUMERIC_TYPES.get(rtype.removeprefix("UNKNOWN[").removesuffix("]"), rtype)
        if rtype not in _WANTED:
            return
        key = f"{header.group('sec')}.{header.group('ms')}:{header.group('serial')}"
        event = self.pending.get(key)
        if event is None:
            stamp = int(header.group("sec")) + int(header.group("ms")) / 10 ** len(
                header.group("ms")
            )
            event = self.pending[key] = _Pending(stamp, line)
        self._add(event, rtype, body[header.end() :], extra, line)
        if rtype == "EOE":
            yield from self._complete(key)
        while len(self.pending) > _MAX_PENDING:
            yield from self._complete(next(iter(self.pending)))

    def _add(self, event: _Pending, rtype: str, body: str, extra: str, line: int) -> None:
        values = _fields(body)
        if rtype == "SYSCALL":
            event.syscall = values
            event.enriched = _enriched(extra)
            event.line = line
        elif rtype == "SOCKADDR":
            event.saddr = values.get("saddr")
            if event.saddr is None:
                self._error("SOCKADDR record without saddr", line)
        elif rtype == "PROCTITLE":
            event.proctitle = values.get("proctitle")

    def flush(self, older_than: float | None = None) -> Iterator[Connection]:
        """Complete pending events: all of them (end of input) or those older than a wall time."""
        for key in list(self.pending):
            if older_than is None or self.pending[key].timestamp < older_than:
                yield from self._complete(key)

    def _complete(self, key: str) -> Iterator[Connection]:
        event = self.pending.pop(key)
        if event.syscall is None:
            return
        call = _call(event.syscall, event.enriched)
        if call == "socket":
            self._socket(event)
            return
        if call in ("sendto", "sendmsg"):
            conn = self._send(event)
            if conn is not None:
                yield conn
            return
        if call != "connect":
            return
        if event.saddr is None:
            self._error("connect SYSCALL without its SOCKADDR record", event.line)
            return
        try:
            conn = _connection(event)
        except (KeyError, ValueError) as exc:
            self._error(f"bad connect record: {exc}", event.line)
            return
        if conn is not None:
            yield conn

    def _socket(self, event: _Pending) -> None:
        """A socket() record: remember a raw, packet or ICMP datagram socket by (pid, fd)."""
        syscall = event.syscall
        assert syscall is not None
        try:
            family, kind, protocol = (int(syscall.get(f"a{i}", ""), 16) for i in range(3))
            pid, fd = _number(syscall["pid"]), int(syscall.get("exit", "-1"))
            arch = _arch(syscall)
        except (KeyError, ValueError):
            self._error("bad socket record", event.line)
            return
        if fd < 0 or not probe_socket(family, kind, protocol):
            return
        sock = ProbeSocket(pid, fd, family, kind & _SOCK_TYPE_MASK, protocol, arch)
        self.sockets[(pid, fd)] = sock
        self.sockets.move_to_end((pid, fd))
        while len(self.sockets) > _SOCKETS_MAX:
            self.sockets.popitem(last=False)
        if self.on_socket is not None:
            self.on_socket(sock)

    def _send(self, event: _Pending) -> Connection | None:
        """A sendto()/sendmsg() on a socket remembered by _socket: an attempt to the address it
        names, once per (process, transport, destination); audit has no packet headers, so no
        port, flags or ICMP type."""
        syscall = event.syscall
        assert syscall is not None
        try:
            pid, fd = _number(syscall["pid"]), int(syscall.get("a0", ""), 16)
            failed = int(syscall.get("exit", "-1")) < 0
        except (KeyError, ValueError):
            self._error("bad send record", event.line)
            return None
        sock = self.sockets.get((pid, fd))
        if sock is None or failed:
            return None  # not a socket we know to be raw, or the send failed
        if event.saddr is None or sock.family == AF_PACKET:
            # send() on a connected socket; a packet socket's address names a device (a
            # successful send never carries an IP address there)
            self.raw_unaddressed += 1
            return None
        try:
            addr = decode_sockaddr(event.saddr, big_endian=not _arch(syscall) & _ARCH_LE)
        except ValueError as exc:
            self._error(f"bad send record: {exc}", event.line)
            return None
        if addr.ip is None:
            self.raw_unaddressed += 1  # not an IP address (AF_UNSPEC, a short one)
            return None
        self.raw_sends += 1
        seen = (pid, sock.transport, addr.ip)
        if seen in self._sent:
            self.raw_repeats += 1
            return None
        self._sent[seen] = None
        if len(self._sent) > _SOCKETS_MAX * 16:
            self._sent.popitem(last=False)
        conn = _process_connection(event, addr.ip, 0)
        conn.transport = sock.transport
        conn.probe = sock.probe
        conn.port_known = False
        return conn


def _call(syscall: dict[str, str], enriched: dict[str, str]) -> str | None:
    """connect, socket, sendto or sendmsg (by name when the log is enriched), else None.

    socket() and the sends count only as direct system calls: through socketcall(2) their
    arguments are in user memory, not in the record."""
    if _is_connect(syscall, enriched):
        return "connect"
    if "SYSCALL" in enriched:
        name = enriched["SYSCALL"]
        return name if name in ("socket", "sendto", "sendmsg") else None
    try:
        arch, number = _arch(syscall), int(syscall["syscall"])
    except (KeyError, ValueError):
        return None
    if _SOCKET.get(arch) == number:
        return "socket"
    return _SEND.get(arch, {}).get(number)


def _arch(syscall: dict[str, str]) -> int:
    return int(syscall.get("arch", "c000003e"), 16)


def _is_connect(syscall: dict[str, str], enriched: dict[str, str]) -> bool:
    if "SYSCALL" in enriched:
        return enriched["SYSCALL"] == "connect" or (
            enriched["SYSCALL"] == "socketcall" and syscall.get("a0") == "3"
        )
    try:
        arch, number = _arch(syscall), int(syscall["syscall"])
    except (KeyError, ValueError):
        return False
    if _CONNECT.get(arch) == number:
        return True
    return _SOCKETCALL.get(arch) == number and syscall.get("a0") == f"{_SYS_CONNECT:x}"


def _outcome(syscall: dict[str, str]) -> str:
    code = int(syscall.get("exit", "0"))
    if code == 0:
        return "success"
    # EINPROGRESS: a nonblocking connect was started; whether it succeeds is not in the record.
    return "unknown" if code == EINPROGRESS else "failure"


def _connection(event: _Pending) -> Connection | None:
    """The Connection for a complete connect event; None for families the rule does not use."""
    syscall = event.syscall
    assert syscall is not None and event.saddr is not None
    big_endian = not _arch(syscall) & _ARCH_LE
    addr = decode_sockaddr(event.saddr, big_endian=big_endian)
    if addr.family not in (AF_INET, AF_INET6) or addr.ip is None or addr.port is None:
        return None  # unix, netlink, AF_UNSPEC (UDP disconnect): not network connections
    conn = _process_connection(event, addr.ip, addr.port)
    conn.outcome = _outcome(syscall)
    return conn


def _process_connection(event: _Pending, ip: str, port: int) -> Connection:
    """An attempt to ip:port with the process fields of the event's SYSCALL and PROCTITLE."""
    syscall = event.syscall
    assert syscall is not None
    raw_uid = syscall.get("uid", "")
    uid = int(raw_uid) if raw_uid.isascii() and raw_uid.isdigit() else None  # optional: not fatal
    return Connection(
        timestamp=event.timestamp,
        action=ATTEMPTED,
        pid=_number(syscall["pid"]),
        ppid=_number(syscall["ppid"]) if "ppid" in syscall else None,
        dst_ip=ip,
        dst_port=port,
        family=6 if ":" in ip else 4,
        name=_unquote(syscall.get("comm", "")),
        executable=_unquote(syscall["exe"]) if "exe" in syscall else None,
        args=_proctitle_args(event.proctitle),
        uid=uid,
        user_name=event.enriched.get("UID"),
    )


def _number(value: str) -> int:
    """A pid/ppid field: ASCII digits (int() would also take a sign or other scripts' digits)."""
    if not (value.isascii() and value.isdigit()):
        raise ValueError(f"not a number: {value[:40]!r}")
    return int(value)


def _proctitle_args(proctitle: str | None) -> list[str] | None:
    if not proctitle:
        return None
    if proctitle.startswith('"'):
        return proctitle.strip('"').split(" ")
    try:
        raw = bytes.fromhex(proctitle)
    except ValueError:
        return [proctitle]
    return [part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0") if part]


def parse_audit_lines(
    lines: Iterable[str],
    *,
    path: str,
    host: HostInfo | None,
    on_error: Callable[[IngestError], None] | None = None,
) -> Iterator[dict[str, object]]:
    """ECS network events for the connect() calls in audit log lines.

    Bad records go to on_error as IngestError(reason, path, line) and are skipped. Without a
    host, host.* and agent.* are left out (a log file from elsewhere does not say them).
    """
    parser = AuditParser(path=path, on_error=on_error)
    stamp = host or HostInfo(name="", hostname="", id="")
    for number, text in enumerate(lines, start=1):
        for conn in parser.feed(text, number):
            yield _document(conn, stamp, host is not None)
    for conn in parser.flush():
        yield _document(conn, stamp, host is not None)


def _document(conn: Connection, host: HostInfo, known_host: bool) -> dict[str, object]:
    doc = to_ecs(conn, host, ingested=time.time())
    if not known_host:
        del doc["host"]
        doc.pop("agent")
        process = doc["process"]
        assert isinstance(process, dict)
        process.pop("entity_id", None)
    return doc
