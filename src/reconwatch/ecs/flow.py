"""Network-level events without a process (Zeek, packet captures, firewall logs, Suricata) as ECS."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconwatch.ecs.network import ATTEMPTED, REASONS, RESULT, iso_time

# event.action of a record that is no probe by its source: a reply seen alone (backscatter),
# traffic picked up midstream, an ICMP message that is not an echo request.
FLOW = "network_flow"
ACTIONS = (ATTEMPTED, RESULT, FLOW)
# ICMP types that ask for an answer: echo request (v4, v6), timestamp, address mask, ...
ICMP_PROBES = {"icmp": frozenset({8, 13, 15, 17}), "ipv6-icmp": frozenset({128})}
# IANA protocol numbers -> network.transport, as ECS writes them.
PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "ipv6-icmp", 132: "sctp", 47: "gre"}
_ECS = {"version": "8.11.0"}


@dataclass(slots=True)
class Flow:
    """One probe, outcome or flow record from a network sensor or log, before it is ECS.

    `action` is ATTEMPTED (the source sent a probe: TCP SYN without ACK, a UDP datagram, an ICMP
    echo), RESULT (an answer to one: `reason`, a key of ecs.network.REASONS, sets
    event.outcome) or FLOW. A record that is both (a Zeek connection) is ATTEMPTED with its
    `reason`. Source and destination are the probe's, also on a RESULT event, so every event
    of one scanner is found under its source.ip."""

    timestamp: float
    src_ip: str
    dst_ip: str
    dataset: str  # data_stream.dataset / event.dataset: zeek.connection, iptables.log, ...
    module: str
    action: str = ATTEMPTED
    transport: str | None = None
    src_port: int | None = None
    dst_port: int | None = None
    reason: str | None = None
    outcome: str | None = None  # None: from `reason` (unknown without one)
    duration_ns: int | None = None
    protocol: str | None = None  # network.protocol (the application protocol, Zeek's service)
    tcp_flags: str | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    kind: str = "event"
    # Format-specific fields ECS has no place for, already nested: {"zeek": {...}}.
    extra: dict[str, object] = field(default_factory=dict)
    # Top-level ECS objects the format fills itself (observer, rule, process, host, ...).
    ecs: dict[str, object] = field(default_factory=dict)
    # Further event.* fields (event.type, event.id, event.original, ...).
    event: dict[str, object] = field(default_factory=dict)
    source_extra: dict[str, object] = field(default_factory=dict)
    destination_extra: dict[str, object] = field(default_factory=dict)


def outcome_of(reason: str | None) -> str:
    """event.outcome for an event.reason, as the sensor's connection_result events set it."""
    return REASONS.get(reason, "unknown") if reason is not None else "unknown"


def _endpoint(ip: str, port: int | None, more: dict[str, object]) -> dict[str, object]:
    doc: dict[str, object] = {"ip": ip}
    if port is not None:
        doc["port"] = port
    doc.update(more)
    return doc


def _network(flow: Flow) -> dict[str, object]:
    doc: dict[str, object] = {"type": "ipv6" if ":" in flow.src_ip else "ipv4"}
    if flow.transport:
        doc["transport"] = flow.transport
    if flow.protocol:
        doc["protocol"] = flow.protocol
    return doc


def _event(flow: Flow) -> dict[str, object]:
    doc: dict[str, object] = {
        "kind": flow.kind,
        "category": ["network"],
        # One value, as Defend's network events: rules comparing event.type == "start" read it
        # without a multivalue warning.
        "type": ["end" if flow.action == RESULT else "start"],
        "action": flow.action,
        "outcome": flow.outcome or outcome_of(flow.reason),
    }
    if flow.reason is not None:
        doc["reason"] = flow.reason
    if flow.duration_ns is not None:
        doc["duration"] = flow.duration_ns
    doc.update(flow.event)
    doc["dataset"] = flow.dataset
    doc["module"] = flow.module
    return doc


def _reconwatch(flow: Flow) -> dict[str, object]:
    doc: dict[str, object] = {}
    if flow.tcp_flags is not None:
        doc["tcp_flags"] = flow.tcp_flags
    if flow.icmp_type is not None:
        doc["icmp_type"] = flow.icmp_type
    if flow.icmp_code is not None:
        doc["icmp_code"] = flow.icmp_code
    return doc


def to_ecs(flow: Flow) -> dict[str, object]:
    """The ECS document of one network-level event, in the data stream of its format."""
    ports = flow.transport not in ("icmp", "ipv6-icmp")
    doc: dict[str, object] = {
        "@timestamp": iso_time(flow.timestamp),
        "event": _event(flow),
        "source": _endpoint(flow.src_ip, flow.src_port if ports else None, flow.source_extra),
        "destination": _endpoint(
            flow.dst_ip, flow.dst_port if ports else None, flow.destination_extra
        ),
        "network": _network(flow),
        "related": {"ip": sorted({flow.src_ip, flow.dst_ip})},
        "data_stream": {"type": "logs", "dataset": flow.dataset, "namespace": "default"},
        "ecs": dict(_ECS),
    }
    doc.update(flow.ecs)
    extra = _reconwatch(flow)
    if extra:
        doc["reconwatch"] = extra
    doc.update(flow.extra)
    return doc


def probe_action(transport: str | None, tcp_syn: bool, icmp_type: int | None) -> str:
    """ATTEMPTED when a packet of this kind asks for an answer (a scan's probe), else FLOW."""
    if transport == "tcp":
        return ATTEMPTED if tcp_syn else FLOW
    if transport in ICMP_PROBES:
        return ATTEMPTED if icmp_type in ICMP_PROBES[transport] else FLOW
    return ATTEMPTED  # UDP, SCTP, other IP protocols: every first datagram is a probe
