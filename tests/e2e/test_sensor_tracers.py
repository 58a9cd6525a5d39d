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
from typing import Any

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


def workload_docs(
    run_dir: Path, netns: str, code: str, tracer: str, env: dict[str, str] | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Run `code` (which prints its pid first) in the namespace under a sensor using `tracer`:
    the documents of that process, and the sensor's summary."""
    sensor, out, _ = start_sensor(run_dir, "ebpf", tracer=tracer, env=env)
    try:
        client = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
    finally:
        summary = stop_sensor(sensor)
    pid = int(client.stdout.split()[0])
    return [d for d in map(json.loads, out.open()) if d["process"]["pid"] == pid], summary


def record(tmp_path: Path, netns: str, tracer: str) -> tuple[Counter[str], str]:
    run_dir = tmp_path / tracer
    run_dir.mkdir()
    docs, summary = workload_docs(run_dir, netns, WORKLOAD, tracer)
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


# SAFETY: the test namespace's loopback only. Every packet carries a TCP checksum of zero, so the
# stack drops it once the sensor's receive hook has seen it: nothing connects or replies. The
# "answers" are forged by the workload itself, so when each one arrives is the test's to choose.
ANSWERS = """
import os, socket, struct, time
print(os.getpid(), flush=True)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
SYN, SYNACK, RST = 0x02, 0x12, 0x14

def send(src, dst, sport, dport, flags):
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 0, 0, 64, 6, 0, socket.inet_aton(src),
                     socket.inet_aton(dst))
    raw.sendto(ip + struct.pack("!HHIIBBHHH", sport, dport, 0, 0, 5 << 4, flags, 1024, 0, 0),
               (dst, 0))

for n in (21, 22, 23, 25):
    send("127.0.0.1", f"127.0.0.{n}", 40000, n, SYN)
time.sleep(0.4)
send("127.0.0.21", "127.0.0.1", 21, 40000, SYNACK)  # open
send("127.0.0.1", "127.0.0.22", 40000, 22, SYN)  # a retransmission, then its answer
send("127.0.0.22", "127.0.0.1", 22, 40000, RST)
send("127.0.0.24", "127.0.0.1", 24, 40000, SYNACK)  # nothing probed it
send("127.0.0.21", "127.0.0.1", 21, 40001, SYNACK)  # not the probe's source port
time.sleep(3.5)  # past the wait (RECONWATCH_ANSWER_SECONDS=1: at most 2 s)
send("127.0.0.23", "127.0.0.1", 23, 40000, SYNACK)
send("127.0.0.1", "127.0.0.25", 40000, 25, SYN)  # sent again after its wait: a new probe
send("127.0.0.25", "127.0.0.1", 25, 40000, RST)
time.sleep(0.5)
"""


def test_the_core_tracer_matches_answers_to_the_probes_waiting_for_them(
    tmp_path: Path,
    namespace: str,  # noqa: F811 (the fixture)
) -> None:
    """Answers are matched in the loader (the kernel only filters them): an answer gets its
    probe's process, its first send's time and one result; one to nothing probed, to another
    source port, or after the wait is not a result, and a probe sent again after its wait is
    timed from the new send."""
    env = dict(os.environ, RECONWATCH_ANSWER_SECONDS="1")
    docs, summary = workload_docs(tmp_path, namespace, ANSWERS, "core", env)
    results = {
        d["destination"]["ip"]: d for d in docs if d["event"]["action"] == "connection_result"
    }
    assert set(results) == {"127.0.0.21", "127.0.0.22", "127.0.0.25"}, (results, summary)
    reasons = {ip: (d["event"]["reason"], d["destination"]["port"]) for ip, d in results.items()}
    assert reasons == {
        "127.0.0.21": ("open", 21),
        "127.0.0.22": ("refused", 22),
        "127.0.0.25": ("refused", 25),
    }
    assert all(d["reconwatch"]["probe"] == "raw" for d in results.values())
    # from the first send, 0.4 s before (the retransmission did not restart it)
    for ip in ("127.0.0.21", "127.0.0.22"):
        assert 0.35e9 <= results[ip]["event"]["duration"] < 3e9, results[ip]
    assert results["127.0.0.25"]["event"]["duration"] < 0.35e9, results["127.0.0.25"]
    assert "tracer core" in summary and "lost 0 events" in summary


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
