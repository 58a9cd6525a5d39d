"""One observed connection as a neutral record, and its Elastic Defend network event (ECS) form."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass

import msgspec

from reconwatch.ecs.host import HostInfo

DATASET = "endpoint.events.network"
INDEX = "logs-endpoint.events.network-default"
ATTEMPTED = "connection_attempted"
ACCEPTED = "connection_accepted"
# A TCP attempt's outcome (when its socket leaves SYN_SENT); not a probe, so no rule counts it.
RESULT = "connection_result"
# reconwatch.probe: how a probe left the host. "connect" is the kernel's own transport (a TCP
# connect(), a UDP connect()/sendto()), "raw" a SOCK_RAW socket, "packet" an AF_PACKET socket.
PROBE_CONNECT, PROBE_RAW, PROBE_PACKET = "connect", "raw", "packet"
PROBE_DATAGRAM = "datagram"  # ICMP through an ICMP datagram ("ping") socket
ICMP_TRANSPORTS = ("icmp", "ipv6-icmp")  # no ports: destination.port is left out
# event.reason of a connection_result -> event.outcome
REASONS = {
    "established": "success",
    "refused": "failure",
    "timeout": "failure",
    "unreachable": "failure",
    "error": "failure",
    "aborted": "unknown",  # the process closed the socket before any answer
    # raw and packet probes' answers: a SYN-ACK, a UDP datagram or an echo reply
    "open": "success",
    "answered": "success",
}
# Tag on events whose process.executable could not be resolved (neither exec cache nor /proc).
TAG_EXECUTABLE_UNKNOWN = "executable_unknown"
_DATA_STREAM = {"dataset": DATASET, "namespace": "default", "type": "logs"}
_ECS = {"version": "8.11.0"}


@dataclass(slots=True)
class Connection:
    """What a collector saw; every collector (bpftrace, auditd, log files) produces these.

    Strings that come from the kernel as bytes (name, executable, args) are decoded with
    surrogateescape, so they keep every byte; json_text() and raw_bytes() turn them into output.
    """

    timestamp: float  # epoch seconds
    action: str  # ATTEMPTED or ACCEPTED
    pid: int
    dst_ip: str
    dst_port: int
    family: int  # 4 or 6
    name: str = ""
    executable: str | None = None
    args: list[str] | None = None
    ppid: int | None = None
    parent_executable: str | None = None
    uid: int | None = None
    user_name: str | None = None
    transport: str | None = None  # "tcp", "udp", or None when the collector cannot tell
    src_ip: str | None = None
    src_port: int | None = None
    outcome: str = "unknown"
    process_start: float | None = None
    probe: str | None = None  # PROBE_*: how it was sent, when the collector knows
    reason: str | None = None  # a RESULT's event.reason (a key of REASONS)
    duration_ns: int | None = None  # a RESULT's time since the attempt began
    error: str | None = None  # a failed RESULT's errno name (ECONNREFUSED, ETIMEDOUT, ...)
    tcp_flags: str | None = None  # a raw TCP probe's flags: letters of FSRPAUEC ("S", "SA", "")
    icmp_type: int | None = None  # an ICMP probe's type (8 echo request, 128 ICMPv6 echo, ...)
    port_known: bool = True  # False: the collector saw no port (audit's raw sends)


_second_prefixes: dict[int, str] = {}


def iso_time(epoch: float) -> str:
    """Elastic's date format: millisecond precision, UTC, trailing Z.

    Milliseconds are those of datetime.fromtimestamp (microseconds rounded half-even, then
    truncated); the per-second prefix is cached because the sensor formats two times per event.
    """
    frac, whole = math.modf(epoch)
    micros = round(frac * 1e6)
    second = int(whole)
    if micros >= 1_000_000:
        second, micros = second + 1, micros - 1_000_000
    elif micros < 0:
        second, micros = second - 1, micros + 1_000_000
    prefix = _second_prefixes.get(second)
    if prefix is None:
        if len(_second_prefixes) > 256:
            _second_prefixes.clear()
        prefix = _second_prefixes[second] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
    return f"{prefix}{micros // 1000:03d}Z"


def raw_bytes(text: str) -> bytes:
    """The bytes a Connection string stands for: collectors decode kernel bytes with
    surrogateescape, so a byte that is not UTF-8 is a lone surrogate and comes back exactly."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no decoder made (only from a caller's own str)
        return text.encode("utf-8", "surrogatepass")


def json_text(text: str) -> str:
    """A Connection string as JSON can carry it: undecodable bytes become U+FFFD (as in every
    other reader of the project); valid text is returned as is."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return raw_bytes(text).decode("utf-8", "replace")
    return text


def entity_id(agent_id: str, pid: int, start: float | None, executable: str | None) -> str:
    """A stable id for one process lifetime, in the spirit of Defend's process.entity_id.

    Hashed over the executable's bytes, so two paths that differ only in bytes that are not
    UTF-8 (and read the same once those become U+FFFD) keep different ids.
    """
    seed = f"{agent_id}|{pid}|{start if start is not None else ''}|{executable or ''}"
    return base64.b64encode(hashlib.sha256(raw_bytes(seed)).digest()[:24]).decode()


def _process_doc(conn: Connection, host: HostInfo) -> dict[str, object]:
    doc: dict[str, object] = {"pid": conn.pid}
    if conn.name:
        doc["name"] = json_text(conn.name)
    if conn.executable:
        doc["executable"] = json_text(conn.executable)
        if not conn.name:
            doc["name"] = json_text(conn.executable.rsplit("/", 1)[-1])
    if conn.args:
        args = [json_text(arg) for arg in conn.args]
        doc["args"] = args
        doc["args_count"] = len(args)
        doc["command_line"] = " ".join(args)
    if conn.ppid is not None:
        parent: dict[str, object] = {"pid": conn.ppid}
        if conn.parent_executable:
            parent["executable"] = json_text(conn.parent_executable)
        doc["parent"] = parent
    if conn.process_start is not None:
        doc["start"] = iso_time(conn.process_start)
    doc["entity_id"] = entity_id(host.agent_id, conn.pid, conn.process_start, conn.executable)
    return doc


def _endpoints(conn: Connection) -> tuple[dict[str, object], dict[str, object]]:
    """(source, destination) documents; for accepted connections the peer is the source."""
    local: dict[str, object] = {}
    if conn.src_ip is not None:
        local["ip"] = conn.src_ip
    if conn.src_port is not None:
        local["port"] = conn.src_port
    remote: dict[str, object] = {"ip": conn.dst_ip}
    if conn.transport not in ICMP_TRANSPORTS and conn.port_known:
        remote["port"] = conn.dst_port
    if conn.action == ACCEPTED:
        return remote, local
    return local, remote


def _network_doc(conn: Connection) -> dict[str, object]:
    network: dict[str, object] = {
        "type": "ipv6" if conn.family == 6 else "ipv4",
        "direction": "ingress" if conn.action == ACCEPTED else "egress",
    }
    if conn.transport:
        network["transport"] = conn.transport
    return network


def _event_doc(conn: Connection) -> dict[str, object]:
    """event.* without `duration` and `ingested`, which the caller appends last."""
    doc: dict[str, object] = {
        "action": conn.action,
        "type": ["end"] if conn.action == RESULT else ["start"],
        "category": ["network"],
        "kind": "event",
        "outcome": conn.outcome,
    }
    if conn.reason is not None:
        doc["reason"] = conn.reason
    doc["dataset"] = DATASET
    doc["module"] = "endpoint"
    return doc


def _duration(conn: Connection) -> dict[str, object]:
    return {} if conn.duration_ns is None else {"duration": conn.duration_ns}


def _reconwatch_doc(conn: Connection) -> dict[str, object]:
    """The reconwatch.* fields ECS has no place for: the probe's method and a result's errno."""
    doc: dict[str, object] = {}
    if conn.probe is not None:
        doc["probe"] = conn.probe
    if conn.error is not None:
        doc["error"] = conn.error
    if conn.tcp_flags is not None:
        doc["tcp_flags"] = conn.tcp_flags
    if conn.icmp_type is not None:
        doc["icmp_type"] = conn.icmp_type
    return doc


def to_ecs(conn: Connection, host: HostInfo, ingested: float) -> dict[str, object]:
    """The nested Elastic Defend document for one connection."""
    source, destination = _endpoints(conn)
    doc: dict[str, object] = {
        "@timestamp": iso_time(conn.timestamp),
        "event": {**_event_doc(conn), **_duration(conn), "ingested": iso_time(ingested)},
        "process": _process_doc(conn, host),
        "source": source,
        "destination": destination,
        "network": _network_doc(conn),
        "host": host.host_doc(),
        "agent": host.agent_doc(),
        "data_stream": dict(_DATA_STREAM),
        "ecs": dict(_ECS),
    }
    user = _user_doc(conn)
    if user:
        doc["user"] = user
    extra = _reconwatch_doc(conn)
    if extra:
        doc["reconwatch"] = extra
    if not conn.executable:
        doc["tags"] = [TAG_EXECUTABLE_UNKNOWN]
    return doc


class EcsEncoder:
    """msgspec JSON of to_ecs(), byte for byte, with per-host and per-process parts encoded once.

    The sensor formats every event this way: the parts that repeat (host, agent, a process's
    document, event/network/user variants) are cached as pre-encoded fragments.
    """

    def __init__(self, host: HostInfo, *, process_capacity: int = 4096) -> None:
        self.host = host
        self._encode = msgspec.json.Encoder().encode
        constant = {
            "host": host.host_doc(),
            "agent": host.agent_doc(),
            "data_stream": _DATA_STREAM,
            "ecs": _ECS,
        }
        # ',"host":{...},"agent":{...},"data_stream":{...},"ecs":{...}'
        self._constant = b"," + self._encode(constant)[1:-1]
        self._tags = b',"tags":' + self._encode([TAG_EXECUTABLE_UNKNOWN])
        self._events: dict[tuple[str, str, str | None], bytes] = {}
        self._ingested_at: float | None = None  # the last `ingested` formatted, and its bytes
        self._ingested = b""
        self._extras: dict[tuple[str | None, str | None, str | None, int | None], bytes | None] = {}
        self._networks: dict[tuple[int, str, str | None], bytes] = {}
        self._users: dict[tuple[int | None, str | None], bytes | None] = {}
        self._process_capacity = process_capacity
        self._processes: OrderedDict[
            tuple[int, str, str | None, int | None, str | None, float | None],
            tuple[list[str] | None, bytes],
        ] = OrderedDict()

    def encode(self, conn: Connection, ingested: float) -> bytes:
        """The document's JSON, joined from bytes: cached fragments and the few per-event values
        (times, endpoints, duration), without building the document as dicts first."""
        parts = [
            b'{"@timestamp":"',
            self._timestamp(conn.timestamp),
            b'","event":',
            self._event(conn, ingested),
            b',"process":',
            self._process(conn),
            *self._endpoints(conn),
            b',"network":',
            self._network(conn),
            self._constant,
        ]
        user = self._user(conn)
        if user is not None:
            parts += (b',"user":', user)
        extra = self._extra(conn)
        if extra is not None:
            parts += (b',"reconwatch":', extra)
        if not conn.executable:
            parts.append(self._tags)
        parts.append(b"}")
        return b"".join(parts)

    def _timestamp(self, epoch: float) -> bytes:
        return iso_time(epoch).encode()

    def _endpoints(self, conn: Connection) -> tuple[bytes, bytes, bytes, bytes]:
        """',"source":', its object, ',"destination":', its object (the peer is the source of
        an accepted connection), as msgspec writes _endpoints()'s dicts."""
        encode = self._encode
        local = b""
        if conn.src_ip is not None:
            local = b'"ip":' + encode(conn.src_ip)
        if conn.src_port is not None:
            local += b'%s"port":%d' % (b"," if local else b"", conn.src_port)
        remote = b'"ip":' + encode(conn.dst_ip)
        if conn.transport not in ICMP_TRANSPORTS and conn.port_known:
            remote += b',"port":%d' % conn.dst_port
        if conn.action == ACCEPTED:
            local, remote = remote, local
        return b',"source":{', local + b"}", b',"destination":{', remote + b"}"

    def _event(self, conn: Connection, ingested: float) -> bytes:
        key = (conn.action, conn.outcome, conn.reason)
        head = self._events.get(key)
        if head is None:
            # '{"action":...,"module":"endpoint"' then [',"duration":N'] ',"ingested":"..."}'
            head = self._events[key] = self._encode(_event_doc(conn))[:-1]
        if ingested != self._ingested_at:
            self._ingested_at = ingested
            self._ingested = b',"ingested":"' + iso_time(ingested).encode() + b'"}'
        if conn.duration_ns is not None:
            return b'%s,"duration":%d%s' % (head, conn.duration_ns, self._ingested)
        return head + self._ingested

    def _extra(self, conn: Connection) -> bytes | None:
        key = (conn.probe, conn.error, conn.tcp_flags, conn.icmp_type)
        if key not in self._extras:
            extra = _reconwatch_doc(conn)
            self._extras[key] = self._encode(extra) if extra else None
        return self._extras[key]

    def _network(self, conn: Connection) -> bytes:
        key = (conn.family, conn.action, conn.transport)
        raw = self._networks.get(key)
        if raw is None:
            raw = self._networks[key] = self._encode(_network_doc(conn))
        return raw

    def _user(self, conn: Connection) -> bytes | None:
        key = (conn.uid, conn.user_name)
        if key not in self._users:
            user = _user_doc(conn)
            self._users[key] = self._encode(user) if user else None
        return self._users[key]

    def _process(self, conn: Connection) -> bytes:
        # args is compared as well: one pid may exec again with the same executable
        key = (
            conn.pid,
            conn.name,
            conn.executable,
            conn.ppid,
            conn.parent_executable,
            conn.process_start,
        )
        hit = self._processes.get(key)
        if hit is not None and (hit[0] is conn.args or hit[0] == conn.args):
            return hit[1]
        raw = self._encode(_process_doc(conn, self.host))
        self._processes[key] = (conn.args, raw)
        if len(self._processes) > self._process_capacity:
            self._processes.popitem(last=False)
        return raw


def _user_doc(conn: Connection) -> dict[str, object]:
    user: dict[str, object] = {}
    if conn.uid is not None:
        user["id"] = str(conn.uid)
    if conn.user_name:
        user["name"] = json_text(conn.user_name)
    return user


# ECS network.direction's "internal" address space: private, loopback and link-local ranges.
_INTERNAL = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "fc00::/7",
        "::1/128",
        "fe80::/10",
    )
]


def is_internal(ip: str) -> bool:
    """Whether an address is in the internal space (ECS network.direction's internal side)."""
    addr = ipaddress.ip_address(ip)
    return any(addr in net for net in _INTERNAL if net.version == addr.version)
