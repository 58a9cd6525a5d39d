"""Deterministic Elastic-Defend-shaped network events (~1.3 KB each): fleet traffic plus planted scans."""

from __future__ import annotations

import argparse
import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2024, 1, 1, tzinfo=UTC)
BENIGN = [
    "/usr/sbin/sshd",
    "/usr/bin/curl",
    "/usr/lib/systemd/systemd-resolved",
    "/usr/bin/python3",
    "/usr/sbin/chronyd",
]


def event(rng: random.Random, i: int, hosts: int) -> dict[str, object]:
    h = rng.randrange(hosts)
    scan = i % 997 < 3  # planted scanners: a few hosts sweeping a /16
    exe = "/tmp/.x/scan" if scan else rng.choice(BENIGN)
    dst = (
        f"10.{(h % 4) + 1}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        if scan
        else f"172.16.{rng.randrange(4)}.{rng.randrange(1, 20)}"
    )
    ts = START + timedelta(milliseconds=i * 7)
    host_id = f"{h:08x}-5d2c-4d3b-9b6f-{h:012x}"
    return {
        "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
        "agent": {
            "id": host_id,
            "type": "endpoint",
            "version": "8.15.0",
            "ephemeral_id": f"e{h:07x}",
        },
        "data_stream": {
            "dataset": "endpoint.events.network",
            "namespace": "default",
            "type": "logs",
        },
        "destination": {
            "address": dst,
            "ip": dst,
            "port": rng.randrange(1, 65535) if scan else 443,
        },
        "source": {
            "address": f"192.168.{h % 256}.{h // 256 % 256}",
            "ip": f"192.168.{h % 256}.{h // 256 % 256}",
            "port": rng.randrange(32768, 60999),
        },
        "ecs": {"version": "8.10.0"},
        "elastic": {"agent": {"id": host_id}},
        "event": {
            "action": "connection_attempted",
            "agent_id_status": "verified",
            "category": ["network"],
            "created": ts.isoformat().replace("+00:00", "Z"),
            "dataset": "endpoint.events.network",
            "id": f"MzQ{i:012d}",
            "kind": "event",
            "module": "endpoint",
            "outcome": "unknown",
            "sequence": i,
            "type": ["start"],
        },
        "group": {"Ext": {"real": {"id": 0, "name": "root"}}, "id": 0, "name": "root"},
        "host": {
            "architecture": "x86_64",
            "hostname": f"host-{h}",
            "id": host_id,
            "ip": [f"192.168.{h % 256}.{h // 256 % 256}", "fe80::1"],
            "mac": ["00-16-3e-00-00-01"],
            "name": f"host-{h}",
            "os": {
                "Ext": {"variant": "Ubuntu"},
                "family": "ubuntu",
                "full": "Ubuntu 22.04.4",
                "kernel": "5.15.0-105-generic",
                "name": "Linux",
                "platform": "ubuntu",
                "type": "linux",
                "version": "22.04.4",
            },
        },
        "message": "Endpoint network event",
        "network": {"direction": "egress", "transport": "tcp", "type": "ipv4"},
        "process": {
            "entity_id": f"NzY{h:08d}{i % 50:04d}",
            "executable": exe,
            "name": exe.rsplit("/", 1)[-1],
            "pid": 1000 + i % 30000,
            "Ext": {"ancestry": [f"anc{h}a", f"anc{h}b"]},
        },
        "user": {"Ext": {"real": {"id": 0, "name": "root"}}, "id": 0, "name": "root"},
    }


def generate(path: Path, count: int, seed: int = 7, hosts: int = 200) -> Path:
    """Write `count` events as gzip NDJSON (cached: an existing file of that name is reused)."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", compresslevel=1) as fh:
        for i in range(count):
            fh.write(json.dumps(event(rng, i, hosts), separators=(",", ":")) + "\n")
    tmp.rename(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    print(
        generate(args.out / f"events-{args.events}-{args.seed}.ndjson.gz", args.events, args.seed)
    )


if __name__ == "__main__":
    main()
