"""Alert documents: Kibana's shape for aggregating and non-aggregating rows."""

from __future__ import annotations

from datetime import UTC, datetime

from reconwatch.alerts.document import build_alert
from reconwatch.engine.schedule import window_at
from reconwatch.rules.builtin import load_builtin

T = datetime(2025, 7, 16, 10, 0, tzinfo=UTC)


def test_aggregating_alert_has_the_row_and_kibana_fields() -> None:
    rule = load_builtin("subnet-scanning")
    window = window_at(rule, T)
    row = {"process.executable": "/usr/bin/nmap", "host.name": "db-002", "Esql.event_count": 9}
    alert = build_alert(
        rule, window, row, alert_id="x", aggregating=True, source={}, space="default", evidence=None
    )
    assert alert["@timestamp"] == "2025-07-16T10:00:00.000Z"
    assert alert["event.kind"] == "signal" and alert["Esql.event_count"] == 9
    assert alert["kibana.alert.reason"] == (
        "event on db-002 created medium alert Potential Subnet Scanning Activity from "
        "Compromised Host."
    )
    assert alert["kibana.alert.rule.note"] == rule.note and "## Triage" in rule.note
    assert alert["kibana.alert.rule.created_at"] == "2025-03-04T00:00:00.000Z"
    assert alert["kibana.alert.rule.timestamp_override"] == "event.ingested"
    assert alert["reconwatch.run.from"] == "2025-07-16T08:59:00.000Z"
    assert "reconwatch.evidence" not in alert and "kibana.alert.original_time" not in alert
    again = build_alert(
        rule, window, row, alert_id="y", aggregating=True, source={}, space="default", evidence=None
    )
    assert again["kibana.alert.rule.execution.uuid"] == alert["kibana.alert.rule.execution.uuid"]
    later = build_alert(
        rule, window_at(rule, T.replace(hour=11)), row, alert_id="z", aggregating=True,
        source={}, space="default", evidence=None,
    )  # fmt: skip
    assert later["kibana.alert.rule.execution.uuid"] != alert["kibana.alert.rule.execution.uuid"]


def test_non_aggregating_alert_merges_the_source_event() -> None:
    rule = load_builtin("subnet-scanning-seed")
    window = window_at(rule, T)
    source = {
        "@timestamp": "2025-07-16T09:30:00.000Z",
        "event.kind": "event",
        "event.category": ["network"],
        "process.name": "nc",
        "user.name": "www-data",
    }
    row = {
        "_id": "abc",
        "_index": "logs-endpoint.events.network-default",
        "destination.ip": "10.0.0.5",
    }
    alert = build_alert(
        rule, window, row, alert_id="id", aggregating=False, source=source, space="s1",
        evidence={"available": True},
    )  # fmt: skip
    assert alert["event.kind"] == "signal" and alert["user.name"] == "www-data"
    assert alert["kibana.alert.original_time"] == "2025-07-16T09:30:00.000Z"
    assert alert["kibana.alert.ancestors"] == [
        {"id": "abc", "type": "event", "index": "logs-endpoint.events.network-default", "depth": 0}
    ]
    assert alert["kibana.space_ids"] == ["s1"]
    assert alert["kibana.alert.reason"].startswith(
        "network event with process nc, to 10.0.0.5, by www-data created low alert"
    )
    assert alert["reconwatch.evidence"] == {"available": True}
