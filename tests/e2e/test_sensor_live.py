"""The live sensor against a real scanner on loopback: nmap's attempts recorded, then detected."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.slow]

RESULT = "connection_result"  # an attempt's outcome (eBPF only), not an attempt
# SAFETY: loopback only.
NMAP = ["nmap", "-sT", "-Pn", "-n", "-p", "9", "127.0.1.0/24", "127.0.2.0/24"]


def reconwatch(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    code = "from reconwatch.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        **kwargs,  # type: ignore[call-overload]
    )


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the sensor loads eBPF programs / audit rules")
    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed (apt-get install -y nmap)")


def start_sensor(
    tmp_path: Path,
    backend: str,
    *,
    tracer: str | None = None,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen[str], Path, Path]:
    out = tmp_path / "events.ndjson"
    agent_file = tmp_path / "agent-id"
    choice = [] if tracer is None else ["--tracer", tracer]
    code = "from reconwatch.cli.main import main; main()"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "sensor",
            "--backend",
            backend,
            "--output",
            str(out),
            "--agent-id-file",
            str(agent_file),
            *choice,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    for line in proc.stderr:
        lines.append(line)
        if "sensor running" in line:
            return proc, out, agent_file
    proc.wait()
    message = "".join(lines)
    if "not permitted" in message or "refuses audit" in message:
        pytest.skip(f"{backend} capture unavailable on this kernel: {message.strip()}")
    pytest.fail(f"sensor did not start (exit {proc.returncode}):\n{message}")


def stop_sensor(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("sensor did not stop within 60 s of SIGTERM")
    assert proc.returncode == 0, err
    return err


def scan_and_collect(tmp_path: Path, backend: str) -> tuple[list[dict], Path, str]:  # type: ignore[type-arg]
    require_root()
    proc, out, agent_file = start_sensor(tmp_path, backend)
    try:
        subprocess.run(NMAP, check=True, capture_output=True, timeout=300)
    finally:  # stopping drains what was queued before (eBPF: ticks; auditd: a marker record)
        summary = stop_sensor(proc)
    print(summary)
    assert "lost" in summary  # the tracer's / kernel's loss is always reported
    docs = [json.loads(line) for line in out.open()]
    return docs, out, agent_file.read_text().strip()


def assert_scan_recorded(docs: list[dict], agent_id: str) -> None:  # type: ignore[type-arg]
    by_exe: dict[str | None, set[str]] = defaultdict(set)
    for d in docs:
        assert d["event"]["action"] in ("connection_attempted", "connection_accepted", RESULT)
        assert d["agent"]["id"] == agent_id
        if d["event"]["action"] == "connection_attempted":  # accepts: other users' servers
            by_exe[d["process"].get("executable")].add(d["destination"]["ip"])
    assert len(by_exe["/usr/bin/nmap"]) >= 500, {k: len(v) for k, v in by_exe.items()}
    nmap_doc = next(d for d in docs if d["process"].get("executable") == "/usr/bin/nmap")
    assert nmap_doc["host"]["os"]["type"] == "linux"
    assert nmap_doc["data_stream"]["dataset"] == "endpoint.events.network"
    assert nmap_doc["destination"]["port"] == 9


def assert_detected(out: Path, agent_id: str) -> None:
    if " detect " not in reconwatch("--help").stdout.replace("│", " "):
        pytest.skip("reconwatch detect not available yet")
    result = reconwatch("detect", str(out), "--rule", "subnet-scanning-seed", "--format", "ndjson")
    assert result.returncode == 0, result.stderr
    alerts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    hits = [a for a in alerts if a.get("process.executable") == "/usr/bin/nmap"]
    assert hits, result.stdout[:2000]
    hostname = os.uname().nodename
    assert hostname in json.dumps(hits[0]["Esql.host_name_values"])
    assert agent_id in json.dumps(hits[0]["Esql.agent_id_values"])


def test_ebpf_sensor_records_nmap_subnet_scan(tmp_path: Path) -> None:
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed (apt-get install -y bpftrace)")
    docs, out, agent_id = scan_and_collect(tmp_path, "ebpf")
    assert_scan_recorded(docs, agent_id)
    nmap_doc = next(d for d in docs if d["process"].get("executable") == "/usr/bin/nmap")
    assert nmap_doc["network"]["transport"] == "tcp"
    assert nmap_doc["process"]["args"][:2] == ["nmap", "-sT"]
    refused = {
        d["destination"]["ip"]
        for d in docs
        if d["event"]["action"] == RESULT
        and d["event"]["reason"] == "refused"
        and d["process"].get("executable") == "/usr/bin/nmap"
    }
    assert len(refused) >= 500  # port 9 is closed on every loopback address: RST
    assert_detected(out, agent_id)


def test_auditd_sensor_records_nmap_subnet_scan(tmp_path: Path) -> None:
    if shutil.which("auditctl") is None:
        pytest.skip("auditctl is not installed (apt-get install -y auditd)")
    if os.geteuid() == 0:
        status = subprocess.run(["auditctl", "-s"], capture_output=True, text=True, check=False)
        if status.returncode != 0:
            pytest.skip(f"the kernel refuses audit requests: {status.stderr.strip()}")
    docs, out, agent_id = scan_and_collect(tmp_path, "auditd")
    assert_scan_recorded(docs, agent_id)
    assert_detected(out, agent_id)


# SAFETY: loopback only: a raw SYN sweep and an ICMP echo sweep of 512 addresses each. The
# auditd backend sees a raw socket's sends only once its per-socket rule is in, some
# milliseconds after socket() (kauditd and the sensor must be scheduled): at full speed on
# loopback nmap sends most of its 512 SYNs within that time on a loaded host (192 of 512 seen
# once at load average 16), so it is paced here, as fping paces itself (-i 1).
RAW_SWEEPS = {
    "/usr/bin/nmap": [
        *["nmap", "-sS", "-Pn", "-n", "-p", "9", "--max-rate", "2000"],
        *["127.0.1.0/24", "127.0.2.0/24"],
    ],
    "/usr/bin/fping": ["fping", "-q", "-r", "0", "-i", "1", "-g", "127.0.5.0", "127.0.6.255"],
}


def test_auditd_sensor_records_raw_sends_of_nmap_and_fping(tmp_path: Path) -> None:
    """What audit can see of raw probes: the destination each raw sendto() names, attributed to
    its process, once per destination; no port (it is in the packet, which audit never sees)."""
    require_root()
    if shutil.which("auditctl") is None or shutil.which("fping") is None:
        pytest.skip("auditctl and fping are needed (scripts/install-system-deps.sh)")
    status = subprocess.run(["auditctl", "-s"], capture_output=True, text=True, check=False)
    if status.returncode != 0:
        pytest.skip(f"the kernel refuses audit requests: {status.stderr.strip()}")
    proc, out, agent_file = start_sensor(tmp_path, "auditd")
    try:
        for command in RAW_SWEEPS.values():
            subprocess.run(command, check=False, capture_output=True, timeout=120)
    finally:  # the sensor reads up to a marker it logs through audit's queue on stop
        summary = stop_sensor(proc)
    rules = subprocess.run(["auditctl", "-l"], capture_output=True, text=True, check=False)
    assert "reconwatch" not in rules.stdout  # every rule it added, per socket too, is gone
    docs = [json.loads(line) for line in out.open()]
    raw = [d for d in docs if d.get("reconwatch", {}).get("probe") == "raw"]
    for executable, transport in (("/usr/bin/nmap", None), ("/usr/bin/fping", "icmp")):
        mine = [d for d in raw if d["process"].get("executable") == executable]
        # the first sends can precede the rule the sensor adds for the new socket
        assert len({d["destination"]["ip"] for d in mine}) >= 480, (executable, summary)
        assert len(mine) == len({d["destination"]["ip"] for d in mine})  # once each
        assert {d["network"].get("transport") for d in mine} == {transport}
        assert all("port" not in d["destination"] for d in mine)
        assert {d["user"]["name"] for d in mine} == {"root"}
        assert mine[0]["process"]["args"][0] == executable.rsplit("/", 1)[1]
    assert "raw-socket destinations" in summary and "/usr/bin/nmap" in summary, summary
    raw_file = tmp_path / "raw.ndjson"
    raw_file.write_text("".join(json.dumps(d) + "\n" for d in raw))
    # the seed rule alerts on nmap's raw sweep alone
    assert_detected(raw_file, agent_file.read_text().strip())


def test_sensor_refuses_without_an_output(tmp_path: Path) -> None:
    result = reconwatch("sensor", "--agent-id-file", str(tmp_path / "id"))
    assert result.returncode == 2
    assert "choose exactly one output" in result.stderr
    assert "Traceback" not in result.stderr


UDP_CLIENT = """
import socket
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.sendto(b"x", ("127.0.3.1", 9))
a.sendto(b"x", ("127.0.3.1", 9))  # the same destination again: reported once
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b.connect(("127.0.3.2", 9))
b2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b2.connect(("127.0.3.2", 9))  # connect() is folded with sendto() too
c = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
for _ in range(3):
    c.sendto(b"x", ("::1", 9))
t = socket.socket()
t.setblocking(False)
t.connect_ex(("127.0.3.3", 9))
"""


def test_ebpf_sensor_records_udp_destinations_once_and_tcp(tmp_path: Path) -> None:
    require_root()
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed (apt-get install -y bpftrace)")
    proc, out, _ = start_sensor(tmp_path, "ebpf")
    try:
        client = subprocess.Popen([sys.executable, "-c", UDP_CLIENT])
        assert client.wait(timeout=60) == 0
    finally:
        stop_sensor(proc)
    seen = [
        (d["network"].get("transport"), d["destination"]["ip"])
        for d in map(json.loads, out.open())
        if d["process"]["pid"] == client.pid and d["event"]["action"] != RESULT
    ]
    assert sorted(seen) == [
        ("tcp", "127.0.3.3"),
        ("udp", "127.0.3.1"),
        ("udp", "127.0.3.2"),
        ("udp", "::1"),
    ]


def test_watch_alerts_on_a_live_scan_while_the_sensor_runs(tmp_path: Path) -> None:
    """The sensor's file followed by `reconwatch watch`: the alert comes while the sensor is
    still capturing, at the 251st address, not at the next scheduled run."""
    require_root()
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed (apt-get install -y bpftrace)")
    sensor, out, _agent_file = start_sensor(tmp_path, "ebpf")
    code = "from reconwatch.cli.main import main; main()"
    out.touch()
    watch = subprocess.Popen(
        [sys.executable, "-c", code, "watch", "--rule", "subnet-scanning", str(out), "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        subprocess.run(NMAP, check=True, capture_output=True, timeout=300)
        assert watch.stdout is not None
        ready, _, _ = select.select([watch.stdout], [], [], 60)
        assert ready, "no alert while the sensor was running"
        alert = json.loads(watch.stdout.readline())
        assert sensor.poll() is None  # still capturing
    finally:
        watch.send_signal(signal.SIGINT)
        watch.wait(timeout=60)
        stop_sensor(sensor)
    assert alert["process.executable"] == "/usr/bin/nmap"
    assert alert["Esql.destination_ip_count_distinct"] == 251
    assert alert["reconwatch.detection.path"] == "stream"
    assert os.uname().nodename in json.dumps(alert["Esql.host_name_values"])


# A connection_attempted line of the old protocol; only ever text inside a path, never traffic.
FORGED = b"C\t1\t4242\t0\t4\t127.0.0.1\t0\t127.66.0.1\t22\tforged"
RENAMED = b"\nC\t1\t4243\t0\t4"  # a 15-byte comm, the most PR_SET_NAME takes
RENAMER = """
import ctypes, socket, sys
ctypes.CDLL(None).prctl(15, {name!r}, 0, 0, 0)  # PR_SET_NAME
socket.create_connection(("127.0.0.1", int(sys.argv[1]))).close()
"""


def test_ebpf_sensor_takes_separators_and_undecodable_bytes_as_data(tmp_path: Path) -> None:
    """The real tracer and sensor: an exec path holding a newline, tabs and a byte that is not
    UTF-8, and a comm holding separators, each stay inside their own event."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the sensor loads eBPF programs")
    bash = shutil.which("bash")
    if shutil.which("bpftrace") is None or bash is None:
        pytest.skip("bpftrace (apt-get install -y bpftrace) and bash are needed")
    folder = os.path.join(os.fsencode(tmp_path), b"x\n" + FORGED + b"\xff")
    os.mkdir(folder)
    exe = os.path.join(folder, b"bash")
    assert len(exe) < 200, "the tracer prints 199 bytes of an exec path"
    shutil.copy(bash, exe)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    proc, out, _ = start_sensor(tmp_path, "ebpf")
    try:
        shell = subprocess.Popen([exe, "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port}"])
        renamer = subprocess.Popen([sys.executable, "-c", RENAMER.format(name=RENAMED), str(port)])
        assert shell.wait(timeout=60) == 0 and renamer.wait(timeout=60) == 0
    finally:
        summary = stop_sensor(proc)
        listener.close()
    docs = [json.loads(line) for line in out.open()]
    assert "unparsable" not in summary and "Traceback" not in summary, summary
    # (an accept by another process on this host has no destination address)
    assert not [d for d in docs if d["destination"].get("ip") == "127.66.0.1"]
    assert not [d for d in docs if d["process"]["pid"] in (4242, 4243)]
    mine = {d["process"]["pid"]: d for d in docs if d["destination"].get("port") == port}
    assert set(mine) == {shell.pid, renamer.pid}, mine
    assert mine[shell.pid]["process"]["executable"] == exe.decode("utf-8", "replace")
    assert mine[shell.pid]["process"]["name"] == "bash"
    assert mine[shell.pid]["process"]["entity_id"]
    assert mine[renamer.pid]["process"]["name"] == RENAMED.decode()
