"""The auditd backend's raw sends: socket() records name the raw socket, the per-socket rule's
sendto()/sendmsg() records its destinations. Records captured from this project's kernel."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.ecs.auditd import AuditParser, ProbeSocket, parse_audit_lines, probe_socket
from reconwatch.ecs.host import HostInfo
from reconwatch.errors import IngestError
from reconwatch.sensor.auditd_live import RAW_RULE_KEY, _rules, rule_data

HOST = HostInfo(name="h", hostname="h", id="m", agent_id="a")

# `nmap -sS -n -Pn -p 9 127.0.7.1-2` under the sensor's rules (Linux 6.18, x86_64): its
# IPPROTO_RAW socket (fd 3), its packet socket (fd 5), then the two SYNs' sendto() on fd 3.
NMAP = [
    'type=SYSCALL msg=audit(1796529940.223:6760): arch=c000003e syscall=41 success=yes exit=3 a0=2 a1=3 a2=ff a3=0 items=0 ppid=10145 pid=10394 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="nmap" exe="/usr/bin/nmap" key="reconwatch"',
    "type=PROCTITLE msg=audit(1796529940.223:6760): proctitle=6E6D6170002D7353002D6E002D506E002D700039003132372E302E372E312D32",
    "type=EOE msg=audit(1796529940.223:6760): ",
    'type=SYSCALL msg=audit(1796529940.223:6762): arch=c000003e syscall=41 success=yes exit=5 a0=11 a1=3 a2=0 a3=0 items=0 ppid=10145 pid=10394 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="nmap" exe="/usr/bin/nmap" key="reconwatch"',
    "type=PROCTITLE msg=audit(1796529940.223:6762): proctitle=6E6D6170002D7353002D6E002D506E002D700039003132372E302E372E312D32",
    "type=EOE msg=audit(1796529940.223:6762): ",
    'type=SYSCALL msg=audit(1796529940.239:6766): arch=c000003e syscall=44 success=yes exit=44 a0=3 a1=55a10730ac10 a2=2c a3=0 items=0 ppid=10145 pid=10394 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="nmap" exe="/usr/bin/nmap" key="reconwatch-raw"',
    "type=SOCKADDR msg=audit(1796529940.239:6766): saddr=020000097F0007020000000000000000",
    "type=PROCTITLE msg=audit(1796529940.239:6766): proctitle=6E6D6170002D7353002D6E002D506E002D700039003132372E302E372E312D32",
    "type=EOE msg=audit(1796529940.239:6766): ",
    'type=SYSCALL msg=audit(1796529940.239:6767): arch=c000003e syscall=44 success=yes exit=44 a0=3 a1=55a10730ac10 a2=2c a3=0 items=0 ppid=10145 pid=10394 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="nmap" exe="/usr/bin/nmap" key="reconwatch-raw"',
    "type=SOCKADDR msg=audit(1796529940.239:6767): saddr=020000097F0007010000000000000000",
    "type=PROCTITLE msg=audit(1796529940.239:6767): proctitle=6E6D6170002D7353002D6E002D506E002D700039003132372E302E372E312D32",
    "type=EOE msg=audit(1796529940.239:6767): ",
]
# fping's raw ICMP socket (fd 3) as recorded; its send below is written in the same format.
FPING = [
    'type=SYSCALL msg=audit(1796529940.279:6768): arch=c000003e syscall=41 success=yes exit=3 a0=2 a1=3 a2=1 a3=fbf73346e7e447e3 items=0 ppid=10145 pid=10415 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="fping" exe="/usr/bin/fping" key="reconwatch"',
    "type=PROCTITLE msg=audit(1796529940.279:6768): proctitle=6670696E67002D71002D720030003132372E302E382E31",
    "type=EOE msg=audit(1796529940.279:6768): ",
]


def send(
    serial: int, fd: int, saddr: str | None, *, pid: int = 10415, exit_: int = 64
) -> list[str]:
    stamp = f"audit(1796529940.3{serial:02d}:{7000 + serial})"
    head = (
        f"type=SYSCALL msg={stamp}: arch=c000003e syscall=44 success=yes exit={exit_} a0={fd:x} "
        f"a1=55a10730ac10 a2=40 a3=0 items=0 ppid=10145 pid={pid} auid=4294967295 uid=0 gid=0 "
        'euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="fping" '
        f'exe="/usr/bin/fping" key="{RAW_RULE_KEY}"'
    )
    records = [head]
    if saddr is not None:
        records.append(f"type=SOCKADDR msg={stamp}: saddr={saddr}")
    return [*records, f"type=EOE msg={stamp}: "]


def parse(lines: list[str]) -> tuple[list[dict], list[IngestError]]:  # type: ignore[type-arg]
    errors: list[IngestError] = []
    docs = list(parse_audit_lines(lines, path="audit.log", host=HOST, on_error=errors.append))
    return docs, errors


def test_nmap_raw_syns_are_attempts_of_nmap_without_a_port() -> None:
    docs, errors = parse(NMAP)
    assert errors == []
    assert [d["destination"] for d in docs] == [{"ip": "127.0.7.2"}, {"ip": "127.0.7.1"}]
    for doc in docs:
        assert doc["event"]["action"] == "connection_attempted"  # type: ignore[index]
        assert doc["reconwatch"] == {"probe": "raw"}
        assert "transport" not in doc["network"]  # type: ignore[operator]  # IPPROTO_RAW
        process = doc["process"]
        assert isinstance(process, dict)
        assert process["executable"] == "/usr/bin/nmap" and process["pid"] == 10394
        assert process["args"] == ["nmap", "-sS", "-n", "-Pn", "-p", "9", "127.0.7.1-2"]
        assert doc["user"] == {"id": "0"}


def test_a_raw_icmp_socket_gives_icmp_once_per_destination() -> None:
    to_8_1 = "020000007F0008010000000000000000"
    lines = [
        *FPING,
        *send(1, 3, to_8_1),
        *send(2, 3, to_8_1),  # the same echo again: counted, not an event
        *send(3, 3, "020000007F0008020000000000000000", exit_=-1),  # failed
        *send(4, 9, "020000007F0008030000000000000000"),  # not a socket audit saw made
        *send(5, 3, None),  # send() on a connected socket: no address
        *send(6, 3, "020000007F000804000000000000000000"),
    ]
    errors: list[IngestError] = []
    parser = AuditParser(path="audit.log", on_error=errors.append)
    conns = [c for n, line in enumerate(lines, 1) for c in parser.feed(line, n)]
    conns += list(parser.flush())
    assert errors == []
    assert [(c.dst_ip, c.transport, c.probe, c.executable) for c in conns] == [
        ("127.0.8.1", "icmp", "raw", "/usr/bin/fping"),
        ("127.0.8.4", "icmp", "raw", "/usr/bin/fping"),
    ]
    assert (parser.raw_sends, parser.raw_repeats, parser.raw_unaddressed) == (3, 1, 1)


def test_packet_socket_sends_name_no_host_and_give_no_event() -> None:
    sll = "11000008020000000000000000000000000000"  # AF_PACKET sockaddr_ll: a device
    socket_record = [
        line.replace(
            "syscall=41 success=yes exit=3 a0=2 a1=3 a2=1",
            "syscall=41 success=yes exit=6 a0=11 a1=3 a2=300",
        )
        for line in FPING
    ]
    parser = AuditParser(path="audit.log")
    seen: list[ProbeSocket] = []
    parser.on_socket = seen.append
    lines = [*socket_record, *send(1, 6, sll)]
    assert [c for n, line in enumerate(lines, 1) for c in parser.feed(line, n)] == []
    assert [(s.fd, s.probe, s.transport) for s in seen] == [(6, "packet", None)]
    assert parser.raw_unaddressed == 1 and parser.error_count == 0


def test_a_malformed_socket_record_is_reported_with_its_line() -> None:
    bad = [line.replace("a0=2 a1=3", "a0=zz a1=3") for line in FPING]
    docs, errors = parse(bad)
    assert docs == [] and [(e.reason, e.line) for e in errors] == [("bad socket record", 1)]


@pytest.mark.parametrize(
    ("family", "kind", "protocol", "expected"),
    [
        (2, 3, 255, True),  # nmap's IPPROTO_RAW
        (10, 3 | 0x80000, 58, True),  # SOCK_CLOEXEC or-ed in
        (17, 3, 0x300, True),  # AF_PACKET SOCK_RAW (masscan, zmap)
        (17, 2, 0x300, True),
        (2, 2, 1, True),  # ICMP datagram ("ping") socket
        (2, 2, 17, False),  # UDP: connect()/sendto() are audited as connects or not at all
        (16, 3, 0, False),  # netlink raw: nmap's route queries, no host
        (2, 1, 6, False),
    ],
)
def test_which_sockets_have_their_sends_audited(
    family: int, kind: int, protocol: int, expected: bool
) -> None:
    assert probe_socket(family, kind, protocol) is expected


def test_rules_audit_raw_socket_creation_and_then_only_that_fd() -> None:
    rules = [" ".join(r) for r in _rules()]
    assert "-F arch=b64 -S socket -F a1&=3 -F success=1 -k reconwatch" in rules
    assert "-F arch=b64 -S socket -F a0=17 -F success=1 -k reconwatch" in rules
    sock = ProbeSocket(pid=4242, fd=3, family=2, type=3, protocol=255, arch=0xC000003E)
    data = rule_data(sock)
    flags, action, count = struct.unpack_from("=3I", data)
    words = struct.unpack_from("=256I", data, 12)
    mask, fields, values = words[:64], words[64 : 64 + count], words[128 : 128 + count]
    assert (flags, action, count) == (4, 2, 5)  # AUDIT_FILTER_EXIT, AUDIT_ALWAYS
    # sendto (44) and sendmsg (46) on x86_64, nothing else
    assert [n for n in range(2048) if mask[n // 32] >> (n % 32) & 1] == [44, 46]
    # arch, pid, a0 (the fd), success, the key's length
    assert list(zip(fields, values, strict=True)) == [
        (11, 0xC000003E),
        (0, 4242),
        (200, 3),
        (104, 1),
        (210, 14),
    ]
    assert data.endswith(struct.pack("=I", 14) + RAW_RULE_KEY.encode())


_SADDRS = st.sampled_from(
    ["020000007F000801", "0A0000000000000000000000000000000000000000000001", "1100", "02"]
)
_SOCKET_ARGS = st.tuples(
    st.sampled_from(["2", "a", "11", "10", "1", "zz"]),  # AF_INET, AF_INET6, AF_PACKET, ...
    st.sampled_from(["3", "2", "1", "80003", "803"]),  # SOCK_RAW, SOCK_DGRAM, flags or-ed in
    st.sampled_from(["ff", "1", "3a", "6", "11", "300", "0"]),
    st.sampled_from(["3", "4", "-13", "x"]),  # the fd it returned, or an error
)
_SENDS = st.lists(
    st.tuples(
        st.sampled_from([3, 4, 9]),
        st.one_of(st.none(), st.binary(max_size=30).map(lambda b: b.hex().upper()), _SADDRS),
        st.sampled_from([64, -1, 0]),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(args=_SOCKET_ARGS, sends=_SENDS)
def test_any_socket_and_send_records_parse_or_are_reported(
    args: tuple[str, str, str, str], sends: list[tuple[int, str | None, int]]
) -> None:
    """Whatever socket() and sendto() records say, the parser yields well-formed raw attempts
    (a probe, no port) or reports a bad record with its line; it never raises."""
    family, kind, protocol, fd = args
    record = [
        line.replace("exit=3 a0=2 a1=3 a2=1", f"exit={fd} a0={family} a1={kind} a2={protocol}")
        for line in FPING
    ]
    lines = record + [
        line for n, (sfd, saddr, ret) in enumerate(sends) for line in send(n, sfd, saddr, exit_=ret)
    ]
    docs, errors = parse(lines)
    for doc in docs:
        assert doc["reconwatch"]["probe"] in ("raw", "datagram")  # type: ignore[index]
        assert "port" not in doc["destination"]  # type: ignore[operator]
    assert all(isinstance(e, IngestError) and e.line >= 1 for e in errors)
