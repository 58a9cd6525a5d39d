"""A simulated Linux fleet and Elastic Defend network events (nested, ~1.3 KB like real ones)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from reconwatch.plan.values import format_datetime

AGENT_VERSION = "8.15.2"
ROLES = ("web", "app", "db", "cache", "worker")
RESOLVER = "10.20.0.2"
FLEET_SERVER = "10.20.0.5"
EXTERNAL_WEB = (
    "151.101.1.69",
    "140.82.112.3",
    "185.125.190.36",
    "91.189.91.83",
    "104.16.132.229",
    "34.120.177.193",
)
NTP_POOL = ("162.159.200.1", "129.6.15.28", "216.239.35.0")


@dataclass(frozen=True, slots=True)
class Process:
    executable: str
    user: str = "root"
    args: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.executable.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    ip: str
    ipv6: str
    mac: str
    agent_id: str
    host_id: str
    role: str
    os_type: str = "linux"


def make_fleet(count: int, rng: random.Random) -> list[Host]:
    """Hosts in 10.20.0.0/16 (and fd00:20::/64); host 0 is the monitoring server, host 1 the
    bastion, the rest take roles round-robin."""
    hosts = []
    for i in range(count):
        role = "monitoring" if i == 0 else "bastion" if i == 1 else ROLES[i % len(ROLES)]
        third, fourth = divmod(i, 200)
        hosts.append(
            Host(
                name=f"{role}-{i:03d}",
                ip=f"10.20.{10 + third}.{10 + fourth}",
                ipv6=f"fd00:20::{i + 16:x}",
                mac="02-42-" + "-".join(f"{rng.randrange(256):02x}" for _ in range(4)),
                agent_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                host_id=f"{rng.getrandbits(128):032x}",
                role=role,
            )
        )
    return hosts


class EventFactory:
    """Builds Defend documents; keeps per-host sequence numbers and process entity ids stable."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sequence = 0
        self.pids: dict[tuple[str, str], int] = {}

    def _pid(self, host: Host, process: Process) -> int:
        key = (host.name, process.executable)
        if key not in self.pids:
            self.pids[key] = self.rng.randrange(300, 4_000_000)
        return self.pids[key]

    def connection(
        self,
        host: Host,
        process: Process,
        at: datetime,
        *,
        dest_ip: str,
        dest_port: int,
        transport: str = "tcp",
        action: str = "connection_attempted",
        source_ip: str | None = None,
        source_port: int | None = None,
        ingest_lag: float | None = None,
        probe: str | None = None,
    ) -> dict[str, object]:
        """One network event. For connection_accepted, `dest_*` is the local listening side."""
        rng = self.rng
        self.sequence += 1
        lag = ingest_lag if ingest_lag is not None else rng.uniform(0.4, 4.0)
        ingested = at + timedelta(seconds=lag)
        v6 = ":" in dest_ip
        local_ip = host.ipv6 if v6 else host.ip
        src_ip = source_ip or local_ip
        src_port = source_port if source_port is not None else rng.randrange(32768, 60999)
        direction = "ingress" if action == "connection_accepted" else "egress"
        pid = self._pid(host, process)
        entity = f"{host.host_id[:8]}-{pid}-{process.name}"
        event: dict[str, object] = {
            "@timestamp": format_datetime(at),
            "agent": {
                "id": host.agent_id,
                "type": "endpoint",
                "version": AGENT_VERSION,
            },
            "data_stream": {
                "dataset": "endpoint.events.network",
                "namespace": "default",
                "type": "logs",
            },
            "destination": {"address": dest_ip, "ip": dest_ip, "port": dest_port},
            "source": {"address": src_ip, "ip": src_ip, "port": src_port},
            "ecs": {"version": "8.10.0"},
            "elastic": {"agent": {"id": host.agent_id}},
            "event": {
                "action": action,
                "agent_id_status": "verified",
                "category": ["network"],
                "created": format_datetime(at),
                "dataset": "endpoint.events.network",
                "id": f"{rng.getrandbits(64):016X}",
                "ingested": format_datetime(ingested),
                "kind": "event",
                "module": "endpoint",
                "outcome": "unknown",
                "sequence": self.sequence,
                "type": ["start"],
            },
            "group": {"id": "0" if process.user == "root" else "1000", "name": process.user},
            "host": {
                "architecture": "x86_64",
                "hostname": host.name,
                "id": host.host_id,
                "ip": [host.ip, host.ipv6],
                "mac": [host.mac],
                "name": host.name,
                "os": {
                    "Ext": {"variant": "Ubuntu"},
                    "family": "ubuntu",
                    "full": "Ubuntu 22.04.4",
                    "kernel": "5.15.0-119-generic #129-Ubuntu SMP",
                    "name": "Linux",
                    "platform": "ubuntu",
                    "type": host.os_type,
                    "version": "22.04.4",
                },
            },
            "message": "Endpoint network event",
            "network": {
                "direction": direction,
                "transport": transport,
                "type": "ipv6" if v6 else "ipv4",
            },
            "process": {
                "entity_id": entity,
                "executable": process.executable,
                "name": process.name,
                "pid": pid,
                "Ext": {"ancestry": [f"{host.host_id[:8]}-1-systemd"]},
            },
            "user": {"id": "0" if process.user == "root" else "1000", "name": process.user},
        }
        if probe is not None:
            # How reconwatch's eBPF sensor saw the probe sent (docs/sensor.md): raw, packet,
            # datagram; an ICMP echo has no port.
            event["reconwatch"] = {"probe": probe}
            if transport in ("icmp", "ipv6-icmp"):
                del event["destination"]["port"]  # type: ignore[attr-defined]
        return event
