"""Stream alerts carry evidence read from the group's state at the crossing, like detect's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconwatch.engine.detect import DatasetBackend, Schedule, detect
from reconwatch.engine.watch import RuleWatch
from reconwatch.ingest import Dataset
from reconwatch.plan.values import parse_datetime
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

START = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)


def _lines() -> list[bytes]:
    """nmap on web-01 sweeps 10.9.0.0/24 and 203.0.113.0/26 (two ports each), between chrony."""
    out = []
    targets = [f"10.9.0.{i}" for i in range(1, 255)] + [f"203.0.113.{i}" for i in range(64)]
    for i, ip in enumerate(targets):
        for port in (22, 443):
            at = START + timedelta(seconds=i, milliseconds=port)
            out.append(_event(at, "/tmp/.x/nmap", ip, port, "www-data"))
        out.append(
            _event(
                START + timedelta(seconds=i, milliseconds=900),
                "/usr/sbin/chronyd",
                "10.9.200.1",
                123,
                "chrony",
            )
        )
    return out


def _event(at: datetime, exe: str, ip: str, port: int, user: str) -> bytes:
    doc = {
        "@timestamp": at.isoformat().replace("+00:00", "Z"),
        "event": {"action": "connection_attempted", "type": ["start"]},
        "host": {"name": "web-01", "os": {"type": "linux"}},
        "agent": {"id": "a6f1c0de-0000-4000-8000-000000000001"},
        "user": {"name": user},
        "process": {"executable": exe, "pid": 4242},
        "destination": {"ip": ip, "port": port},
        "network": {"transport": "tcp"},
    }
    return json.dumps(doc).encode()


@pytest.fixture
def scan(tmp_path: Path) -> Path:
    path = tmp_path / "scan.ndjson"
    path.write_bytes(b"\n".join(_lines()) + b"\n")
    return path


def _watch(path: Path, files: bool, evidence: bool = True) -> list[dict[str, object]]:
    watch = RuleWatch.create(
        load_builtin(DEFAULT_RULE), files=[path] if files else [], evidence=evidence
    )
    lines = path.read_bytes().splitlines()
    alerts = []
    for at in range(0, len(lines), 1000):  # batches: the crossing is inside one
        alerts += watch.push_lines(lines[at : at + 1000])
    return alerts


def test_evidence_is_the_state_at_the_crossing_and_matches_detect(scan: Path) -> None:
    (alert,) = _watch(scan, files=True)
    evidence = alert["reconwatch.evidence"]
    assert isinstance(evidence, dict) and evidence["available"] is True
    trigger = str(alert["reconwatch.stream.trigger_time"])
    assert alert["Esql.destination_ip_count_distinct"] == 251
    assert evidence["last_seen"] == trigger
    destination = evidence["destination"]
    assert isinstance(destination, dict) and destination["distinct_ips"] == 251
    # Only distinct addresses are known in the stream: no per-block event counts.
    assert destination["blocks"] == [{"cidr": "10.9.0.0/24", "distinct_ips": 251}]
    assert destination["internal"] == {"distinct_ips": 251}
    # detect run at the trigger time sees the same group: same count, times and blocks.
    report = detect(
        [load_builtin(DEFAULT_RULE)],
        DatasetBackend(Dataset.from_files([scan])),
        Schedule(at=parse_datetime(trigger)),
    )
    (batch,) = report.alerts
    batch_evidence = batch["reconwatch.evidence"]
    assert isinstance(batch_evidence, dict)
    for key in ("event_count", "first_seen", "last_seen", "attempts_per_minute"):
        assert evidence[key] == batch_evidence[key], key
    assert batch_evidence["destination"]["distinct_ips"] == 251  # type: ignore[index]


def test_sample_lines_found_in_the_watched_file(scan: Path) -> None:
    (alert,) = _watch(scan, files=True)
    sample = alert["reconwatch.evidence"]["sample"]  # type: ignore[index]
    assert len(sample) == 5
    assert sample[-1]["@timestamp"] == alert["reconwatch.stream.trigger_time"]
    for event in sample:
        assert event["user.name"] == "www-data" and event["network.transport"] == "tcp"
        assert event["destination.port"] in (22, 443)
        assert event["log.file.path"] == str(scan)
        with scan.open("rb") as fh:
            fh.seek(event["log.offset"])
            line = json.loads(fh.readline())
        assert line["destination"]["ip"] == event["destination.ip"]
        assert line["process"]["executable"] == "/tmp/.x/nmap"


def test_without_files_the_sample_is_what_the_state_knows(scan: Path) -> None:
    (alert,) = _watch(scan, files=False)
    sample = alert["reconwatch.evidence"]["sample"]  # type: ignore[index]
    assert {tuple(sorted(e)) for e in sample} == {
        ("@timestamp", "destination.ip", "process.executable")
    }
    (bare,) = _watch(scan, files=True, evidence=False)
    assert "reconwatch.evidence" not in bare


def test_port_scan_spreads_the_sample_over_ports_timed_by_event_ingested(tmp_path: Path) -> None:
    """The port-scanning rule has no time filter of its own: its window is the lookback on
    event.ingested, so the state's times are ingestion times and the lines are found by them."""
    lines = []
    for port in range(1, 121):
        at = START + timedelta(seconds=port)
        doc = json.loads(_event(at, "/tmp/.x/nmap", "10.9.0.7", port, "www-data"))
        doc["event"]["ingested"] = (at + timedelta(seconds=3)).isoformat().replace("+00:00", "Z")
        doc["event"]["category"] = ["network"]
        doc["source"] = {"ip": "10.9.0.1"}
        doc["process"]["name"] = "nmap"  # the rule's exclusions read it
        doc["network"]["direction"] = "egress"
        lines.append(json.dumps(doc).encode())
    path = tmp_path / "ports.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    watch = RuleWatch.create(load_builtin("port-scanning"), files=[path])
    (alert,) = watch.push_lines(lines)
    evidence = alert["reconwatch.evidence"]
    assert isinstance(evidence, dict)
    ports = evidence["destination_ports"]
    assert isinstance(ports, dict) and ports["distinct"] == evidence["event_count"]
    sample = evidence["sample"]
    assert isinstance(sample, list) and len(sample) == 5
    for event in sample:
        ingested = parse_datetime(event["event.ingested"])
        assert parse_datetime(event["@timestamp"]) == ingested - timedelta(seconds=3)
        assert event["destination.port"] == (ingested - START).seconds - 3
        assert event["user.name"] == "www-data" and "log.offset" in event
