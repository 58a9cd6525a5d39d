"""bpftrace line parsing (injection-proof strings, bytes that are not UTF-8), the exec cache,
lost-event accounting and start-up error messages."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from reconwatch.ecs.host import HostInfo
from reconwatch.ecs.network import Connection, EcsEncoder, entity_id, to_ecs
from reconwatch.sensor import bpf, procs
from reconwatch.sensor.bpf import BpfCollector, encode_buf, explain_failure, script_path
from reconwatch.sensor.outputs import FileSink
from reconwatch.sensor.procs import ProcessCache
from reconwatch.sensor.runner import run

HOST = HostInfo(name="h", hostname="h", id="m", agent_id="a")


def collector() -> BpfCollector:
    return BpfCollector(binary="bpftrace", cache=ProcessCache())


def comm(name: bytes) -> str:
    """COMM as the script prints it: `%rx` of buf(curtask->comm, 16)."""
    return encode_buf(name, 16).decode()


def path(name: bytes) -> str:
    """FILENAME as the script prints it: `%rx` of buf(args->filename, 200)."""
    return encode_buf(name, 200).decode()


def feed(c: BpfCollector, text: str) -> Connection | None:
    return c.handle_line(text.encode())


def test_script_is_shipped_in_the_package() -> None:
    text = script_path().read_text()
    assert "sock:inet_sock_set_state" in text and "sched:sched_process_exec" in text


def test_connect_line_uses_exec_cache_for_a_process_already_gone() -> None:
    c = collector()
    gone = 2**22 + 12345  # above pid_max defaults: no /proc entry
    assert feed(c, f"X\t1000\t{gone}\t1\t0\t{path(b'/usr/bin/nmap')}\n") is None
    conn = feed(c, f"C\t2000\t{gone}\t0\t4\t127.0.0.1\t0\t127.0.1.7\t9\t{comm(b'nmap')}\n")
    assert conn is not None
    assert conn.executable == "/usr/bin/nmap"
    assert (conn.dst_ip, conn.dst_port, conn.family, conn.transport) == ("127.0.1.7", 9, 4, "tcp")
    assert conn.src_port is None  # 0: not yet assigned at SYN_SENT
    assert conn.user_name == "root" and conn.uid == 0
    assert c.stats.attempted == 1 and c.stats.executable_unknown == 0


def argv(*args: bytes, total: int | None = None) -> str:
    """ARGS as the script prints it: `%rx` of the first 200 bytes of the NUL-separated argv."""
    raw = b"".join(arg + b"\0" for arg in args)
    size = len(raw) if total is None else total
    return f"{size}\t" + "".join(f"\\x{b:02x}" for b in raw[:200])


def test_args_come_from_the_tracer_for_a_process_already_gone() -> None:
    """The Y line's argv is the exec's own: no /proc read, so a short-lived scanner keeps it;
    user.name is the uid's, looked up once."""
    c = collector()
    gone = 2**22 + 12346
    feed(c, f"X\t1000\t{gone}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    assert feed(c, f"Y\t{gone}\t{argv(b'nmap', b'-sS', b'10.0.0.0/24')}\n") is None
    conn = feed(c, f"C\t2000\t{gone}\t0\t4\t127.0.0.1\t0\t127.0.1.7\t9\t{comm(b'nmap')}\n")
    assert conn is not None and conn.args == ["nmap", "-sS", "10.0.0.0/24"]
    doc = to_ecs(conn, HOST, 0.0)
    assert doc["process"]["command_line"] == "nmap -sS 10.0.0.0/24"  # type: ignore[index]
    assert doc["user"] == {"id": "0", "name": "root"}
    assert c.stats.arglists == 1 and c.stats.bad_lines == 0


def test_cut_args_are_kept_for_a_gone_process_and_counted() -> None:
    c = collector()
    gone = 2**22 + 12347
    long = [b"nmap"] + [b"127.0.0.%d" % i for i in range(40)]
    feed(c, f"X\t1000\t{gone}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    feed(c, f"Y\t{gone}\t{argv(*long, total=len(b''.join(a + b'0' for a in long)))}\n")
    info = c.cache.lookup(gone)
    assert info.args is not None and info.args[:3] == ["nmap", "127.0.0.0", "127.0.0.1"]
    assert len(info.args) < len(long)  # what fits in 200 bytes: /proc has nothing more
    assert c.stats.args_cut == 1 and "argument lists longer than 200 bytes" in c.summary()


def test_args_line_that_does_not_match_its_length_is_rejected() -> None:
    c = collector()
    gone = 2**22 + 12348
    feed(c, f"X\t1000\t{gone}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    feed(c, f"Y\t{gone}\t{argv(b'nmap', total=9)}\n")  # says 9 bytes, carries 5
    feed(c, f"Y\t{gone}\t-5\t\\x41\n")
    feed(c, f"Y\t{gone}\t1\t\\x4\n")
    assert c.stats.bad_lines == 3 and c.cache.lookup(gone).args is None


def test_unknown_executable_is_marked_and_counted() -> None:
    c = collector()
    name = comm(b"my\tcomm")
    conn = feed(c, f"C\t5\t{2**22 + 99}\t0\t6\t::1\t0\t::1\t22\t{name}\n")
    assert conn is not None and conn.executable is None and conn.name == "my\tcomm"
    assert c.stats.executable_unknown == 1


def test_relative_exec_path_is_not_trusted() -> None:
    c = collector()
    pid = 2**22 + 7
    feed(c, f"X\t1\t{pid}\t1\t0\t{path(b'./scan')}\n")
    conn = feed(c, f"C\t2\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.2\t80\t{comm(b'scan')}\n")
    assert conn is not None and conn.executable is None


def test_falls_back_to_proc_for_processes_started_before_the_sensor() -> None:
    c = collector()
    c.own_pids.clear()
    conn = feed(c, f"C\t2\t{os.getpid()}\t0\t4\t127.0.0.1\t0\t127.0.0.2\t80\t{comm(b'python')}\n")
    assert conn is not None and conn.executable == os.readlink("/proc/self/exe")


def test_own_traffic_is_not_reported() -> None:
    c = collector()
    assert (
        feed(c, f"C\t2\t{os.getpid()}\t0\t4\t127.0.0.1\t0\t127.0.0.2\t80\t{comm(b'py')}\n") is None
    )
    assert c.stats.own == 1


def test_udp_destinations_are_reported_once_per_process() -> None:
    c = collector()
    line = f"U\t1\t{2**22 + 5}\t0\t4\t127.0.0.53\t53\t{comm(b'dig')}\n"
    first = c.handle_line(line.encode())
    assert first is not None and first.transport == "udp" and first.dst_port == 53
    assert c.handle_line(line.encode()) is None
    assert c.stats.udp == 1 and c.stats.udp_repeats == 1


def test_accept_line_is_ingress_with_peer_as_source() -> None:
    c = collector()
    conn = feed(c, f"A\t1\t{2**22 + 6}\t0\t4\t127.0.0.1\t40000\t{comm(b'sshd')}\n")
    assert conn is not None and conn.action == "connection_accepted"
    assert (conn.dst_ip, conn.dst_port) == ("127.0.0.1", 40000)


def test_lost_events_and_bad_lines_are_counted() -> None:
    c = collector()
    feed(c, "Lost 17 events\n")
    feed(c, "Lost 3 events\n")
    feed(c, "C\tnot-a-number\n")
    assert c.stats.lost == 20 and c.stats.bad_lines == 1


def test_failure_messages_name_the_fix() -> None:
    memlock = "ERROR: Unknown error -1: couldn't set RLIMIT_MEMLOCK for bpftrace.\n"
    assert "mount -t tracefs nodev /sys/kernel/tracing" in explain_failure(
        memlock + "stdin:1:1-36: ERROR: tracepoint not found: sock:inet_sock_set_state\n"
    )
    assert "not permitted" in explain_failure("ERROR: bpf: Operation not permitted\n")
    assert "ERROR: something else" in explain_failure(memlock + "ERROR: something else\n")


def test_unknown_pid_is_looked_up_again_once_its_miss_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = ProcessCache(miss_ttl=60.0)
    pid = 2**22 + 31
    assert cache.lookup(pid).executable is None
    reads: list[int] = []

    def fake_readlink(p: int) -> str:
        reads.append(p)
        return "/usr/bin/new"

    monkeypatch.setattr(procs, "_readlink_exe", fake_readlink)
    assert cache.lookup(pid).executable is None  # within the TTL: no /proc read
    assert reads == []
    cache.misses[pid] = (0.0, cache.misses[pid][1])  # expired
    assert cache.lookup(pid).executable == "/usr/bin/new" and reads == [pid]
    other = pid + 1
    assert cache.lookup(other).executable == "/usr/bin/new"
    cache.on_exec(other, "/bin/x", 1, 1.0)  # an exec replaces whatever was known
    assert other not in cache.misses and cache.lookup(other).args is None


# --- strings from the kernel: injection, undecodable bytes, malformed lines ------------------

GONE = 2**22 + 4321  # above pid_max defaults: no /proc entry, so the tracer's path is used
# A path any local user can exec; the old script printed it raw and the parser then saw a
# second line: a connection_attempted of pid 4242 to 127.66.0.1:22, at a time of their choosing.
FORGING_PATH = b"/tmp/x\nC\t1\t4242\t0\t4\t127.0.0.1\t0\t127.66.0.1\t22\tforged"


def tracer_output(c: BpfCollector, output: bytes) -> list[Connection]:
    """Feed bytes as events() gets them from the pipe (split after each newline)."""
    found = []
    for line in io.BytesIO(output):
        conn = c.handle_line(line)
        if conn is not None:
            found.append(conn)
    return found


def test_a_path_holding_a_forged_line_stays_one_exec_event() -> None:
    c = collector()
    output = b"X\t1000\t%d\t1\t0\t%s\n" % (GONE, encode_buf(FORGING_PATH, 200))
    assert b"\n" not in output[:-1] and output.count(b"\t") == 5  # separators cannot appear
    assert tracer_output(c, output) == []
    assert c.stats.execs == 1 and c.stats.attempted == 0 and c.stats.bad_lines == 0
    assert c.cache.lookup(GONE).executable == FORGING_PATH.decode()  # kept byte for byte
    conn = feed(c, f"C\t2000\t{GONE}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t{comm(b'x')}\n")
    assert conn is not None and conn.executable == FORGING_PATH.decode() and conn.pid == GONE


def test_the_old_raw_form_of_the_forged_line_is_rejected_not_believed() -> None:
    """Defence in depth: a raw string where the script prints %rx is a bad line, never an event."""
    c = collector()
    old = b"X\t1000\t%d\t1\t0\t%s\n" % (GONE, FORGING_PATH)
    assert tracer_output(c, old) == []
    assert c.stats.bad_lines == 2 and c.stats.attempted == 0 and c.stats.execs == 0
    assert "unparsable tracer lines" in c.summary() and "forged" in c.summary()


def test_a_comm_with_separators_is_one_field() -> None:
    c = collector()
    name = b"\nC\t1\t4243\t0\t4"  # 15 bytes: the most prctl(PR_SET_NAME) allows
    output = b"C\t5\t%d\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t%s\n" % (GONE, encode_buf(name, 16))
    [conn] = tracer_output(c, output)
    assert conn.name == name.decode() and conn.pid == GONE and c.stats.attempted == 1


def test_a_path_that_is_not_utf8_survives_to_the_document() -> None:
    c = collector()
    evil, other = b"/tmp/evil\xff/scan", b"/tmp/evil\xfe/scan"
    docs = []
    name = comm(b"sc\xffan")
    for pid, exe in ((GONE, evil), (GONE + 1, other)):
        feed(c, f"X\t1\t{pid}\t1\t0\t{encode_buf(exe, 200).decode()}\n")
        conn = feed(c, f"C\t2\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t{name}\n")
        assert conn is not None and conn.executable == exe.decode("utf-8", "surrogateescape")
        data = EcsEncoder(HOST).encode(conn, 1.7e9)
        assert data == msgspec.json.encode(to_ecs(conn, HOST, 1.7e9))
        docs.append(json.loads(data)["process"])
    assert docs[0]["executable"] == docs[1]["executable"] == "/tmp/evil\ufffd/scan"
    assert docs[0]["name"] == "sc\ufffdan"
    # the entity id hashes the bytes: same pid and start, different files, different ids
    assert entity_id("a", 1, 2.0, evil.decode("utf-8", "surrogateescape")) != entity_id(
        "a", 1, 2.0, other.decode("utf-8", "surrogateescape")
    )
    assert c.stats.bad_lines == 0


def test_a_running_process_whose_executable_path_is_not_utf8(tmp_path: Path) -> None:
    """The crash of the issue: /proc/PID/exe of a real process under `evil\\xff/`."""
    folder = os.path.join(os.fsencode(tmp_path), b"evil\xff")
    os.mkdir(folder)
    exe = os.path.join(folder, b"scan")
    shutil.copy(shutil.which("sleep") or "/bin/sleep", exe)
    with subprocess.Popen([exe, "60"]) as proc:
        try:
            c = collector()
            conn = feed(c, f"C\t2\t{proc.pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t{comm(b'scan')}\n")
            assert conn is not None and conn.executable is not None
            assert os.fsencode(conn.executable) == exe
            doc = json.loads(EcsEncoder(HOST).encode(conn, 1.7e9))
            assert doc["process"]["executable"].endswith("/evil\ufffd/scan")
            assert doc["process"]["entity_id"]
        finally:
            proc.kill()


def test_an_exec_path_the_tracer_had_to_cut_is_not_used() -> None:
    c = collector()
    long_path = b"/opt/" + b"d" * 250 + b"/nmap"  # no NUL within the 200 bytes printed
    feed(c, f"X\t1\t{GONE}\t1\t0\t{encode_buf(long_path, 200).decode()}\n")
    conn = feed(c, f"C\t2\t{GONE}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t{comm(b'nmap')}\n")
    assert conn is not None and conn.executable is None  # not a wrong, truncated path
    assert c.stats.exec_path_cut == 1 and "exec paths longer than 199 bytes" in c.summary()


@pytest.mark.parametrize(
    "line",
    [
        "C\t+5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t{comm}",  # int() would take a sign
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t1_0\t{comm}",  # ... and underscores
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t70000\t{comm}",
        "C\t5\t{pid}\t0\t5\t127.0.0.1\t0\t127.0.0.9\t9\t{comm}",
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0\t9\t{comm}",
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t::1\t9\t{comm}",
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\tscan",
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t{comm}\textra",
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t\\x4g\\x00\\x00\\x00",
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t\\x4\\x00",
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\tab\\x41\\x00",
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\tab\\x41\\x00cd",  # hex, misplaced
        "C\t5\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t\\x\\x",  # `\x` as the digits
        "A\t5\t{pid}\t0\t4\t127.0.0.1\t9",
        "X\t5\t{pid}\t1\t0\t/usr/bin/nmap",
        "X\t5\t{pid}\t1\t-1\t{path}",
        "X\t5\t{pid}\t1A\t0\t{path}",  # found by the fuzz: was counted as an exec and a bad line
        "O\t5\t{pid}\t0\t4\t127.0.0.1\t4000\t127.0.0.9\t9\t3\t0\t7",  # SYN_RECV: no outcome
        "O\t5\t{pid}\t0\t4\t127.0.0.1\t4000\t127.0.0.9\t9\t7\t5000\t7",  # not an errno
        "O\t5\t{pid}\t0\t4\t127.0.0.1\t4000\t127.0.0.9\t9\t7\t-111\t7",
        "O\t5\t{pid}\t0\t4\t127.0.0.1\t4000\t127.0.0.9\t9\t7\t111",
        "O\t5\t{pid}\t0\t6\t127.0.0.1\t4000\t127.0.0.9\t9\t7\t111\t7",
        "O\t5\t{pid}\t0\t4\t127.0.0.1\t70000\t127.0.0.9\t9\t7\t111\t7",
        "O\t5\t{pid}\t0\t4\t127.0.0.1\t4000\t127.0.0.9\t9\t7\t111\t{comm}",
    ],
)
def test_malformed_tracer_lines_are_counted_not_raised(line: str) -> None:
    c = collector()
    text = line.format(pid=GONE, comm=comm(b"scan"), path=encode_buf(b"/bin/x", 200).decode())
    assert c.handle_line(text.encode() + b"\n") is None
    assert c.stats.bad_lines == 1 and c.stats.attempted == 0 and c.stats.execs == 0
    assert c.stats.results == 0 and len(c.stats.bad_samples) == 1


def test_runner_skips_an_event_it_cannot_encode_and_keeps_going(tmp_path: Path) -> None:
    class Replay:
        def start(self) -> None: ...

        def events(self) -> Iterator[Connection]:
            yield Connection(1.7e9, "connection_attempted", 1, "127.0.0.1", 1, 4)
            yield Connection(float("nan"), "connection_attempted", 2, "127.0.0.1", 2, 4)
            yield Connection(1.7e9, "connection_attempted", 3, "127.0.0.1", 3, 4)

        def stop(self) -> None: ...

        def summary(self) -> str:
            return "replayed"

    out = tmp_path / "events.ndjson"
    logged: list[str] = []
    count = run(Replay(), FileSink(out), HOST, log=logged.append)
    assert count == 2
    assert [json.loads(line)["process"]["pid"] for line in out.read_text().splitlines()] == [1, 3]
    assert any("event of pid 2 not written: ValueError" in line for line in logged)
    assert "1 events could not be encoded and were not written" in logged


@pytest.mark.parametrize(
    ("state", "err", "reason", "outcome", "error"),
    [
        (1, 0, "established", "success", None),
        (7, 111, "refused", "failure", "ECONNREFUSED"),
        (7, 110, "timeout", "failure", "ETIMEDOUT"),
        (7, 113, "unreachable", "failure", "EHOSTUNREACH"),
        (7, 101, "unreachable", "failure", "ENETUNREACH"),
        (7, 0, "aborted", "unknown", None),  # the process closed it before an answer
        (7, 1, "error", "failure", "EPERM"),  # a firewall's verdict, say
    ],
)
def test_an_attempts_outcome_is_one_result_event_of_the_attempting_process(
    state: int, err: int, reason: str, outcome: str, error: str | None
) -> None:
    c = collector()
    feed(c, f"X\t1000\t{GONE}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    attempt = feed(c, f"C\t2000\t{GONE}\t0\t4\t127.0.0.1\t0\t127.0.1.7\t9\t{comm(b'nmap')}\n")
    # the outcome arrives in softirq or timer context: the line names the attempt's pid and uid
    line = f"O\t9000\t{GONE}\t0\t4\t127.0.0.1\t40000\t127.0.1.7\t9\t{state}\t{err}\t7000\n"
    result = feed(c, line)
    assert attempt is not None and result is not None
    assert (result.reason, result.outcome, result.error) == (reason, outcome, error)
    assert (result.pid, result.name, result.executable) == (GONE, "nmap", "/usr/bin/nmap")
    assert (result.src_port, result.dst_ip, result.dst_port) == (40000, "127.0.1.7", 9)
    assert result.duration_ns == 7000 and c.stats.results == 1 and c.stats.attempted == 1
    doc = to_ecs(result, HOST, 1.7e9)
    assert EcsEncoder(HOST).encode(result, 1.7e9) == msgspec.json.encode(doc)
    event = doc["event"]
    assert isinstance(event, dict)
    assert event["action"] == "connection_result" and event["type"] == ["end"]
    assert (event["outcome"], event["reason"], event["duration"]) == (outcome, reason, 7000)
    assert doc["reconwatch"] == {"probe": "connect", **({"error": error} if error else {})}
    # same process document as the attempt, so the two join on process.entity_id
    assert doc["process"] == to_ecs(attempt, HOST, 1.7e9)["process"]


def test_an_attempt_is_marked_as_sent_by_connect_and_keeps_defends_shape() -> None:
    c = collector()
    attempt = feed(c, f"C\t2000\t{GONE}\t0\t6\t::1\t0\t::1\t9\t{comm(b'nc')}\n")
    assert attempt is not None
    doc = to_ecs(attempt, HOST, 1.7e9)
    assert doc["event"] == {
        "action": "connection_attempted",
        "type": ["start"],
        "category": ["network"],
        "kind": "event",
        "outcome": "unknown",
        "dataset": "endpoint.events.network",
        "module": "endpoint",
        "ingested": "2023-11-14T22:13:20.000Z",
    }
    assert doc["reconwatch"] == {"probe": "connect"}


def test_the_outcome_of_our_own_connection_is_not_reported() -> None:
    c = collector()
    c.own_pids.add(GONE)
    line = f"O\t9\t{GONE}\t0\t4\t127.0.0.1\t40000\t127.0.0.1\t9200\t1\t0\t7\n"
    assert feed(c, line) is None and c.stats.own == 1 and c.stats.results == 0


def probe_line(
    socktype: int,
    family: int,
    dst: str,
    proto: int,
    port: int,
    detail: int,
    sockfamily: int | None = None,
) -> str:
    """A `W` line as the script prints it for a packet sent by GONE (uid 0, comm nmap)."""
    sockfamily = sockfamily or (2 if family == 4 else 10)
    return (
        f"W\t5\t{GONE}\t0\t{family}\t{sockfamily}\t{socktype}\t{dst}\t{proto}\t{port}\t"
        f"{detail}\t{comm(b'nmap')}\n"
    )


@pytest.mark.parametrize(
    ("socktype", "family", "dst", "proto", "port", "detail", "expected"),
    [
        (3, 4, "127.0.0.9", 6, 22, 0x02, ("tcp", "raw", 22, "S", None)),  # nmap -sS
        (3, 4, "127.0.0.9", 6, 80, 0x10, ("tcp", "raw", 80, "A", None)),  # -sA
        (3, 4, "127.0.0.9", 6, 80, 0x29, ("tcp", "raw", 80, "FPU", None)),  # -sX
        (3, 4, "127.0.0.9", 6, 80, 0, ("tcp", "raw", 80, "", None)),  # -sN
        (3, 6, "::1", 17, 53, 0, ("udp", "raw", 53, None, None)),  # -sU
        (3, 4, "127.0.0.9", 1, 0, 8, ("icmp", "raw", None, None, 8)),  # echo request
        (3, 4, "127.0.0.9", 1, 0, 13, ("icmp", "raw", None, None, 13)),  # timestamp
        (2, 4, "127.0.0.9", 1, 0, 8, ("icmp", "datagram", None, None, 8)),  # unprivileged ping
        (2, 6, "::1", 58, 0, 128, ("ipv6-icmp", "datagram", None, None, 128)),
        (3 + 17 * 100, 4, "10.0.0.9", 6, 80, 2, ("tcp", "packet", 80, "S", None)),  # masscan
        (2 + 17 * 100, 6, "fe80::9", 17, 53, 0, ("udp", "packet", 53, None, None)),
    ],
)
def test_a_raw_packet_is_an_attempt_with_its_transport_port_and_method(
    socktype: int,
    family: int,
    dst: str,
    proto: int,
    port: int,
    detail: int,
    expected: tuple[str, str, int | None, str | None, int | None],
) -> None:
    c = collector()
    feed(c, f"X\t1\t{GONE}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    # socktype + 100 * sockfamily: an AF_PACKET socket (a frame, or an IP packet for SOCK_DGRAM)
    sockfamily, socktype = divmod(socktype, 100)
    conn = feed(c, probe_line(socktype, family, dst, proto, port, detail, sockfamily or None))
    assert conn is not None and c.stats.probes == 1
    doc = to_ecs(conn, HOST, 1.7e9)
    assert EcsEncoder(HOST).encode(conn, 1.7e9) == msgspec.json.encode(doc)
    transport, method, doc_port, flags, icmp_type = expected
    event, network, destination = doc["event"], doc["network"], doc["destination"]
    assert isinstance(event, dict) and isinstance(network, dict) and isinstance(destination, dict)
    assert (event["action"], event["type"]) == ("connection_attempted", ["start"])
    assert network["transport"] == transport and destination["ip"] == dst
    assert destination.get("port") == doc_port  # ICMP has no port
    extra = {"probe": method, "tcp_flags": flags, "icmp_type": icmp_type}
    assert doc["reconwatch"] == {k: v for k, v in extra.items() if v is not None}
    assert doc["process"]["executable"] == "/usr/bin/nmap"  # type: ignore[index]


def test_a_probe_sent_again_is_one_attempt_with_the_repeats_counted() -> None:
    c = collector()
    syn = probe_line(3, 4, "127.0.0.9", 6, 22, 2)
    assert feed(c, syn) is not None
    assert feed(c, syn) is None and feed(c, syn) is None  # nmap's retransmissions
    assert feed(c, probe_line(3, 4, "127.0.0.9", 6, 23, 2)) is not None  # another port
    assert feed(c, probe_line(3, 4, "127.0.0.9", 17, 22, 0)) is not None  # another transport
    assert feed(c, probe_line(3, 4, "127.0.0.9", 1, 0, 8)) is not None
    assert feed(c, probe_line(3, 4, "127.0.0.9", 1, 0, 13)) is not None  # another ICMP type
    assert (c.stats.probes, c.stats.probe_repeats) == (5, 2)
    assert "5 raw/ICMP probes (2 repeated sends)" in c.summary()


@pytest.mark.parametrize(
    "line",
    [
        "W\t5\t{pid}\t0\t4\t2\t3\t127.0.0.9\t132\t22\t2\t{comm}",  # SCTP: not printed
        "W\t5\t{pid}\t0\t4\t2\t3\t127.0.0.9\t58\t0\t128\t{comm}",  # ICMPv6 over IPv4
        "W\t5\t{pid}\t0\t4\t2\t3\t127.0.0.9\t1\t0\t0\t{comm}",  # an echo reply is no probe
        "W\t5\t{pid}\t0\t6\t10\t3\t::1\t58\t0\t135\t{comm}",  # neighbour solicitation
        "W\t5\t{pid}\t0\t4\t2\t3\t127.0.0.9\t1\t7\t8\t{comm}",  # ICMP with a port
        "W\t5\t{pid}\t0\t4\t2\t2\t127.0.0.9\t6\t22\t2\t{comm}",  # TCP on a datagram socket
        "W\t5\t{pid}\t0\t4\t2\t10\t127.0.0.9\t6\t22\t2\t{comm}",  # SOCK_PACKET: not read
        "W\t5\t{pid}\t0\t4\t1\t3\t127.0.0.9\t6\t22\t2\t{comm}",  # AF_UNIX
        "W\t5\t{pid}\t0\t4\t17\t1\t127.0.0.9\t6\t22\t2\t{comm}",  # AF_PACKET, SOCK_STREAM
        "W\t5\t{pid}\t0\t4\t2\t3\t127.0.0.9\t6\t22\t256\t{comm}",
        "W\t5\t{pid}\t0\t4\t2\t3\t127.0.0.9\t6\t65536\t2\t{comm}",
        "W\t5\t{pid}\t0\t4\t2\t3\t::1\t6\t22\t2\t{comm}",
        "W\t5\t{pid}\t0\t4\t3\t127.0.0.9\t6\t22\t2\t{comm}",  # the old form, no family
        "W\t5\t{pid}\t0\t4\t2\t3\t127.0.0.9\t6\t22\t2\tnmap",
    ],
)
def test_malformed_probe_lines_are_counted_not_raised(line: str) -> None:
    c = collector()
    assert c.handle_line(line.format(pid=GONE, comm=comm(b"nmap")).encode() + b"\n") is None
    assert c.stats.bad_lines == 1 and c.stats.probes == 0 and len(c.stats.bad_samples) == 1


def test_the_parent_executable_comes_from_the_same_cache() -> None:
    c = collector()
    parent = GONE + 1
    feed(c, f"X\t1\t{parent}\t1\t0\t{path(b'/usr/bin/bash')}\n")
    feed(c, f"X\t2\t{GONE}\t{parent}\t0\t{path(b'/usr/bin/nmap')}\n")
    for line in (
        probe_line(3, 4, "127.0.0.9", 6, 22, 2),
        f"C\t3\t{GONE}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t{comm(b'nmap')}\n",
        f"O\t4\t{GONE}\t0\t4\t127.0.0.1\t4000\t127.0.0.9\t9\t7\t111\t9\n",
    ):
        conn = feed(c, line)
        assert conn is not None and conn.parent_executable == "/usr/bin/bash"
        doc = to_ecs(conn, HOST, 1.7e9)
        assert doc["process"]["parent"] == {"pid": parent, "executable": "/usr/bin/bash"}  # type: ignore[index]
        assert EcsEncoder(HOST).encode(conn, 1.7e9) == msgspec.json.encode(doc)
    orphan = feed(c, f"C\t3\t{GONE + 2}\t0\t4\t127.0.0.1\t0\t127.0.0.9\t9\t{comm(b'nmap')}\n")
    assert orphan is not None and orphan.parent_executable is None  # no /proc, no exec seen


@pytest.mark.parametrize(
    ("proto", "key", "answer", "sock", "expected"),
    [
        (6, 22, 1, (2, 3), ("tcp", 22, "open", "success", "raw")),  # SYN-ACK
        (6, 23, 2, (2, 3), ("tcp", 23, "refused", "failure", "raw")),  # RST
        (6, 80, 2, (17, 3), ("tcp", 80, "refused", "failure", "packet")),  # masscan, zmap
        (17, 53, 3, (2, 3), ("udp", 53, "refused", "failure", "raw")),  # ICMP port unreachable
        (17, 53, 4, (2, 3), ("udp", 53, "unreachable", "failure", "raw")),
        (17, 53, 5, (2, 3), ("udp", 53, "answered", "success", "raw")),
        (1, 4242, 5, (2, 3), ("icmp", None, "answered", "success", "raw")),  # echo reply
    ],
)
def test_a_probe_answer_is_a_result_of_the_probing_process(
    proto: int,
    key: int,
    answer: int,
    sock: tuple[int, int],
    expected: tuple[str, int | None, str, str, str],
) -> None:
    c = collector()
    feed(c, f"X\t1\t{GONE}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    attempt = feed(c, probe_line(3, 4, "127.0.0.9", 6, 22, 2))
    # sent at 3, answered 1,500 ns later
    line = f"Q\t1503\t{GONE}\t0\t127.0.0.9\t{proto}\t{key}\t{answer}\t1500\t{sock[0]}\t{sock[1]}\n"
    conn = feed(c, line)
    assert attempt is not None and conn is not None
    doc = to_ecs(conn, HOST, 1.7e9)
    assert EcsEncoder(HOST).encode(conn, 1.7e9) == msgspec.json.encode(doc)
    transport, port, reason, outcome, method = expected
    event = doc["event"]
    assert isinstance(event, dict)
    assert (event["action"], event["type"]) == ("connection_result", ["end"])
    assert (event["reason"], event["outcome"], event["duration"]) == (reason, outcome, 1500)
    assert doc["network"]["transport"] == transport  # type: ignore[index]
    assert doc["destination"] == ({"ip": "127.0.0.9"} | ({"port": port} if port else {}))
    assert doc["reconwatch"] == {"probe": method}
    assert doc["process"]["name"] == "nmap"  # type: ignore[index]
    assert doc["process"]["entity_id"] == to_ecs(attempt, HOST, 0.0)["process"]["entity_id"]  # type: ignore[index]
    assert feed(c, line) is None  # the answer to a retransmission
    assert (c.stats.answers, c.stats.answer_repeats) == (1, 1) and "1 probe answers" in c.summary()


@pytest.mark.parametrize(
    "line",
    [
        "Q\t9\t{pid}\t0\t127.0.0.9\t132\t22\t2\t1\t2\t3",  # SCTP
        "Q\t9\t{pid}\t0\t127.0.0.9\t6\t22\t5\t1\t2\t3",  # TCP has no reply code 5
        "Q\t9\t{pid}\t0\t127.0.0.9\t6\t22\t0\t1\t2\t3",
        "Q\t9\t{pid}\t0\t127.0.0.9\t6\t65536\t2\t1\t2\t3",
        "Q\t9\t{pid}\t0\t::1\t6\t22\t2\t1\t2\t3",  # IPv4 only
        "Q\t9\t{pid}\t0\t127.0.0.9\t6\t22\t2\t1\t1\t3",  # AF_UNIX
        "Q\t9\t{pid}\t0\t127.0.0.9\t6\t22\t2\t-1\t2\t3",
        "Q\t9\t{pid}\t0\t127.0.0.9\t6\t22\t2\t1\t2",
    ],
)
def test_malformed_answer_lines_are_counted_not_raised(line: str) -> None:
    c = collector()
    assert c.handle_line(line.format(pid=GONE).encode() + b"\n") is None
    assert c.stats.bad_lines == 1 and c.stats.answers == 0


def test_folded_repeats_are_a_cumulative_count_not_events() -> None:
    c = collector()
    assert c.handle_line(b"F\t0\t0\t0\n") is None and "folded" not in c.summary()
    assert "registers" not in c.summary()
    assert c.handle_line(b"F\t41\t7\t0\n") is None and c.handle_line(b"F\t40\t9\t2\n") is None
    assert c.stats.folded == 41 and "41 repeated connects folded" in c.summary()
    assert c.stats.udp_folded == 9 and "9 repeated UDP sends folded" in c.summary()
    assert "2 connect() returns whose registers could not be read" in c.summary()
    bad_lines = (b"F\t-1\t0\t0\n", b"F\t1\t2\n", b"F\t1\t2\t3\t4\n", b"F\tx\t1\t0\n")
    for bad in (*bad_lines, b"F\t1\t+2\t0\n", b"F\t" + b"9" * 21 + b"\t0\t0\n"):
        assert c.handle_line(bad) is None
    assert c.stats.bad_lines == 6 and (c.stats.folded, c.stats.udp_folded) == (41, 9)


def test_a_combined_line_is_the_attempt_then_its_outcome_as_separate_lines_would_be() -> None:
    # one collector: the entity id hashes its clock's start, so two would differ
    separate = combined = collector()
    feed(separate, f"X\t1000\t{GONE}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    attempt = feed(
        separate, f"C\t2000\t{GONE}\t0\t4\t127.0.0.1\t40000\t127.0.1.7\t9\t{comm(b'nmap')}\n"
    )
    result = feed(
        separate, f"O\t9000\t{GONE}\t0\t4\t127.0.0.1\t40000\t127.0.1.7\t9\t7\t111\t7000\n"
    )
    line = f"B\t2000\t{GONE}\t0\t4\t127.0.0.1\t40000\t127.0.1.7\t9\t{comm(b'nmap')}\t7\t111\t7000\n"
    both = feed(combined, line)
    assert attempt is not None and result is not None and both is not None
    assert combined.pending_result is not None
    assert to_ecs(both, HOST, 1.7e9) == to_ecs(attempt, HOST, 1.7e9)
    assert to_ecs(combined.pending_result, HOST, 1.7e9) == to_ecs(result, HOST, 1.7e9)
    assert combined.pending_result.reason == "refused"
    assert (combined.stats.attempted, combined.stats.results) == (2, 2)
    # the next line clears it: an outcome is returned once
    assert feed(combined, "P\tpad\n") is None and combined.pending_result is None


@pytest.mark.parametrize(
    "line",
    [
        "B\t2000\t{pid}\t0\t4\t127.0.0.1\t1\t127.0.1.7\t9\t{comm}\t3\t111\t7000\n",  # no outcome
        "B\t2000\t{pid}\t0\t4\t127.0.0.1\t1\t127.0.1.7\t9\t{comm}\t7\t111\t-1\n",
        "B\t2000\t{pid}\t0\t4\t127.0.0.1\t1\t127.0.1.7\t99999\t{comm}\t7\t111\t7\n",
        "B\t2000\t{pid}\t0\t4\t127.0.0.1\t1\t127.0.1.7\t9\t{comm}\t7\t111\n",
    ],
)
def test_a_bad_combined_line_counts_as_bad_and_as_neither_event(line: str) -> None:
    c = collector()
    assert c.handle_line(line.format(pid=GONE, comm=comm(b"nmap")).encode()) is None
    assert c.pending_result is None
    assert (c.stats.bad_lines, c.stats.attempted, c.stats.results) == (1, 0, 0)


def batched(
    nsecs: int, words: str, comm_text: str = "nmap\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
) -> bytes:
    return f"@b0[{nsecs}, {GONE}]: ({GONE}, 0, {words}, 7, 111, 7000, {comm_text})\n".encode()


def test_a_batched_entry_is_the_attempt_and_its_outcome_as_a_combined_line_would_be() -> None:
    line_c = map_c = collector()  # one: the entity id hashes its clock's start
    feed(line_c, f"X\t1000\t{GONE}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    combined = (
        f"B\t2000\t{GONE}\t0\t4\t127.0.0.1\t40000\t127.0.1.7\t9\t{comm(b'nmap')}\t7\t111\t7000\n"
    )
    want = feed(line_c, combined)
    want_result = line_c.pending_result
    # 127.0.0.1 and 127.0.1.7 as the kernel's little-endian 32-bit words
    got = map_c.handle_line(batched(2000, "2, 16777343, 0, 0, 0, 40000, 117506175, 0, 0, 0, 9"))
    assert want is not None and got is not None and map_c.pending_result is not None
    assert want_result is not None
    assert to_ecs(got, HOST, 1.7e9) == to_ecs(want, HOST, 1.7e9)
    assert to_ecs(map_c.pending_result, HOST, 1.7e9) == to_ecs(want_result, HOST, 1.7e9)
    v6 = map_c.handle_line(batched(3000, "10, 0, 0, 0, 16777216, 40001, 0, 0, 0, 16777216, 9"))
    assert v6 is not None and (v6.src_ip, v6.dst_ip, v6.family) == ("::1", "::1", 6)
    assert v6.name == "nmap"
    # bpftrace's %r keeps printable bytes, so a comm with ", " and ")" still parses
    odd = map_c.handle_line(batched(4000, "2, 1, 0, 0, 0, 1, 2, 0, 0, 0, 9", "a, b)\\x09c"))
    assert odd is not None and odd.name == "a, b)\tc"
    assert map_c.handle_line(b"@bn0: 3\n") is None and map_c.handle_line(b"\n") is None
    assert map_c.stats.lost == 0 and map_c.stats.attempted == 4 and map_c.stats.results == 4


def test_attempts_a_full_map_refused_are_counted_as_lost() -> None:
    c = collector()
    c.handle_line(batched(2000, "2, 16777343, 0, 0, 0, 40000, 117506175, 0, 0, 0, 9"))
    assert c.handle_line(b"@bn0: 5\n") is None
    assert c.stats.lost == 4 and "lost 4 events" in c.summary()
    assert c.handle_line(b"@bn0: 0\n") is None and c.stats.lost == 4  # counts restart each tick


@pytest.mark.parametrize(
    "line",
    [
        b"@b0[2000, 1]: (1, 0, 2, 1, 0, 0, 0, 1, 2, 0, 0, 0, 9, 7, 111, 7)\n",  # no comm
        b"@b0[2000, 1]: (1, 0, 3, 1, 0, 0, 0, 1, 2, 0, 0, 0, 9, 7, 111, 7, x)\n",  # family
        b"@b0[2000, 1]: (1, 0, 2, 4294967296, 0, 0, 0, 1, 2, 0, 0, 0, 9, 7, 111, 7, x)\n",
        b"@b0[2000, 1]: (1, 0, 2, 1, 0, 0, 0, 1, 2, 0, 0, 0, 9, 3, 111, 7, x)\n",  # no outcome
        b"@b0[2000]: (1, 0, 2, 1, 0, 0, 0, 1, 2, 0, 0, 0, 9, 7, 111, 7, x)\n",
        b"@b0[2000, 1]: (1, 0, 2, 1, 0, 0, 0, 1, 2, 0, 0, 0, 9, 7, 111, 7, x\n",
        b"@bn0: -1\n",
        b"@bnx: 1\n",
    ],
)
def test_a_bad_batched_line_is_counted_as_bad(line: bytes) -> None:
    c = collector()
    assert c.handle_line(line) is None and c.pending_result is None
    assert (c.stats.bad_lines, c.stats.attempted, c.stats.results) == (1, 0, 0)


NMAP_COMM = "nmap\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"


def test_a_batched_probe_is_the_w_line_and_its_answer_the_q_line_they_replace() -> None:
    c = collector()  # one: the entity id hashes its clock's start
    feed(c, f"X\t1000\t{GONE}\t1\t0\t{path(b'/usr/bin/nmap')}\n")
    w = f"W\t2000\t{GONE}\t0\t4\t2\t3\t127.31.0.1\t6\t80\t2\t{comm(b'nmap')}\n"
    q = f"Q\t1900\t{GONE}\t0\t127.31.0.1\t6\t80\t2\t700\t2\t3\n"
    want_probe, want_answer = feed(c, w), feed(c, q)
    # 127.31.0.1 as the kernel's little-endian word; answered at 1900, 700 ns after the send
    entry = (
        f"@w0[2000, {GONE}]: ({GONE}, 0, 2, 3, 16785279, 6, 80, 2, 80, 2, 1900, 700, {NMAP_COMM})\n"
    )
    c2 = collector()
    c2.cache, c2._clock_offset = c.cache, c._clock_offset
    probe = c2.handle_line(entry.encode())
    assert want_probe is not None and want_answer is not None and probe is not None
    assert c2.pending_result is not None
    assert to_ecs(probe, HOST, 1.7e9) == to_ecs(want_probe, HOST, 1.7e9)
    assert to_ecs(c2.pending_result, HOST, 1.7e9) == to_ecs(want_answer, HOST, 1.7e9)
    # unanswered within the send: only the probe; its answer comes later from the @q0 map
    c3 = collector()
    c3.cache, c3._clock_offset = c.cache, c._clock_offset
    alone = f"@w1[2000, {GONE}]: ({GONE}, 0, 2, 3, 16785279, 6, 80, 2, 80, 0, 0, 18446744073709549616, {NMAP_COMM})\n"
    assert c3.handle_line(alone.encode()) is not None and c3.pending_result is None
    late = c3.handle_line(f"@q1[1900, {GONE}]: (0, 16785279, 6, 80, 2, 700, 2, 3)\n".encode())
    assert late is not None and to_ecs(late, HOST, 1.7e9) == to_ecs(want_answer, HOST, 1.7e9)
    assert c3.handle_line(b"@wn1: 2\n") is None and c3.handle_line(b"@qn1: 1\n") is None
    assert c3.stats.lost == 1 and (c3.stats.probes, c3.stats.answers) == (1, 1)


@pytest.mark.parametrize(
    "line",
    [
        b"@w0[2000, 1]: (1, 0, 2, 3, 16785279, 6, 80, 2, 80, 9, 1900, 700, x)\n",  # answer 9
        b"@w0[2000, 1]: (1, 0, 2, 3, 4294967296, 6, 80, 2, 80, 0, 0, 0, x)\n",
        b"@w0[2000, 1]: (1, 0, 2, 3, 16785279, 6, 80, 2, 80, 0, 0, x)\n",
        b"@w0[2000, 1]: (1, 0, 2, 3, 16785279, 47, 80, 2, 80, 0, 0, 0, x)\n",  # GRE
        b"@q0[1900, 1]: (0, 16785279, 6, 80, 2, 700, 2)\n",
        b"@q0[1900, 1]: (0, 16785279, 6, 70000, 2, 700, 2, 3)\n",
        b"@qn0: x\n",
    ],
)
def test_a_bad_batched_probe_line_is_counted_as_bad_and_as_no_event(line: bytes) -> None:
    c = collector()
    assert c.handle_line(line) is None and c.pending_result is None
    assert (c.stats.bad_lines, c.stats.probes, c.stats.answers) == (1, 0, 0)


class _FakeTracer:
    """Stands for the bpftrace process: records the signals sent to it."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def poll(self) -> int | None:
        return None

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)


def test_stop_waits_for_two_ticks_after_the_request_even_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An outcome written just before the stop (it woke the client whose exit made us stop)
    may still be in the tracer's perf buffer although no line came for long: the tracer is
    interrupted only once two of its ticks printed after the request have been read."""
    c = collector()
    tracer = _FakeTracer()
    c.proc = tracer  # type: ignore[assignment]
    c.handle_line(b"P\t" + b" " * 4094 + b"\n")  # a tick before the request does not count
    c._last_line -= 60  # idle for a minute
    ticks_seen: list[int] = []

    def one_tick_per_wait(_: float) -> None:  # the clock is not read: each wait is one tick
        assert not tracer.signals
        ticks_seen.append(len(ticks_seen) + 1)
        c.handle_line(b"P\t" + b" " * 4094 + b"\n")

    monkeypatch.setattr(bpf.time, "sleep", one_tick_per_wait)
    c._stop_when_idle()
    assert tracer.signals == [signal.SIGINT] and ticks_seen == [1, 2]


def refused_entry(nsecs: int, pid: int, dst_word: int, name: bytes) -> str:
    """An `@b0` entry as the script prints it: an attempt from 127.0.0.1 to a closed port of
    the address in `dst_word` (as the kernel stores it), refused 7 us later."""
    comm_r = "".join(chr(c) if 0x20 <= c < 0x7F else f"\\x{c:02x}" for c in name.ljust(16, b"\0"))
    numbers = f"{pid}, 0, 2, 16777343, 0, 0, 0, 40000, {dst_word}, 0, 0, 0, 9, 7, 111, 7000"
    return f"@b0[{nsecs}, {pid}]: ({numbers}, {comm_r})\n"


PYTHON_ARGS, BASH_ARGS = b"python3\0-c", b"bash\0-c"


def test_an_attempt_made_just_before_an_exec_keeps_the_image_that_made_it() -> None:
    """The tracer prints batched attempts up to 0.1 s after they were made, so the exec line of
    the process's next image can come first: each attempt is attributed to the image the
    process ran at the attempt's time, not to the one it runs when the line is read."""
    c = collector()
    feed(c, f"X\t1000\t{GONE}\t1\t0\t{path(b'/usr/bin/python3')}\n")
    feed(c, f"Y\t{GONE}\t10\t{encode_buf(PYTHON_ARGS, 10).decode()}\n")
    feed(c, f"X\t5000\t{GONE}\t1\t0\t{path(b'/usr/bin/bash')}\n")  # exec after the attempt
    feed(c, f"Y\t{GONE}\t7\t{encode_buf(BASH_ARGS, 7).decode()}\n")
    before = feed(c, refused_entry(3000, GONE, 0x0100007F, b"python3"))
    after = feed(c, refused_entry(6000, GONE, 0x0200007F, b"bash"))
    assert before is not None and after is not None
    assert (before.executable, before.args) == ("/usr/bin/python3", ["python3", "-c"])
    assert (after.executable, after.args) == ("/usr/bin/bash", ["bash", "-c"])
    assert c.pending_result is not None and c.pending_result.executable == "/usr/bin/bash"
    entity = to_ecs(before, HOST, 0.0)["process"]["entity_id"]  # type: ignore[index]
    assert entity != to_ecs(after, HOST, 0.0)["process"]["entity_id"]  # type: ignore[index]
    # a forked child that connects, then execs: its first image is its parent's
    child = GONE + 1
    feed(c, f"X\t8000\t{child}\t{GONE}\t0\t{path(b'/usr/bin/nc')}\n")
    forked = feed(c, refused_entry(7000, child, 0x0300007F, b"bash"))
    assert forked is not None and forked.executable == "/usr/bin/bash" and forked.ppid == GONE
    # nothing known of what ran before: unattributed rather than the new image
    orphan = GONE + 2
    feed(c, f"X\t8000\t{orphan}\t{GONE + 3}\t0\t{path(b'/usr/bin/nc')}\n")
    unknown = feed(c, refused_entry(7000, orphan, 0x0400007F, b"x"))
    assert unknown is not None and unknown.executable is None


def test_an_exec_read_after_the_process_exec_d_again_keeps_its_own_path() -> None:
    """The sensor reads an exec's line after the process has run on: when it has exec'd another
    program since, /proc/PID/exe names that one, so the exec path is used (its comm, which an
    exec sets to the file's name, tells). Here the "process" is this one: python, not `nc`."""
    me = os.getpid()
    cache = ProcessCache()
    cache.on_exec(me, "/usr/bin/nc", 1, 1.0, 1000)
    assert cache.lookup(me).executable == "/usr/bin/nc"  # not this interpreter
    with open(f"/proc/{me}/comm") as handle:
        comm = handle.read().strip()
    cache.on_exec(me, f"/some/dir/{comm}", 1, 2.0, 2000)  # the exec this process did run
    assert cache.lookup(me).executable == os.readlink(f"/proc/{me}/exe")
