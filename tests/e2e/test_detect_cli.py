"""The detect, rules and simulate commands end to end through the CLI entry point."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SHARED, run_cli
from reconwatch.rules.builtin import builtin_text


def test_broken_rule_file_exit_2_names_file_field_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        builtin_text("subnet-scanning-seed").replace('severity = "low"', 'severity = "urgent"')
    )
    code, out, _ = run_cli(["rules", "check", str(bad)], capsys)
    assert code == 2
    assert (
        f"INVALID {bad}: rule.severity: 'urgent' is not one of low, medium, high, critical" in out
    )
    code, _, err = run_cli(
        ["detect", str(tmp_path / "x.ndjson"), "--rule", str(bad), "--now", "2025-07-16T10:00:00Z"],
        capsys,
    )
    assert code == 2
    assert "bad.toml: rule.severity" in err


def test_rules_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["rules", "list"], capsys)
    assert code == 0 and "subnet-scanning-seed" in out and "port-scanning" in out
    code, out, _ = run_cli(["rules", "show", "subnet-scanning"], capsys)
    assert code == 0 and "Possible investigation steps" in out


def test_simulate_then_detect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("reconwatch.query", reason="the query facade has not landed")
    events = tmp_path / "ev.ndjson"
    code, _, _ = run_cli(
        [
            "simulate",
            "--hosts",
            "5",
            "--hours",
            "1",
            "--scan",
            "subnet",
            "--seed",
            "1",
            "--start",
            "2025-07-16T09:00:00Z",
            "-o",
            str(events),
        ],
        capsys,
    )
    assert code == 0
    code, out, err = run_cli(
        ["detect", str(events), "--now", "2025-07-16T10:00:00Z", "--format", "ndjson"], capsys
    )
    assert code == 0, err
    alerts = [json.loads(line) for line in out.splitlines()]
    assert [a["process.executable"] for a in alerts] == ["/usr/bin/nmap"]
    assert alerts[0]["Esql.destination_ip_count_distinct"] == 300
    assert alerts[0]["reconwatch.evidence"]["destination"]["distinct_ips"] == 300


def test_demo(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("reconwatch.query", reason="the query facade has not landed")
    code, out, err = run_cli(["detect", "--demo", "--format", "json"], capsys)
    assert code == 0, err
    alerts = json.loads(out)
    assert len(alerts) == 1 and alerts[0]["Esql.host_name_values"] == "db-002"


# -- as a user: subprocess, real stdout/stderr --------------------------------------------------

REAL_AUDITD = SHARED / "data" / "real" / "auditd"
RUN_AT = "2025-07-16T10:00:00Z"


def reconwatch(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from reconwatch.cli.main import main; main()", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def _audit_connect(stamp: float, serial: int, ip: str, port: int, exe: str, pid: int) -> str:
    """One connect() event as auditd writes it: SYSCALL, SOCKADDR, EOE (laurel's record shape)."""
    head = f"msg=audit({stamp:.3f}:{serial}):"
    saddr = "0200" + f"{port:04X}" + ipaddress.IPv4Address(ip).packed.hex().upper() + "0" * 16
    return (
        f"type=SYSCALL {head} arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffd1 a2=10 "
        f"a3=0 items=0 ppid=1000 pid={pid} auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 "
        f'sgid=0 fsgid=0 tty=pts0 ses=1 comm="{exe.rsplit("/", 1)[-1]}" exe="{exe}" key=(null)\n'
        f"type=SOCKADDR {head} saddr={saddr}\n"
        f"type=EOE {head} \n"
    )


@pytest.fixture
def audit_scan(tmp_path: Path) -> Path:
    """An audit log of a /24-and-a-bit sweep by nmap from 09:20Z, a curl call, one broken line."""
    start = datetime(2025, 7, 16, 9, 20, tzinfo=UTC).timestamp()
    parts = [_audit_connect(start, 1, "93.184.215.14", 443, "/usr/bin/curl", 4000)]
    parts.append("this line is not an audit record\n")
    base = ipaddress.IPv4Address("10.9.0.1")
    for i in range(300):
        parts.append(
            _audit_connect(start + 1 + i * 0.2, 10 + i, str(base + i), 22, "/usr/bin/nmap", 4242)
        )
    path = tmp_path / "audit.log"
    path.write_text("".join(parts))
    return path


@pytest.mark.parametrize(
    "how", [["--input-format", "auditd"], ["--input-format", "auditd", "--format", "ndjson"], []]
)
def test_detect_reads_audit_logs(audit_scan: Path, how: list[str]) -> None:
    done = reconwatch("detect", str(audit_scan), "--now", RUN_AT, *how)
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["process.executable"] for a in alerts] == ["/usr/bin/nmap"]
    assert alerts[0]["Esql.destination_ip_count_distinct"] == 300
    assert alerts[0]["Esql.host_name_values"] == "audit.log"
    evidence = alerts[0]["reconwatch.evidence"]
    assert evidence["destination"]["blocks"][0] == {
        "cidr": "10.9.0.0/24",
        "distinct_ips": 255,
        "events": 255,
    }
    assert f"{audit_scan}:4: not an audit record" in done.stderr
    assert "1 bad event(s) skipped" in done.stderr


def test_detect_input_format_errors(audit_scan: Path) -> None:
    done = reconwatch("detect", str(audit_scan), "--now", RUN_AT, "--input-format", "evtx")
    assert done.returncode == 2 and "--input-format 'evtx'" in done.stderr
    done = reconwatch("detect", str(audit_scan), "--now", RUN_AT, "--format", "yaml")
    assert done.returncode == 2 and "choose one of ndjson, json, csv, table" in done.stderr
    # An input format is not an output format (issue 10): the flag says which it is.
    done = reconwatch("detect", str(audit_scan), "--now", RUN_AT, "--format", "auditd")
    assert done.returncode == 2 and "use --input-format auditd" in done.stderr


def test_detect_real_audit_records(tmp_path: Path) -> None:
    """Laurel's two real connect() records (php to memcached on 127.0.0.1 and ::1) reach a rule."""
    real = REAL_AUDITD / "laurel--record-connect.txt"
    if not real.exists():
        pytest.skip(f"shared real audit data not found at {real}")
    rule = tmp_path / "two_ips.toml"
    rule.write_text(
        builtin_text("subnet-scanning-seed").replace(
            "Esql.destination_ip_count_distinct > 250", "Esql.destination_ip_count_distinct >= 2"
        )
    )
    done = reconwatch(
        "detect", "--input-format", "auditd", str(real), "--rule", str(rule), "--now",
        "2024-08-16T15:00:00Z",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (alert,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert alert["process.executable"] == "/usr/bin/php"
    assert alert["Esql.event_count"] == 2
    ips = [s["destination.ip"] for s in alert["reconwatch.evidence"]["sample"]]
    assert sorted(ips) == ["127.0.0.1", "::1"]
    # The rhel7 log: a connect whose SOCKADDR is missing and a non-record line, as file:line.
    rhel = REAL_AUDITD / "go-libaudit--auparse_testdata_audit-rhel7.log"
    done = reconwatch("detect", str(rhel), "--now", "2016-12-07T02:00:00Z")
    assert done.returncode == 0, done.stderr
    assert f"{rhel}:28: connect SYSCALL without its SOCKADDR record" in done.stderr


def _wide(*args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    """reconwatch with rich rendering to a terminal this wide (COLUMNS, as a shell sets it)."""
    cmd = [sys.executable, "-c", "from reconwatch.cli.main import main; main()", *args]
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=env)


@pytest.fixture
def mixed_scan(tmp_path: Path) -> Path:
    """nmap on web-01 tries 260 internal and 40 external addresses on ports 22 and 3389."""
    start = datetime(2025, 7, 16, 9, 30, tzinfo=UTC)
    targets = [ipaddress.IPv4Address("10.9.0.1") + i for i in range(260)]
    targets += [ipaddress.IPv4Address("203.0.113.1") + i for i in range(40)]
    lines = []
    for i, ip in enumerate(targets):
        at = (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        lines.append(
            json.dumps(
                {
                    "@timestamp": at,
                    "event": {"action": "connection_attempted", "type": ["start"]},
                    "host": {"name": "web-01", "os": {"type": "linux"}},
                    "agent": {"id": "a6f1c0de-0000-4000-8000-000000000001"},
                    "user": {"name": "www-data"},
                    "process": {"executable": "/tmp/.x/nmap", "name": "nmap", "pid": 31337},
                    "destination": {"ip": str(ip), "port": 22 if i % 2 else 3389},
                    "network": {"transport": "tcp"},
                }
            )
        )
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_report_reads_like_an_analyst_report(mixed_scan: Path) -> None:
    done = _wide("detect", str(mixed_scan), "--now", RUN_AT, "--report")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    # Who, what, how bad, which run; MITRE from the rule.
    for text in (
        "Potential Subnet Scanning Activity from Compromised Host",
        "LOW (risk 21)",
        "web-01",
        "/tmp/.x/nmap",
        "300 connection attempts to 300 IPs",
        "2025-07-16 10:00:00Z (scheduled run 0)",
        "TA0007 Discovery / T1046 Network Service Discovery",
        "Esql.destination_ip_count_distinct",
    ):
        assert text in out, text
    # Evidence: blocks with internal/external, ports, attempts per minute, sampled events.
    assert "internal 260 IPs / 260 events" in out
    assert "external 40 IPs / 40 events" in out
    assert re.search(r"10\.9\.0\.0/24\s+255\s+255\s+internal", out)
    assert re.search(r"203\.0\.113\.0/24\s+40\s+40\s+external", out)
    assert re.search(r"destination ports: 2 distinct", out)
    assert re.search(r"^\W*22\s+150\b", out, re.MULTILINE)
    assert "attempts/minute: peak 60, mean 60.0, 5 active" in out
    assert re.search(r"09:30\s+60\s+█+", out)
    assert "user www-data" in out and "10.9.0.1:3389/tcp" in out
    # Each sampled event's line: the file once (all share it), the byte offsets in a column.
    assert "mixed.ndjson" in out and re.search(r"\boffset\b", out)
    # The investigation guide beside the evidence, rendered (headings, not markdown source).
    for heading in (
        "Triage and analysis",
        "Possible investigation steps",
        "False positive analysis",
        "Response and remediation",
    ):
        assert heading in out, heading
    assert "### " not in out
    assert "evidence (source events)" in out and "investigation guide" in out
    assert '"kibana.alert' not in out  # not a JSON dump


def test_report_stacks_on_a_narrow_terminal(mixed_scan: Path) -> None:
    done = _wide("detect", str(mixed_scan), "--now", RUN_AT, "--report", columns=80)
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    evidence, guide = (
        done.stdout.index("evidence (source"),
        done.stdout.index("investigation guide"),
    )
    assert evidence < guide and "Possible investigation steps" in done.stdout


def test_table_view(mixed_scan: Path) -> None:
    done = _wide("detect", str(mixed_scan), "--now", RUN_AT, "--format", "table", columns=160)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "1 alert(s)" in out
    for text in (
        "Potential Subnet Scanning",  # the name wraps in its column
        "LOW (risk 21)",
        "web-01",
        "/tmp/.x/nmap",
        "destination_ip_count_distinct 300",
        "300 IPs: 260 internal, 40 external",
        "10.9.0.0/24 (255)",
        "2 ports (top 22, 3389)",
        "peak 60/min",
        "2025-07-16 10:00:00Z run 0",
    ):
        assert text in out, text
    assert '"kibana.alert' not in out


def test_default_format_table_on_a_terminal_ndjson_when_piped(mixed_scan: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    cmd = [sys.executable, "-c", "from reconwatch.cli.main import main; main()"]
    args = ["detect", str(mixed_scan), "--now", RUN_AT]
    env = {**os.environ, "COLUMNS": "160", "TERM": "dumb"}
    with subprocess.Popen([*cmd, *args], stdout=follower, stderr=subprocess.PIPE, env=env) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=300)
    os.close(leader)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert "1 alert(s)" in shown and "╭" in shown and "kibana.alert.uuid" not in shown
    piped = reconwatch(*args)
    (alert,) = [json.loads(line) for line in piped.stdout.splitlines()]
    assert alert["kibana.alert.rule.name"].startswith("Potential Subnet Scanning")


def test_output_file_gets_the_chosen_format(mixed_scan: Path, tmp_path: Path) -> None:
    report_file, json_file = tmp_path / "report.txt", tmp_path / "alerts.json"
    done = reconwatch(
        "detect", str(mixed_scan), "--now", RUN_AT, "--report", "-o", str(report_file)
    )
    assert done.returncode == 0 and done.stdout == ""
    assert "Possible investigation steps" in report_file.read_text()
    done = reconwatch(
        "detect", str(mixed_scan), "--now", RUN_AT, "-f", "json", "-o", str(json_file)
    )
    assert done.returncode == 0
    (alert,) = json.loads(json_file.read_text())
    assert alert["reconwatch.evidence"]["destination"]["external"]["distinct_ips"] == 40


def test_rules_show_renders_the_guide() -> None:
    done = _wide("rules", "show", "port-scanning")
    assert done.returncode == 0, done.stderr
    assert "Potential Port Scanning Activity from Compromised Host" in done.stdout
    assert "Possible investigation steps" in done.stdout and "## " not in done.stdout
    assert "engine: runs" in done.stdout


def test_simulate_writes_stdout_without_output() -> None:
    done = reconwatch(
        "simulate", "--hosts", "3", "--hours", "0.1", "--scan", "port", "--start", "2025-07-16T09:00:00Z"
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(events) > 1000 and "to stdout" in done.stderr
    assert sum(e["process"]["executable"] == "/usr/bin/nmap" for e in events) >= 1000


def test_rules_check_on_the_upstream_corpus() -> None:
    corpus = SHARED / "rules" / "esql-corpus"
    if not corpus.is_dir():
        pytest.skip(f"shared ES|QL rule corpus not found at {corpus}")
    done = reconwatch("rules", "check", str(corpus))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len([line for line in lines if line.startswith(("OK ", "UNSUPPORTED "))]) == 209
    assert "209 file(s): 209 valid, 0 invalid" in lines[-1]
    unsupported = [line for line in lines if line.startswith("UNSUPPORTED ")]
    # Each rule the engine cannot run says which feature it lacks, with its position.
    assert unsupported and all(re.search(r"line \d+:\d+: unsupported: ", u) for u in unsupported)
    assert any("command [COMPLETION]" in u for u in unsupported)
    # INLINE STATS runs: the rules that need nothing else are runnable.
    assert not any("command [INLINE STATS]" in u for u in unsupported)
    # KQL("...") runs (37 strings in 27 rules); 21 of those rules need nothing else.
    assert not any("function [kql]" in u for u in unsupported)
    assert "rules__cross-platform__multiple_alerts_same_tactic_by_host.toml" in (
        " ".join(line for line in lines if line.startswith("OK "))
    )
    assert "rules__cross-platform__multiple_elastic_defend_behavior_rules_same_host_prevalence" in (
        " ".join(line for line in lines if line.startswith("OK "))
    )


def test_missing_event_file_is_a_usage_error_and_bad_events_are_reported(
    mixed_scan: Path, tmp_path: Path
) -> None:
    done = reconwatch("detect", str(tmp_path / "nope.ndjson"), "--now", RUN_AT)
    assert done.returncode == 2 and "no such file" in done.stderr
    with mixed_scan.open("a") as fh:
        fh.write('{"@timestamp": "yesterday"}\n[1]\n')
    done = reconwatch("detect", str(mixed_scan), "--now", RUN_AT, "-f", "table")
    assert done.returncode == 0, done.stderr
    assert f"{mixed_scan}:301: field [@timestamp]" in done.stderr
    assert f"{mixed_scan}:302: not a JSON object" in done.stderr
    assert "2 bad event(s) skipped" in done.stderr and "1 alert(s)" in done.stdout


def test_report_of_a_non_aggregating_alert(tmp_path: Path) -> None:
    """A non-aggregating rule: the alert is the source event; the evidence shows all of it."""
    rule_text = Path(__file__).resolve().parents[1] / "conformance" / "test_scheduled_runs.py"
    toml = rule_text.read_text().split('NETCAT_RULE = """', 1)[1].split('"""', 1)[0]
    rule = tmp_path / "nc.toml"
    rule.write_text(toml)
    event = {
        "@timestamp": "2025-07-16T09:30:00Z",
        "event": {"action": "connection_attempted", "category": ["network"]},
        "host": {"name": "cache-003", "os": {"type": "linux"}},
        "user": {"name": "root"},
        "process": {"executable": "/usr/bin/nc", "name": "nc", "pid": 2006876},
        "destination": {"ip": "185.125.190.36", "port": 443},
        "network": {"transport": "tcp"},
    }
    events = tmp_path / "nc.ndjson"
    events.write_text(json.dumps(event) + "\n")
    done = _wide("detect", str(events), "-r", str(rule), "--now", RUN_AT, "--report", columns=100)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "MEDIUM (risk 47)" in out and "1 event at 2025-07-16 09:30:00Z" in out
    assert "source event with the query's columns" in out
    assert re.search(r"destination\s+185\.125\.190\.36:443/tcp", out)  # port from the source
    assert re.search(r"185\.125\.190\.0/24\s+1\s+1\s+external", out)


def test_non_aggregating_alerts_merge_their_source_without_evidence(tmp_path: Path) -> None:
    """Kibana merges every non-aggregating alert's source document (one query per page), also
    with --no-evidence: fields outside the query's KEEP are in the alert."""
    rule_text = Path(__file__).resolve().parents[1] / "conformance" / "test_scheduled_runs.py"
    toml = rule_text.read_text().split('NETCAT_RULE = """', 1)[1].split('"""', 1)[0]
    rule = tmp_path / "nc.toml"
    rule.write_text(toml)
    events = tmp_path / "nc.ndjson"
    lines = []
    for i in range(3):
        event = {
            "@timestamp": f"2025-07-16T09:3{i}:00Z",
            "event": {"action": "connection_attempted", "category": ["network"]},
            "host": {"name": f"cache-00{i}", "os": {"type": "linux"}},
            "user": {"name": f"user{i}"},
            "process": {"executable": "/usr/bin/nc", "name": "nc", "pid": 2006876 + i},
            "destination": {"ip": "185.125.190.36", "port": 443},
        }
        lines.append(json.dumps(event))
    events.write_text("\n".join(lines) + "\n")
    for extra in ([], ["--no-evidence"]):
        done = _wide(
            "detect", str(events), "-r", str(rule), "--now", RUN_AT, "-f", "ndjson", *extra
        )
        assert done.returncode == 0, done.stderr
        alerts = [json.loads(line) for line in done.stdout.splitlines()]
        users = sorted(str(a.get("user.name") or a.get("user", {}).get("name")) for a in alerts)
        assert users == ["user0", "user1", "user2"], extra
        assert ("reconwatch.evidence" in alerts[0]) is not bool(extra)
