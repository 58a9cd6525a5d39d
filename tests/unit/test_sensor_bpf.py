"""bpftrace line parsing, the exec cache, lost-event accounting and start-up error messages."""

from __future__ import annotations

import os

import pytest

from reconwatch.sensor import procs
from reconwatch.sensor.bpf import BpfCollector, explain_failure, script_path
from reconwatch.sensor.procs import ProcessCache


def collector() -> BpfCollector:
    return BpfCollector(binary="bpftrace", cache=ProcessCache())


def test_script_is_shipped_in_the_package() -> None:
    text = script_path().read_text()
    assert "sock:inet_sock_set_state" in text and "sched:sched_process_exec" in text


def test_connect_line_uses_exec_cache_for_a_process_already_gone() -> None:
    c = collector()
    gone = 2**22 + 12345  # above pid_max defaults: no /proc entry
    assert c.handle_line(f"X\t1000\t{gone}\t1\t0\t/usr/bin/nmap\n") is None
    conn = c.handle_line(f"C\t2000\t{gone}\t0\t4\t127.0.0.1\t0\t127.0.1.7\t9\tnmap\n")
    assert conn is not None
    assert conn.executable == "/usr/bin/nmap"
    assert (conn.dst_ip, conn.dst_port, conn.family, conn.transport) == ("127.0.1.7", 9, 4, "tcp")
    assert conn.src_port is None  # 0: not yet assigned at SYN_SENT
    assert conn.user_name == "root" and conn.uid == 0
    assert c.stats.attempted == 1 and c.stats.executable_unknown == 0


def test_unknown_executable_is_marked_and_counted() -> None:
    c = collector()
    conn = c.handle_line(f"C\t5\t{2**22 + 99}\t0\t6\t::1\t0\t::1\t22\tmy\tcomm\n")
    assert conn is not None and conn.executable is None and conn.name == "my\tcomm"
    assert c.stats.executable_unknown == 1


def test_relative_exec_path_is_not_trusted() -> None:
    c = collector()
    pid = 2**22 + 7
    c.handle_line(f"X\t1\t{pid}\t1\t0\t./scan\n")
    conn = c.handle_line(f"C\t2\t{pid}\t0\t4\t127.0.0.1\t0\t127.0.0.2\t80\tscan\n")
    assert conn is not None and conn.executable is None


def test_falls_back_to_proc_for_processes_started_before_the_sensor() -> None:
    c = collector()
    c.own_pids.clear()
    conn = c.handle_line(f"C\t2\t{os.getpid()}\t0\t4\t127.0.0.1\t0\t127.0.0.2\t80\tpython\n")
    assert conn is not None and conn.executable == os.readlink("/proc/self/exe")


def test_own_traffic_is_not_reported() -> None:
    c = collector()
    assert c.handle_line(f"C\t2\t{os.getpid()}\t0\t4\t127.0.0.1\t0\t127.0.0.2\t80\tpy\n") is None
    assert c.stats.own == 1


def test_udp_destinations_are_reported_once_per_process() -> None:
    c = collector()
    line = f"U\t1\t{2**22 + 5}\t0\t4\t127.0.0.53\t53\tdig\n"
    first = c.handle_line(line)
    assert first is not None and first.transport == "udp" and first.dst_port == 53
    assert c.handle_line(line) is None
    assert c.stats.udp == 1 and c.stats.udp_repeats == 1


def test_accept_line_is_ingress_with_peer_as_source() -> None:
    c = collector()
    conn = c.handle_line(f"A\t1\t{2**22 + 6}\t0\t4\t127.0.0.1\t40000\tsshd\n")
    assert conn is not None and conn.action == "connection_accepted"
    assert (conn.dst_ip, conn.dst_port) == ("127.0.0.1", 40000)


def test_lost_events_and_bad_lines_are_counted() -> None:
    c = collector()
    c.handle_line("Lost 17 events\n")
    c.handle_line("Lost 3 events\n")
    c.handle_line("C\tnot-a-number\n")
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
