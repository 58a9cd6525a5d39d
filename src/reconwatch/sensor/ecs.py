"""One observed connection as a neutral record, and its Elastic Defend network event (ECS) form."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from reconwatch.sensor.host import HostInfo

DATASET = "endpoint.events.network"
INDEX = "logs-endpoint.events.network-default"
ATTEMPTED = "connection_attempted"
ACCEPTED = "connection_accepted"
# Tag on events whose process.executable could not be resolved (neither exec cache nor /proc).
TAG_EXECUTABLE_UNKNOWN = "executable_unknown"


@dataclass(slots=True)
class Connection:
    """What a collector saw; every collector (bpftrace, auditd, log files) produces these."""

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
    uid: int | None = None
    user_name: str | None = None
    transport: str | None = None  # "tcp", "udp", or None when the collector cannot tell
    src_ip: str | None = None
    src_port: int | None = None
    outcome: str = "unknown"
    process_start: float | None = None


def iso_time(epoch: float) -> str:
    """Elastic's date format: millisecond precision, UTC, trailing Z."""
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def entity_id(agent_id: str, pid: int, start: float | None, executable: str | None) -> str:
    """A stable id for one process lifetime, in the spirit of Defend's process.entity_id."""
    seed = f"{agent_id}|{pid}|{start if start is not None else ''}|{executable or ''}"
    return base64.b64encode(hashlib.sha256(seed.encode()).digest()[:24]).decode()


def _process_doc(conn: Connection, host: HostInfo) -> dict[str, object]:
    doc: dict[str, object] = {"pid": conn.pid}
    if conn.name:
        doc["name"] = conn.name
    if conn.executable:
        doc["executable"] = conn.executable
        if not conn.name:
            doc["name"] = conn.executable.rsplit("/", 1)[-1]
    if conn.args:
        doc["args"] = conn.args
        doc["args_count"] = len(conn.args)
        doc["command_line"] = " ".join(conn.args)
    if conn.ppid is not None:
        doc["parent"] = {"pid": conn.ppid}
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
    remote: dict[str, object] = {"ip": conn.dst_ip, "port": conn.dst_port}
    if conn.action == ACCEPTED:
        return remote, local
    return local, remote


def to_ecs(conn: Connection, host: HostInfo, ingested: float) -> dict[str, object]:
    """The nested Elastic Defend document for one connection."""
    source, destination = _endpoints(conn)
    network: dict[str, object] = {
        "type": "ipv6" if conn.family == 6 else "ipv4",
        "direction": "ingress" if conn.action == ACCEPTED else "egress",
    }
    if conn.transport:
        network["transport"] = conn.transport
    doc: dict[str, object] = {
        "@timestamp": iso_time(conn.timestamp),
        "event": {
            "action": conn.action,
            "type": ["start"],
            "category": ["network"],
            "kind": "event",
            "outcome": conn.outcome,
            "dataset": DATASET,
            "module": "endpoint",
            "ingested": iso_time(ingested),
        },
        "process": _process_doc(conn, host),
        "source": source,
        "destination": destination,
        "network": network,
        "host": host.host_doc(),
        "agent": host.agent_doc(),
        "data_stream": {"dataset": DATASET, "namespace": "default", "type": "logs"},
        "ecs": {"version": "8.11.0"},
    }
    user = _user_doc(conn)
    if user:
        doc["user"] = user
    if not conn.executable:
        doc["tags"] = [TAG_EXECUTABLE_UNKNOWN]
    return doc


def _user_doc(conn: Connection) -> dict[str, object]:
    user: dict[str, object] = {}
    if conn.uid is not None:
        user["id"] = str(conn.uid)
    if conn.user_name:
        user["name"] = conn.user_name
    return user
