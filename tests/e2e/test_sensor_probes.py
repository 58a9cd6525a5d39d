"""The live eBPF sensor and what a probe led to: outcomes of TCP attempts (established, refused,
timed out, unreachable, abandoned), each attributed to the process that made the attempt."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_sensor_live import reconwatch, require_root, start_sensor, stop_sensor

pytestmark = [pytest.mark.root, pytest.mark.slow]

# SAFETY: 127.0.0.1 and addresses of a veth pair inside a namespace this test creates and deletes.
SILENT = "10.203.0.3"  # a permanent neighbour entry: the SYNs leave and nothing answers
ABANDONED = "10.203.0.4"  # silent too, its own address: each (address, reason) has one result
NO_NEIGHBOUR = "10.203.0.2"  # nothing answers ARP: the kernel reports the host unreachable

CLIENT = f"""
import os, select, socket, sys
print(os.getpid(), flush=True)
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
opened = socket.socket(); opened.connect(server.getsockname())
closed = socket.socket(); closed.bind(("127.0.0.1", 0))  # bound, not listening: RST
refused = socket.socket()
assert refused.connect_ex(closed.getsockname()) == 111
pending = []
for address, syncnt in (("{SILENT}", 1), ("{NO_NEIGHBOUR}", 6)):
    s = socket.socket(); s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, syncnt)  # timeout after ~3 s, not ~2 min
    s.connect_ex((address, 9))
    pending.append(s)
abandoned = socket.socket(); abandoned.setblocking(False)
abandoned.connect_ex(("{ABANDONED}", 10)); abandoned.close()
for s in pending:
    select.select([], [s], [], 30)
    print(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), flush=True)
"""


# SAFETY: loopback only. bash's /dev/tcp connects once, to a closed port, and exits.
SHORT_LIVED_TARGET = "127.0.0.77"
SHORT_LIVED = f"exec 3<>/dev/tcp/{SHORT_LIVED_TARGET}/9"
# SAFETY: loopback only. A client's retry loop: 50 connects to one closed port.
RETRY_TARGET = "127.0.0.88"
RETRY_LOOP = f"""
import socket, time
start = time.monotonic()
for _ in range(50):
    s = socket.socket()
    assert s.connect_ex(("{RETRY_TARGET}", 9)) == 111
    s.close()
print(time.monotonic() - start)
"""
AS_NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def namespace() -> Iterator[str]:
    require_root()
    if shutil.which("ip") is None or shutil.which("bpftrace") is None:
        pytest.skip("needs iproute2 and bpftrace")
    name = f"rwprobes{os.getpid()}"
    try:
        ip("netns", "add", name)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.decode().strip()}")
    try:
        ip("-n", name, "link", "set", "lo", "up")
        ip("-n", name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
        ip("-n", name, "addr", "add", "10.203.0.1/24", "dev", "va")
        ip("-n", name, "link", "set", "va", "up")
        ip("-n", name, "link", "set", "vb", "up")
        ip("-n", name, "neigh", "add", SILENT, "lladdr", "02:00:00:00:00:03", "dev", "va")
        ip("-n", name, "neigh", "add", ABANDONED, "lladdr", "02:00:00:00:00:04", "dev", "va")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def _client_in(
    namespace: str, code: str, tmp_path: Path, timeout: int
) -> tuple[subprocess.CompletedProcess[str], Path, str]:
    """Run a Python client in the namespace while the eBPF sensor records: (the client's
    result, the sensor's output file, its summary)."""
    sensor, out, _ = start_sensor(tmp_path, "ebpf")
    try:
        client = subprocess.run(
            ["ip", "netns", "exec", namespace, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
    finally:
        summary = stop_sensor(sensor)
    return client, out, summary


def test_each_tcp_attempt_has_its_outcome_with_its_process(tmp_path: Path, namespace: str) -> None:
    client, out, summary = _client_in(namespace, CLIENT, tmp_path, timeout=120)
    pid_line, *errors = client.stdout.split()
    assert errors == ["110", "113"], client.stdout  # what the client itself saw: the ground truth
    docs = [d for d in map(json.loads, out.open()) if d["process"]["pid"] == int(pid_line)]
    attempts = {
        (d["destination"]["ip"], d["destination"]["port"])
        for d in docs
        if d["event"]["action"] == "connection_attempted"
    }
    outcomes = [d for d in docs if d["event"]["action"] == "connection_result"]
    results = {(d["destination"]["ip"], d["event"]["reason"]): d for d in outcomes}
    assert (SILENT, 9) in attempts and (NO_NEIGHBOUR, 9) in attempts, attempts
    assert len(attempts) == 5, attempts
    assert len(results) == len(outcomes), outcomes  # no two results for one (address, reason)
    assert sorted(results) == sorted(
        [
            ("127.0.0.1", "established"),
            ("127.0.0.1", "refused"),
            (SILENT, "timeout"),
            (NO_NEIGHBOUR, "unreachable"),
            (ABANDONED, "aborted"),
        ]
    ), (sorted(results), summary)
    timeout = results[(SILENT, "timeout")]
    assert timeout["event"]["outcome"] == "failure" and timeout["event"]["type"] == ["end"]
    assert timeout["reconwatch"] == {"probe": "connect", "error": "ETIMEDOUT"}
    # TCP_SYNCNT=1: the SYN and one retry (1 s apart), given up 2 s later
    assert timeout["event"]["duration"] >= 2_000_000_000
    assert results[("127.0.0.1", "established")]["event"]["outcome"] == "success"
    assert results[(NO_NEIGHBOUR, "unreachable")]["reconwatch"]["error"] == "EHOSTUNREACH"
    for doc in results.values():
        assert doc["process"]["executable"] == os.path.realpath(sys.executable)
        assert doc["process"]["args"][-2] == "-c"
        assert doc["source"]["port"] > 0 and doc["network"]["transport"] == "tcp"
    entity_ids = {d["process"]["entity_id"] for d in docs}
    assert len(entity_ids) == 1  # attempts and outcomes join on the process
    assert "attempt outcomes" in summary


def run(*command: str, check: bool = True) -> str:
    done = subprocess.run(command, check=check, capture_output=True, text=True, timeout=120)
    return done.stdout


def nmap_answered(grepable: str, scanned: set[int]) -> set[int]:
    """The ports nmap itself got an answer from (open or closed, not filtered), from its `-oG`
    output: the ground truth for which probes had answers to record. On a shared host ICMP
    errors are rate-limited machine-wide (net.ipv4.icmp_msgs_per_sec), so a UDP probe to a
    closed loopback port may get no answer while other tests scan."""
    listed: dict[int, str] = {}
    ignored = None
    for line in grepable.splitlines():
        if "\tPorts: " not in line:
            continue
        for field in line.split("\t"):
            if field.startswith("Ports: "):
                for item in field[len("Ports: ") :].split(","):
                    parts = item.strip().split("/")
                    if len(parts) > 1 and parts[0].isdigit():
                        listed[int(parts[0])] = parts[1]
            if field.startswith("Ignored State: "):
                ignored = field.split()[2]
    answered = {port for port, state in listed.items() if state in ("open", "closed")}
    if ignored in ("open", "closed"):
        answered |= scanned - set(listed)
    return answered


GREP = ["-oG", "-"]  # nmap's greppable report on stdout: what it saw of each port


def test_raw_and_icmp_probes_are_attempts_of_their_process(tmp_path: Path, namespace: str) -> None:
    """nmap -sS/-sU (raw IPv4 sockets, IP_HDRINCL), ping through a raw socket (root) and through
    ICMP datagram sockets (a namespace whose ping_group_range allows them), IPv4 and IPv6."""
    for tool in ("nmap", "ping"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh)")
    in_ns = ["ip", "netns", "exec", namespace]
    run(*in_ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 0")  # root may use ping sockets
    listener = socket.create_server(("127.0.0.1", 0))  # the one open port of the SYN scan
    open_port = listener.getsockname()[1]
    sensor, out, _ = start_sensor(tmp_path, "ebpf")
    try:
        syn_scan = run("nmap", "-sS", "-n", "-Pn", "-p", f"1-50,{open_port}", "127.0.0.1", *GREP)
        # a short-lived process of another user: gone long before the sensor reads its exec
        run(*AS_NOBODY, "bash", "-c", SHORT_LIVED, check=False)
        retry_seconds = float(run(sys.executable, "-c", RETRY_LOOP))
        udp_scan = run("nmap", "-sU", "-n", "-Pn", "-p", "53,161", "127.0.0.1", *GREP)
        run("ping", "-c", "1", "-W", "1", "127.0.0.1")
        run(*in_ns, "ping", "-c", "1", "-W", "1", "127.0.0.2")
        run(*in_ns, "ping", "-6", "-c", "1", "-W", "1", "::1")
    finally:
        summary = stop_sensor(sensor)
        listener.close()
    every = [json.loads(line) for line in out.open()]
    docs = [d for d in every if d["event"]["action"] == "connection_attempted"]
    results = [d for d in every if d["event"]["action"] == "connection_result"]

    def probes(argument: str, transport: str) -> list[dict]:  # type: ignore[type-arg]
        return [
            d
            for d in docs
            if argument in d["process"].get("args", [])
            and d["network"].get("transport") == transport
            and d.get("reconwatch", {}).get("probe") in ("raw", "datagram")
        ]

    syn = probes("-sS", "tcp")
    assert {d["destination"]["port"] for d in syn} >= set(range(1, 51)), summary
    assert len(syn) == len({d["destination"]["port"] for d in syn})  # once per port
    assert {d["reconwatch"]["tcp_flags"] for d in syn} == {"S"}
    assert {d["reconwatch"]["probe"] for d in syn} == {"raw"}
    assert {d["process"]["executable"] for d in syn} == {"/usr/bin/nmap"}
    # run by this test's Python: process.parent.executable is that interpreter
    assert {d["process"]["parent"]["executable"] for d in syn} == {os.path.realpath(sys.executable)}
    assert {d["user"]["name"] for d in syn} == {"root"}
    assert {d["destination"]["ip"] for d in syn} == {"127.0.0.1"}
    assert {d["destination"]["port"] for d in probes("-sU", "udp")} == {53, 161}
    pings = {
        (d["destination"]["ip"], d["network"]["transport"], d["reconwatch"]["probe"])
        for d in docs
        if d["process"].get("executable") == "/usr/bin/ping"
    }
    # as root outside the namespace ping opens a raw socket (or a datagram one, if this host's
    # ping_group_range lets root); in the namespace it must use ICMP datagram sockets
    assert pings & {("127.0.0.1", "icmp", "raw"), ("127.0.0.1", "icmp", "datagram")}, pings
    assert ("127.0.0.2", "icmp", "datagram") in pings, pings
    assert ("::1", "ipv6-icmp", "datagram") in pings, pings
    echo = next(
        d
        for d in docs
        if d["destination"]["ip"] == "127.0.0.2" and d["network"]["transport"] == "icmp"
    )
    assert echo["reconwatch"]["icmp_type"] == 8 and "port" not in echo["destination"]
    assert "raw/ICMP probes" in summary
    # the answers to the raw probes, as results of nmap's own process (one per port)
    answers = {
        (d["network"]["transport"], d["destination"].get("port")): d
        for d in results
        if d.get("reconwatch", {}).get("probe") == "raw"
        and d["process"].get("executable") == "/usr/bin/nmap"
    }
    assert answers[("tcp", open_port)]["event"]["reason"] == "open", summary
    assert answers[("tcp", open_port)]["event"]["outcome"] == "success"
    syn_answers = {port: d for (t, port), d in answers.items() if t == "tcp" and port != open_port}
    # every answer nmap got is recorded (loopback answers every SYN unless the host drops it)
    answered = nmap_answered(syn_scan, {*range(1, 51), open_port})
    assert open_port in answered and len(answered) >= 45, syn_scan
    assert answered - {open_port} <= set(syn_answers) <= set(range(1, 51)), sorted(syn_answers)
    # nothing listens on 127.0.0.1 for most of 1-50; whatever does answers SYN-ACK
    assert {d["event"]["reason"] for d in syn_answers.values()} <= {"refused", "open"}
    assert sum(d["event"]["reason"] == "refused" for d in syn_answers.values()) >= 45
    for d in syn_answers.values():
        assert d["event"]["type"] == ["end"] and 0 < d["event"]["duration"] < 10**10
        assert d["process"]["entity_id"] in {s["process"]["entity_id"] for s in syn}
    for port in nmap_answered(udp_scan, {53, 161}):  # closed: its ICMP port unreachable came
        assert answers[("udp", port)]["event"]["reason"] in ("refused", "answered"), udp_scan
    # the short-lived process: its args from the tracer, its user by name
    brief = [d for d in every if d["destination"].get("ip") == SHORT_LIVED_TARGET]
    assert brief, summary
    for d in brief:
        assert d["process"]["args"] == ["bash", "-c", SHORT_LIVED]
        assert d["process"]["executable"] == os.path.realpath(shutil.which("bash") or "bash")
        assert d["user"] == {"id": str(pwd.getpwnam("nobody").pw_uid), "name": "nobody"}
    assert {d["event"].get("reason") for d in brief} == {None, "refused"}
    # 50 connects to one closed port, usually in well under a second: the tracer prints the first
    # of each second with its outcome and counts the rest (a loop descheduled on a loaded host
    # spans more of the tracer's 1 s windows: at most one more than the whole seconds it took)
    retries = [d for d in every if d["destination"].get("ip") == RETRY_TARGET]
    attempts = [d for d in retries if d["event"]["action"] == "connection_attempted"]
    assert 1 <= len(attempts) <= 2 + int(retry_seconds), (retry_seconds, summary)
    assert len(retries) == 2 * len(attempts)  # each written attempt has its refused outcome
    assert "repeated connects folded" in summary


# SAFETY: loopback only. Each sweeps 512 addresses for one port (or ICMP echo).
SWEEPS = {
    "-sS": (["nmap", "-sS", "-Pn", "-n", "-p", "9", "127.0.1.0/24", "127.0.2.0/24"], "tcp"),
    "-sU": (["nmap", "-sU", "-Pn", "-n", "-p", "9", "127.0.3.0/24", "127.0.4.0/24"], "udp"),
    "-g": (["fping", "-q", "-r", "0", "-i", "1", "-g", "127.0.5.0", "127.0.6.255"], "icmp"),
}


def test_raw_sweeps_of_512_addresses_are_recorded_and_detected(tmp_path: Path) -> None:
    """nmap -sS, nmap -sU and an fping echo sweep, as the seed rule's scanners: each >= 500
    distinct destinations for its executable with its transport, and the seed rule alerts on the
    events of each sweep alone."""
    require_root()
    for tool in ("bpftrace", "nmap", "fping"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh)")
    sensor, out, _ = start_sensor(tmp_path, "ebpf")
    try:
        for command, _ in SWEEPS.values():
            subprocess.run(command, check=False, capture_output=True, timeout=120)
    finally:
        summary = stop_sensor(sensor)
    docs = [json.loads(line) for line in out.open()]
    for flag, (command, transport) in SWEEPS.items():
        mine = [
            d
            for d in docs
            if flag in d["process"].get("args", [])
            and d["event"]["action"] == "connection_attempted"
        ]
        executable = shutil.which(command[0])
        assert executable is not None
        kept = [
            d
            for d in mine
            if d["process"].get("executable") == os.path.realpath(executable)
            and d["network"].get("transport") == transport
            # fping may use an ICMP datagram socket where ping_group_range lets root
            and d["reconwatch"]["probe"] in ("raw", "datagram" if transport == "icmp" else "raw")
        ]
        assert len({d["destination"]["ip"] for d in kept}) >= 500, (flag, len(kept), summary)
        sweep = tmp_path / f"sweep{flag}.ndjson"
        sweep.write_text("".join(json.dumps(d) + "\n" for d in mine))
        result = reconwatch(
            "detect", str(sweep), "--rule", "subnet-scanning-seed", "--format", "ndjson"
        )
        assert result.returncode == 0, result.stderr
        alerts = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        assert [a["process.executable"] for a in alerts] == [os.path.realpath(executable)], flag


@pytest.fixture
def scanner_and_target() -> Iterator[tuple[str, str]]:
    """Two namespaces this test creates, joined by a veth pair: the scanner's end va
    (10.203.1.1/24) and the target's vb (10.203.1.2/24). Yields (scanner namespace, vb's MAC)."""
    require_root()
    for tool in ("ip", "bpftrace", "masscan", "zmap"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/install-system-deps.sh)")
    scanner, target = f"rwscan{os.getpid()}", f"rwtarget{os.getpid()}"
    try:
        ip("netns", "add", scanner)
        ip("netns", "add", target)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.decode().strip()}")
    try:
        ip(
            "-n",
            scanner,
            "link",
            "add",
            "va",
            "type",
            "veth",
            "peer",
            "name",
            "vb",
            "netns",
            target,
        )
        ip("-n", scanner, "addr", "add", "10.203.1.1/24", "dev", "va")
        ip("-n", target, "addr", "add", "10.203.1.2/24", "dev", "vb")
        for namespace, device in ((scanner, "va"), (target, "vb"), (scanner, "lo"), (target, "lo")):
            ip("-n", namespace, "link", "set", device, "up")
        shown = subprocess.run(
            ["ip", "-n", target, "-j", "link", "show", "vb"],
            capture_output=True,
            text=True,
            check=True,
        )
        yield scanner, json.loads(shown.stdout)[0]["address"]
    finally:
        for namespace in (scanner, target):
            subprocess.run(["ip", "netns", "del", namespace], check=False, capture_output=True)


def test_packet_socket_scanners_are_recorded_with_their_executables(
    tmp_path: Path, scanner_and_target: tuple[str, str]
) -> None:
    """masscan (libpcap's send() of whole frames) and zmap (sendto() on AF_PACKET) inside the
    test's namespaces: their SYNs are `packet` attempts of /usr/bin/masscan and /usr/sbin/zmap."""
    scanner, mac = scanner_and_target
    empty = tmp_path / "blocklist.conf"  # zmap's default one excludes 10.0.0.0/8
    empty.write_text("")
    in_ns = ["ip", "netns", "exec", scanner]
    sensor, out, _ = start_sensor(tmp_path, "ebpf")
    try:
        # SAFETY: 10.203.1.0/24 is the veth link between this test's two namespaces
        masscan = [*in_ns, "masscan", "10.203.1.2", "-p", "1-100", "--rate", "2000"]
        run(*masscan, "-e", "va", "--router-mac", mac, "--wait", "0")
        # One send thread: with several, zmap 2.1.1 aborts about one run in 40 when a thread's
        # share of the targets holds no usable address (zmap/zmap#786, fixed after 2.1.1).
        zmap = [*in_ns, "zmap", "-q", "-T", "1", "-i", "va", "-G", mac, "-p", "80", "-r", "2000"]
        run(*zmap, "--cooldown-time", "0", "-b", str(empty), "10.203.1.0/24")
    finally:
        summary = stop_sensor(sensor)
    every = [json.loads(line) for line in out.open()]
    docs = [
        d
        for d in every
        if d["event"]["action"] == "connection_attempted"
        and d.get("reconwatch", {}).get("probe") == "packet"
    ]
    # nothing listens in the target namespace: its kernel answers each SYN with a RST
    refused: dict[str, set[tuple[str, int]]] = {}
    for d in every:
        if d["event"]["action"] == "connection_result" and d["reconwatch"]["probe"] == "packet":
            assert d["event"]["reason"] == "refused" and d["network"]["transport"] == "tcp"
            key = (d["destination"]["ip"], d["destination"]["port"])
            refused.setdefault(d["process"].get("executable", "?"), set()).add(key)
    assert {("10.203.1.2", port) for port in range(1, 101)} <= refused["/usr/bin/masscan"]
    assert ("10.203.1.2", 80) in refused["/usr/sbin/zmap"]
    by_exe: dict[str, set[tuple[str, int]]] = {}
    for d in docs:
        assert d["network"]["transport"] == "tcp" and d["network"]["type"] == "ipv4"
        key = (d["destination"]["ip"], d["destination"]["port"])
        by_exe.setdefault(d["process"].get("executable", "?"), set()).add(key)
    assert {("10.203.1.2", port) for port in range(1, 101)} <= by_exe["/usr/bin/masscan"], summary
    zmap_ips = {ip_ for ip_, port in by_exe["/usr/sbin/zmap"] if port == 80}
    assert len(zmap_ips) >= 250, (len(zmap_ips), summary)
    syn = {
        d["reconwatch"]["tcp_flags"]
        for d in docs
        if d["process"].get("executable") == "/usr/sbin/zmap"
    }
    assert syn == {"S"}


# SAFETY: loopback only. A process connects, then at once execs bash, which connects too.
BEFORE_EXEC, AFTER_EXEC = "127.0.0.93", "127.0.0.94"
CONNECT_THEN_EXEC = f"""
import os, shutil, socket
s = socket.socket(); s.setblocking(False); s.connect_ex(("{BEFORE_EXEC}", 9))
os.execv(shutil.which("bash"), ["bash", "-c", "exec 3<>/dev/tcp/{AFTER_EXEC}/9"])
"""


def test_an_attempt_just_before_an_exec_is_the_old_executables(tmp_path: Path) -> None:
    """The tracer batches attempts (printed up to 0.1 s later) but prints exec lines at once:
    the attempt made just before the exec keeps the executable that made it."""
    require_root()
    bash = shutil.which("bash")
    if shutil.which("bpftrace") is None or bash is None:
        pytest.skip("bpftrace (apt-get install -y bpftrace) and bash are needed")
    sensor, out, _ = start_sensor(tmp_path, "ebpf")
    try:
        child = subprocess.run([sys.executable, "-c", CONNECT_THEN_EXEC], timeout=60, check=False)
    finally:
        summary = stop_sensor(sensor)
    attempts = {
        d["destination"]["ip"]: d
        for d in map(json.loads, out.open())
        if d["event"]["action"] == "connection_attempted"
        and d["destination"].get("ip") in (BEFORE_EXEC, AFTER_EXEC)
    }
    assert set(attempts) == {BEFORE_EXEC, AFTER_EXEC}, summary
    before, after = attempts[BEFORE_EXEC]["process"], attempts[AFTER_EXEC]["process"]
    assert before["pid"] == after["pid"] and child.returncode != 0  # one process, two images
    # /proc/PID/exe's real path, or the path exec'd when the sensor read the exec after the
    # process had gone on (to bash) or ended
    assert before["executable"] in (os.path.realpath(sys.executable), sys.executable)
    assert before["args"][-2] == "-c"
    assert after["executable"] in (os.path.realpath(bash), bash)
    assert after["args"] == ["bash", "-c", f"exec 3<>/dev/tcp/{AFTER_EXEC}/9"]
    assert before["entity_id"] != after["entity_id"]


# SAFETY: inside the test's namespace, which has no route to 10.99.0.0/16: connect() fails at once.
UNROUTED = "10.99.0.1"
NO_ROUTE_CLIENT = f"""
import os, socket
print(os.getpid(), flush=True)
for blocking in (True, False):
    s = socket.socket(); s.setblocking(blocking)
    print(s.connect_ex(("{UNROUTED}", 80 + blocking)), flush=True)
"""


def test_a_connect_that_fails_before_syn_sent_is_an_attempt_and_its_failure(
    tmp_path: Path, namespace: str
) -> None:
    """No route: connect() fails with ENETUNREACH before the socket enters SYN_SENT (no state
    change to trace); the return of connect() records the attempt and its failure."""
    client, out, summary = _client_in(namespace, NO_ROUTE_CLIENT, tmp_path, timeout=60)
    pid_line, *codes = client.stdout.split()
    assert codes == ["101", "101"], client.stdout  # ENETUNREACH, what the client saw
    docs = [d for d in map(json.loads, out.open()) if d["process"]["pid"] == int(pid_line)]
    seen = {(d["event"]["action"], d["destination"]["port"]) for d in docs}
    assert seen == {
        (action, port)
        for action in ("connection_attempted", "connection_result")
        for port in (80, 81)
    }, summary
    for d in docs:
        assert d["destination"]["ip"] == UNROUTED and "ip" not in d.get("source", {})
        assert d["process"]["executable"] in (os.path.realpath(sys.executable), sys.executable)
    for d in (d for d in docs if d["event"]["action"] == "connection_result"):
        assert d["event"]["reason"] == "unreachable" and d["event"]["outcome"] == "failure"
        assert d["reconwatch"]["error"] == "ENETUNREACH"
