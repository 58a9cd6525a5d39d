"""Kibana's manual run / gap fill over a range: one run per interval, each over [T+from, T+to];
aggregating alerts once per run, non-aggregating alerts deduplicated by id across overlaps."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

from reconwatch.engine.detect import DatasetBackend, Schedule, detect
from reconwatch.engine.run import RuleExecutor
from reconwatch.engine.schedule import runs_between
from reconwatch.ingest import Dataset
from reconwatch.plan.values import format_datetime
from reconwatch.rules.builtin import load_builtin
from reconwatch.rules.load import load_rule_text

T0 = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)

NETCAT_RULE = """
[metadata]
creation_date = "2025/07/16"
maturity = "production"
updated_date = "2025/07/16"

[rule]
author = ["reconwatch tests"]
description = "A netcat connection attempt (non-aggregating ES|QL rule)."
from = "now-61m"
interval = "1h"
language = "esql"
license = "Apache-2.0"
name = "Netcat Connection Attempt"
risk_score = 47
rule_id = "1c1bd4a0-4a4e-4f0e-9d0c-2c3cfe0f3a01"
severity = "medium"
timestamp_override = "event.ingested"
type = "esql"
query = '''
from logs-endpoint.events.network-* metadata _id, _version, _index
| where process.name == "nc" and event.action == "connection_attempted"
| keep _id, _version, _index, @timestamp, host.name, process.executable, destination.ip
'''
"""


def _event(at: datetime, exe: str, ip: str, host: str = "web-01") -> dict[str, object]:
    return {
        "@timestamp": format_datetime(at),
        "event": {
            "action": "connection_attempted",
            "type": ["start"],
            "category": ["network"],
            "ingested": format_datetime(at + timedelta(seconds=2)),
        },
        "host": {"name": host, "os": {"type": "linux"}},
        "agent": {"id": f"agent-{host}"},
        "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1], "pid": 4242},
        "destination": {"ip": ip, "port": 22},
    }


def test_runs_step_one_interval_from_the_range_start() -> None:
    rule = load_builtin("subnet-scanning-seed")
    windows = runs_between(rule, T0, T0 + timedelta(hours=3))
    assert [w.run_at for w in windows] == [T0 + timedelta(hours=h) for h in (1, 2, 3)]
    assert [(w.start, w.end) for w in windows] == [
        (w.run_at - timedelta(minutes=61), w.run_at) for w in windows
    ]
    assert {w.execution_type for w in windows} == {"manual"}


def test_long_scan_alerts_once_per_run() -> None:
    """A sweep of 300 addresses repeated every hour from 09:00 to 12:00: three hourly runs, three
    alerts (aggregating ids carry the run's window), each with that run's own evidence."""
    base = ipaddress.IPv4Address("10.1.0.1")
    scan = [
        _event(T0 + timedelta(seconds=10 * i), "/usr/bin/nmap", str(base + i % 300))
        for i in range(3 * 360)
    ]
    rule = load_builtin("subnet-scanning-seed")
    backend = DatasetBackend(Dataset.from_documents(scan))
    report = detect([rule], backend, Schedule(first=T0, last=T0 + timedelta(hours=3)))
    alerts = report.alerts
    assert [a["reconwatch.run.index"] for a in alerts] == [0, 1, 2]
    assert [a["reconwatch.run.at"] for a in alerts] == [
        "2025-07-16T10:00:00.000Z",
        "2025-07-16T11:00:00.000Z",
        "2025-07-16T12:00:00.000Z",
    ]
    assert len({a["kibana.alert.uuid"] for a in alerts}) == 3
    assert {a["process.executable"] for a in alerts} == {"/usr/bin/nmap"}
    assert [a["reconwatch.run.from"] for a in alerts] == [
        "2025-07-16T08:59:00.000Z",
        "2025-07-16T09:59:00.000Z",
        "2025-07-16T10:59:00.000Z",
    ]
    # Each run counts only its hour: event.ingested (@timestamp + 2s) in [T-61m, T] and the
    # query's own `@timestamp > now() - 1 hours` leave (T-1h, T-2s]: 359 of the 1080 events.
    assert [a["Esql.event_count"] for a in alerts] == [359, 359, 359]
    evidence = [a["reconwatch.evidence"] for a in alerts]
    assert [e["event_count"] for e in evidence] == [359, 359, 359]  # type: ignore[index]
    assert evidence[1]["first_seen"] == "2025-07-16T10:00:10.000Z"  # type: ignore[index]
    assert evidence[1]["last_seen"] == "2025-07-16T10:59:50.000Z"  # type: ignore[index]


def test_non_aggregating_alert_in_the_overlap_is_deduplicated() -> None:
    """An nc attempt at 09:59:30 lies in the 10:00 run's window and in the 1-minute overlap of
    the 11:00 run's: one alert (from the first run), as Kibana's id-based persistence does."""
    rule = load_rule_text(NETCAT_RULE, "netcat.toml")
    docs = [
        _event(T0 + timedelta(minutes=59, seconds=30), "/usr/bin/nc", "10.0.0.5"),
        _event(T0 + timedelta(minutes=90), "/usr/bin/nc", "10.0.0.6"),
        _event(T0 + timedelta(minutes=30), "/usr/bin/ssh", "10.0.0.7"),
    ]
    backend = DatasetBackend(Dataset.from_documents(docs))
    report = detect([rule], backend, Schedule(first=T0, last=T0 + timedelta(hours=2)))
    alerts = report.alerts
    assert [(a["destination.ip"], a["reconwatch.run.index"]) for a in alerts] == [
        ("10.0.0.5", 0),
        ("10.0.0.6", 1),
    ]
    # The 11:00 run did see the overlapping event: its id equals the 10:00 run's alert id.
    windows = runs_between(rule, T0, T0 + timedelta(hours=2))
    second = RuleExecutor(rule, backend).run(windows[1])
    assert second.rows == 2
    ids = {a["destination.ip"]: a["kibana.alert.uuid"] for a in second.alerts}
    assert ids["10.0.0.5"] == alerts[0]["kibana.alert.uuid"]
