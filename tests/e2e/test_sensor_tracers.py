"""The two eBPF tracers (the core collector and bpftrace) give the same documents for one live
workload, and the sensor falls back to bpftrace, saying so, when the core cannot be built."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from test_sensor_live import start_sensor, stop_sensor
from test_sensor_probes import NO_NEIGHBOUR, namespace  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.root, pytest.mark.slow]

# SAFETY: run inside the test's namespace: its loopback, its veth (NO_NEIGHBOUR answers no ARP:
# the raw SYN waits for a neighbour that never resolves) and 10.99.0.1, which it has no route to.
WORKLOAD = f"""
import os, socket, struct, time
print(os.getpid(), flush=True)

def checksum(data):
    data += b"\\0" * (len(data) % 2)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF

def syn(src, dst, sport, dport):
    header = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 2, 1024, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, 20)
    return header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]

# a fixed port (the namespace's own loopback is free), so both runs' documents are comparable
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", 8080)); server.listen()
client = socket.socket(); client.connect(("127.0.0.1", 8080))  # established, and accepted
accepted, _ = server.accept()
for port in (1, 2, 3):  # refused within the call: attempt and outcome together
    s = socket.socket(); s.setblocking(False); s.connect_ex(("127.0.0.1", port)); s.close()
six = socket.socket(socket.AF_INET6); six.connect_ex(("::1", 4))  # IPv6, refused
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.sendto(b"x", ("127.0.0.2", 53)); udp.connect(("127.0.0.3", 123))
unrouted = socket.socket(); unrouted.connect_ex(("10.99.0.1", 80))  # ENETUNREACH, before SYN_SENT
echo = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
request = struct.pack("!BBHHH", 8, 0, 0, 0x1234, 1) + b"ping"
echo.sendto(request[:2] + struct.pack("!H", checksum(request)) + request[4:], ("127.0.0.4", 0))
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
raw.sendto(syn("127.0.0.1", "127.0.0.1", 40000, 5), ("127.0.0.1", 0))  # answered by a RST
raw.sendto(syn("10.203.0.1", "{NO_NEIGHBOUR}", 40001, 6), ("{NO_NEIGHBOUR}", 0))
time.sleep(0.5)  # the answers
"""
# Differ from run to run: times, ids, process ids, ephemeral ports, durations.
VOLATILE = {"@timestamp", "event.id", "event.created", "event.ingested", "event.duration",
            "process.pid", "process.entity_id", "process.start", "process.parent.pid",
            "process.parent.entity_id", "source.port", "agent.id", "host.id"}  # fmt: skip


def flat(doc: dict[str, object], prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def normalized(doc: dict[str, object]) -> str:
    fields = flat(doc)
    kept = {k: v for k, v in fields.items() if k not in VOLATILE}
    kept["source.port"] = "port" if fields.get("source.port") else None  # present or not
    if fields["event.action"] == "connection_accepted":  # the peer's ephemeral port
        kept["destination.port"] = "port" if fields.get("destination.port") else None
    return json.dumps(kept, sort_keys=True)


def record(tmp_path: Path, netns: str, tracer: str) -> tuple[Counter[str], str]:
    run_dir = tmp_path / tracer
    run_dir.mkdir()
    sensor, out, _ = start_sensor(run_dir, "ebpf", tracer=tracer)
    try:
        client = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", WORKLOAD],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        summary = stop_sensor(sensor)
    pid = int(client.stdout.split()[0])
    docs = [d for d in map(json.loads, out.open()) if d["process"]["pid"] == pid]
    return Counter(map(normalized, docs)), summary


def test_both_tracers_give_the_same_documents_for_the_same_workload(
    tmp_path: Path,
    namespace: str,  # noqa: F811 (the fixture)
) -> None:
    core, core_summary = record(tmp_path, namespace, "core")
    old, old_summary = record(tmp_path, namespace, "bpftrace")
    # The kernel's host unreachable for the SYN to the unresolved neighbour comes when ARP gives
    # up (~3 s), as the sensor stops: one run may see it and the other not. Compared apart.
    late = [d for d in set(core) | set(old) if _late_unreachable(d)]
    assert _without(core, late) == _without(old, late), (
        core - old,
        old - core,
        core_summary,
        old_summary,
    )
    kinds = Counter(
        (d["event.action"], d.get("network.transport"), d.get("reconwatch.probe"))
        for d in map(json.loads, core)
    )
    # what the workload did: 5 TCP attempts (IPv4, IPv6, unrouted) with results, an accept, 2
    # UDP destinations, 3 raw probes (1 to an unresolved neighbour), 2 or 3 answers
    assert kinds[("connection_attempted", "tcp", "connect")] == 6, kinds
    assert kinds[("connection_result", "tcp", "connect")] == 6, kinds
    assert kinds[("connection_accepted", "tcp", None)] == 1, kinds
    assert kinds[("connection_attempted", "udp", "connect")] == 2, kinds
    assert kinds[("connection_attempted", "tcp", "raw")] == 2, kinds
    assert kinds[("connection_attempted", "icmp", "raw")] == 1, kinds
    # the RST; the SYN to the unresolved neighbour is answered by the kernel's ICMP host
    # unreachable once ARP gives up (~3 s), which comes while the sensor stops, or after it
    tcp = {
        (d["destination.ip"], d["event.reason"])
        for d in map(json.loads, core)
        if (d["event.action"], d.get("network.transport"), d.get("reconwatch.probe"))
        == ("connection_result", "tcp", "raw")
    }
    assert ("127.0.0.1", "refused") in tcp and tcp <= {
        ("127.0.0.1", "refused"),
        (NO_NEIGHBOUR, "unreachable"),
    }, tcp
    assert kinds[("connection_result", "icmp", "raw")] == 1, kinds
    assert "lost 0 events" in core_summary and "tracer core" in core_summary
    assert "tracer bpftrace" in old_summary


def _late_unreachable(doc: str) -> bool:
    d = json.loads(doc)
    return (
        d["event.action"],
        d.get("reconwatch.probe"),
        d.get("destination.ip"),
        d.get("event.reason"),
    ) == ("connection_result", "raw", NO_NEIGHBOUR, "unreachable")


def _without(docs: Counter[str], dropped: list[str]) -> Counter[str]:
    return Counter({d: n for d, n in docs.items() if d not in dropped})


def test_without_the_toolchain_the_sensor_falls_back_to_bpftrace(tmp_path: Path) -> None:
    """No clang, bpftool or cc on the PATH and nothing cached: one line says so, bpftrace runs."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bpftrace", "mount"):
        found = shutil.which(name)
        if found is None:
            pytest.skip(f"{name} is not installed")
        (tools / name).symlink_to(found)
    env = dict(os.environ, PATH=str(tools), RECONWATCH_BPFCORE_CACHE=str(tmp_path / "cache"))
    sensor, out, _ = start_sensor(tmp_path, "ebpf", env=env)
    try:
        subprocess.run(
            ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.99/9"], check=False, capture_output=True
        )  # SAFETY: loopback only
    finally:
        summary = stop_sensor(sensor)
    assert "tracer bpftrace (own collector unavailable: clang-14" in summary
    assert any(json.loads(line)["destination"].get("ip") == "127.0.0.99" for line in out.open()), (
        summary
    )
