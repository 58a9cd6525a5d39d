"""auditd parser: real audit records -> Elastic Defend network events, bad records counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import SHARED
from reconwatch.ecs.auditd import AuditParser, decode_sockaddr, parse_audit_lines
from reconwatch.ecs.host import HostInfo
from reconwatch.errors import IngestError
from reconwatch.ingest.auditd import AuditLines
from reconwatch.ingest.report import IngestReport

REAL = SHARED / "data" / "real" / "auditd"
HOST = HostInfo(name="web-1", hostname="web-1", id="m-1", agent_id="a-1")


def real(name: str) -> list[str]:
    if not REAL.is_dir():
        pytest.skip(f"real audit logs not found at {REAL} (the shared dir beside the checkout)")
    # split("\n"), as file iteration does: str.splitlines() also splits at 0x1d (enriched logs).
    return (REAL / name).read_text(encoding="utf-8").split("\n")


def parse(lines: list[str], host: HostInfo | None = HOST) -> tuple[list[dict], list[IngestError]]:  # type: ignore[type-arg]
    errors: list[IngestError] = []
    docs = list(parse_audit_lines(lines, path="audit.log", host=host, on_error=errors.append))
    return docs, errors


def test_laurel_connect_ipv4_and_ipv6_einprogress() -> None:
    docs, errors = parse(real("laurel--record-connect.txt"))
    assert errors == []
    assert [(d["destination"]["ip"], d["destination"]["port"]) for d in docs] == [
        ("127.0.0.1", 11211),
        ("::1", 11211),
    ]
    first, second = docs
    assert first["event"]["outcome"] == "success"
    assert second["event"]["outcome"] == "unknown"  # exit=-115 EINPROGRESS
    assert first["@timestamp"] == "2024-08-16T14:44:02.459Z"
    assert first["process"]["executable"] == "/usr/bin/php"
    assert first["process"]["name"] == "php"
    assert first["process"]["pid"] == 1074252
    assert first["user"] == {"id": "48"}
    assert first["network"] == {"type": "ipv4", "direction": "egress"}
    assert second["network"]["type"] == "ipv6"
    assert first["event"]["action"] == "connection_attempted"
    assert first["event"]["dataset"] == "endpoint.events.network"
    assert first["host"]["name"] == "web-1" and first["agent"]["id"] == "a-1"
    assert first["data_stream"] == {
        "dataset": "endpoint.events.network",
        "namespace": "default",
        "type": "logs",
    }


def test_unix_and_netlink_sockets_are_ignored() -> None:
    docs, errors = parse(real("laurel--record-nscd.txt"))
    assert docs == [] and errors == []


def test_enriched_fields_after_group_separator() -> None:
    lines = [
        (
            "type=SYSCALL msg=audit(3.0:9): arch=c000003e syscall=42 success=no exit=-115 a0=3 pid=7 "
            'uid=1000 comm="curl" exe="/usr/bin/curl"\x1dARCH=x86_64 SYSCALL=connect UID="alice"'
        ),
        "type=SOCKADDR msg=audit(3.0:9): saddr=0200005001020304\x1dSADDR={ saddr_fam=inet }",
    ]
    (doc,), errors = parse(lines)
    assert errors == []
    assert doc["user"] == {"id": "1000", "name": "alice"}
    assert doc["destination"] == {"ip": "1.2.3.4", "port": 80}
    # str.splitlines() cuts enriched records in two; the tail is not reported as garbage.
    docs, errors = parse("\n".join(lines).splitlines())
    assert len(docs) == 1 and errors == []


def test_hex_encoded_exe() -> None:
    docs, errors = parse(real("go-libaudit--testdata_normal.log"))
    assert errors == []
    assert len(docs) == 1
    (doc,) = docs
    assert doc["destination"] == {"ip": "169.254.169.254", "port": 80}
    # exe was hex-encoded because it contains a space
    assert doc["process"]["executable"] == "/usr/bin/python2.7;58d1ccfb (deleted)"


def test_big_endian_family_is_host_byte_order() -> None:
    lines = real("laurel--record-bind-ipv4-bigendian.txt")
    saddr = next(line.split("saddr=")[1].split()[0] for line in lines if "SOCKADDR" in line)
    addr = decode_sockaddr(saddr, big_endian=True)
    assert (addr.family, addr.ip, addr.port) == (2, "0.0.0.0", 55555)
    # The same bytes read little-endian are no inet family: the arch decides.
    assert decode_sockaddr(saddr, big_endian=False).ip is None
    docs, errors = parse(lines)
    assert docs == [] and errors == []  # bind, not connect


def test_proctitle_becomes_args() -> None:
    lines = [
        (
            "type=SYSCALL msg=audit(1700000000.001:7): arch=c000003e syscall=42 success=no exit=-111 "
            'a0=3 items=0 ppid=1 pid=99 uid=1000 comm="nc" exe="/usr/bin/nc.openbsd"'
        ),
        "type=SOCKADDR msg=audit(1700000000.001:7): saddr=0A000050000000000000000000000000000000000000000100000000",
        "type=PROCTITLE msg=audit(1700000000.001:7): proctitle=6E63002D7A003A3A310038300000",
        "type=EOE msg=audit(1700000000.001:7): ",
    ]
    (doc,), errors = parse(lines)
    assert errors == []
    assert doc["process"]["args"] == ["nc", "-z", "::1", "80"]
    assert doc["event"]["outcome"] == "failure"
    assert doc["destination"] == {"ip": "::1", "port": 80}


def test_i386_socketcall_connect_and_interleaved_records() -> None:
    lines = [
        'type=SYSCALL msg=audit(1.5:1): arch=40000003 syscall=102 success=yes exit=0 a0=3 pid=5 comm="a" exe="/a"',
        'type=SYSCALL msg=audit(1.5:2): arch=40000003 syscall=362 success=yes exit=0 a0=4 pid=6 comm="b" exe="/b"',
        "type=SOCKADDR msg=audit(1.5:2): saddr=020000167F0000020000000000000000",
        "type=SOCKADDR msg=audit(1.5:1): saddr=020000507F0000010000000000000000",
    ]
    docs, errors = parse(lines)
    assert errors == []
    assert sorted((d["process"]["executable"], d["destination"]["port"]) for d in docs) == [
        ("/a", 80),
        ("/b", 22),
    ]


def test_bad_records_are_counted_with_line_and_skipped() -> None:
    lines = [
        "garbage",
        'type=SYSCALL msg=audit(2.0:3): arch=c000003e syscall=42 exit=0 pid=1 exe="/x"',
        "type=SOCKADDR msg=audit(2.0:3): saddr=0200ZZ",
        "type=EOE msg=audit(2.0:3):",
        'type=SYSCALL msg=audit(2.0:4): arch=c000003e syscall=42 exit=0 pid=1 exe="/y"',
        "type=SOCKADDR msg=audit(2.0:4): saddr=020000507F0000010000000000000000",
    ]
    docs, errors = parse(lines)
    assert [d["process"]["executable"] for d in docs] == ["/y"]
    assert [(e.path, e.line) for e in errors] == [("audit.log", 1), ("audit.log", 2)]
    assert "not an audit record" in errors[0].reason


def test_without_host_no_host_or_agent_fields() -> None:
    docs, _ = parse(real("laurel--record-connect.txt"), host=None)
    assert docs and all("host" not in d and "agent" not in d for d in docs)


def test_rhel7_log_reports_only_truly_bad_lines() -> None:
    parser = AuditParser(path="rhel7.log")
    for number, text in enumerate(real("go-libaudit--auparse_testdata_audit-rhel7.log"), 1):
        list(parser.feed(text, number))
    list(parser.flush())
    # `type=UNKNOWN[1329] msg=?` has no header; the lone connect SYSCALL lacks its SOCKADDR.
    assert parser.error_count == 2


@pytest.mark.parametrize("digits", [400, 5000])
def test_a_timestamp_too_long_for_a_float_or_int_is_a_bad_line(digits: int) -> None:
    """Found by bench/fuzz_sensor.py: 400 digits overflowed the float, 5000 hit int()'s limit."""
    stamp = "9" * digits
    lines = [
        f"type=SYSCALL msg=audit({stamp}.1:3): arch=c000003e syscall=42 exit=0 pid={stamp}",
        'type=SYSCALL msg=audit(2.0:4): arch=c000003e syscall=42 exit=0 pid=1 exe="/y"',
        "type=SOCKADDR msg=audit(2.0:4): saddr=020000507F0000010000000000000000",
    ]
    docs, errors = parse(lines)
    assert [d["process"]["executable"] for d in docs] == ["/y"]
    assert [(e.line, e.reason) for e in errors] == [
        (1, "not an audit record (no `type=... msg=audit(...)` header)")
    ]
    report = IngestReport()
    reader = AuditLines(Path("audit.log"), report)
    found = [pair for n, text in enumerate(lines, 1) for pair in reader.feed(text.encode(), n)]
    found += reader.flush()
    assert [line for line, _ in found] == [2] and [e.line for e in report.errors] == [1]


def test_an_executable_that_is_not_utf8_keeps_its_bytes_in_entity_id() -> None:
    def exe_doc(raw: bytes) -> dict:  # type: ignore[type-arg]
        lines = [
            f"type=SYSCALL msg=audit(2.0:4): arch=c000003e syscall=42 exit=0 pid=1 exe={raw.hex()}",
            "type=SOCKADDR msg=audit(2.0:4): saddr=020000507F0000010000000000000000",
        ]
        docs, errors = parse(lines)
        assert errors == []
        return docs[0]["process"]  # type: ignore[no-any-return]

    evil, other = exe_doc(b"/tmp/evil\xff/scan"), exe_doc(b"/tmp/evil\xfe/scan")
    assert evil["executable"] == other["executable"] == "/tmp/evil\ufffd/scan"
    assert evil["entity_id"] != other["entity_id"]


@pytest.mark.parametrize("pid", ["-13659", "+5", "\u0663", " 7"])
def test_a_pid_that_is_not_ascii_digits_is_a_bad_record(pid: str) -> None:
    """Found by bench/fuzz_sensor.py: int() took `pid=-13659` and the event carried it."""
    lines = [
        f'type=SYSCALL msg=audit(2.0:4): arch=c000003e syscall=42 exit=0 pid={pid!s} exe="/y"',
        "type=SOCKADDR msg=audit(2.0:4): saddr=020000507F0000010000000000000000",
    ]
    docs, errors = parse(lines)
    assert docs == [] and [e.line for e in errors] == [1]
    assert "not a number" in errors[0].reason
