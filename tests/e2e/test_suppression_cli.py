"""Alert suppression end to end: `reconwatch detect --from/--to` over generated events, rules
written here (a SIP-enumeration rule shaped like Elastic's, a non-aggregating netcat rule)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import SHARED
from reconwatch.plan.values import format_datetime

T0 = datetime(2025, 7, 16, 10, 0, tzinfo=UTC)
SIP_RULE_ID = "e7bf9314-f346-45b5-a6ed-044dc3b839c8"
# npm object-hash 3 of [[{field: "Esql.client_ip", value: "10.0.0.5"}, {field: "Esql.server_ip",
# value: "10.0.0.9"}], SIP_RULE_ID, "default"], computed with node.
SIP_INSTANCE_ID = "6cee33cc0d007924db4e82075730718cae2252b7"

HEADER = """
[metadata]
creation_date = "2025/07/16"
maturity = "production"
updated_date = "2025/07/16"

[rule]
author = ["reconwatch tests"]
language = "esql"
license = "Elastic License v2"
risk_score = 47
severity = "medium"
timestamp_override = "event.ingested"
type = "esql"
"""

# Elastic's discovery_potential_sip_extension_enumeration.toml, reading the SIP fields directly
# instead of through JSON_EXTRACT(_source, ...); same grouping, schedule and suppression.
SIP_RULE = (
    HEADER
    + f'''
description = "SIP OPTIONS requests to many extensions from one client within two minutes."
from = "now-9m"
max_signals = 5
name = "Potential SIP Extension Enumeration"
rule_id = "{SIP_RULE_ID}"
query = """
from logs-network_traffic.sip-*, packetbeat-*
| eval
    Esql.method = TO_UPPER(network_traffic.sip.method),
    Esql.to_user = network_traffic.sip.to.uri.username,
    Esql.client_ip = COALESCE(client.ip, source.ip),
    Esql.server_ip = COALESCE(server.ip, destination.ip)
| where Esql.method == "OPTIONS" and Esql.to_user is not null
    and Esql.client_ip is not null and Esql.server_ip is not null
| eval Esql.time_window = DATE_TRUNC(2 minutes, @timestamp)
| stats Esql.distinct_extensions = COUNT_DISTINCT(Esql.to_user), Esql.request_count = COUNT(*)
  by Esql.time_window, Esql.client_ip, Esql.server_ip
| where Esql.distinct_extensions >= 20
| keep Esql.*
"""

[rule.alert_suppression]
group_by = ["Esql.client_ip", "Esql.server_ip"]
missing_fields_strategy = "suppress"
'''
)
ONE_HOUR = '\n[rule.alert_suppression.duration]\nunit = "h"\nvalue = 1\n'

NETCAT_RULE = (
    HEADER
    + '''
description = "A netcat connection attempt (non-aggregating)."
from = "now-61m"
interval = "1h"
name = "Netcat Connection Attempt"
rule_id = "1c1bd4a0-4a4e-4f0e-9d0c-2c3cfe0f3a01"
query = """
from logs-endpoint.events.network-* metadata _id, _version, _index
| where process.name == "nc"
| keep _id, _version, _index, @timestamp, event.ingested, host.name, destination.ip
"""

[rule.alert_suppression]
group_by = ["host.name"]
'''
)


def _sip(at: datetime, user: str, client: str = "10.0.0.5") -> dict[str, object]:
    return {
        "@timestamp": format_datetime(at),
        "event": {"ingested": format_datetime(at + timedelta(seconds=1))},
        "data_stream": {"type": "logs", "dataset": "network_traffic.sip", "namespace": "default"},
        "client": {"ip": client},
        "server": {"ip": "10.0.0.9"},
        "network_traffic": {"sip": {"method": "options", "to": {"uri": {"username": user}}}},
    }


def _sweep(start: datetime, client: str = "10.0.0.5") -> list[dict[str, object]]:
    """25 extensions in 25 seconds: one row of the rule (one 2-minute bucket)."""
    return [_sip(start + timedelta(seconds=i), str(100 + i), client) for i in range(25)]


def _nc(at: datetime, host: str = "web-01") -> dict[str, object]:
    return {
        "@timestamp": format_datetime(at),
        "event": {"ingested": format_datetime(at + timedelta(seconds=2)), "category": "network"},
        "data_stream": {
            "type": "logs",
            "dataset": "endpoint.events.network",
            "namespace": "default",
        },
        "host": {"name": host},
        "process": {"name": "nc", "executable": "/usr/bin/nc"},
        "destination": {"ip": "10.0.0.80"},
    }


def _write(tmp_path: Path, name: str, docs: list[dict[str, object]]) -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _detect(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from reconwatch.cli.main import main; main()", "detect", *args]
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, env=env)


def _alerts(done: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.fixture
def sip_events(tmp_path: Path) -> Path:
    # The same client sweeps at 10:01, 10:11, 10:21, 10:41 and again at 11:21.
    minutes = (1, 11, 21, 41, 81)
    return _write(tmp_path, "sip.ndjson", [e for m in minutes for e in _sweep(T0 + m * ONE_MIN)])


ONE_MIN = timedelta(minutes=1)
RANGE = ("--from", "2025-07-16T10:00:00Z", "--to", "2025-07-16T11:30:00Z")


def test_duration_folds_later_runs_into_the_open_alert(tmp_path: Path, sip_events: Path) -> None:
    """Runs every 5 minutes see each sweep twice (9-minute look-back): 10 rows. Within the hour
    after 10:05 they fold into the first alert; 11:25 opens a new one, 11:30 folds into it."""
    rule = tmp_path / "sip.toml"
    rule.write_text(SIP_RULE + ONE_HOUR)
    done = _detect(str(sip_events), "-r", str(rule), *RANGE, "-f", "ndjson", "--no-evidence")
    first, second = _alerts(done)
    terms = [
        {"field": "Esql.client_ip", "value": "10.0.0.5"},
        {"field": "Esql.server_ip", "value": "10.0.0.9"},
    ]
    assert (
        first["kibana.alert.suppression.terms"] == second["kibana.alert.suppression.terms"] == terms
    )
    assert (
        first["kibana.alert.instance.id"] == second["kibana.alert.instance.id"] == SIP_INSTANCE_ID
    )
    assert first["kibana.alert.suppression.docs_count"] == 7
    # No time column in the rows: suppression times are run times.
    assert first["kibana.alert.suppression.start"] == "2025-07-16T10:05:00.000Z"
    assert first["kibana.alert.suppression.end"] == "2025-07-16T10:50:00.000Z"
    assert first["kibana.alert.last_detected"] == "2025-07-16T10:50:00.000Z"
    assert first["kibana.alert.start"] == "2025-07-16T10:05:00.000Z"
    assert second["kibana.alert.suppression.docs_count"] == 1
    assert second["kibana.alert.suppression.start"] == "2025-07-16T11:25:00.000Z"
    assert second["kibana.alert.suppression.end"] == "2025-07-16T11:30:00.000Z"
    assert first["kibana.alert.uuid"] != second["kibana.alert.uuid"]
    assert "2 alert(s) from 18 run(s) of 1 rule(s); 8 duplicate alert(s) suppressed" in done.stderr

    report = _detect(str(sip_events), "-r", str(rule), *RANGE, "--report", "--no-evidence")
    assert report.returncode == 0, report.stderr
    text = " ".join(report.stdout.split())
    assert (
        "suppressed 7 duplicate alerts between 2025-07-16 10:05:00Z and 2025-07-16 10:50:00Z"
        in text
    )
    assert "by Esql.client_ip=10.0.0.5, Esql.server_ip=10.0.0.9" in text
    assert SIP_INSTANCE_ID in text
    table = _detect(str(sip_events), "-r", str(rule), *RANGE, "-f", "table", "--no-evidence")
    assert "suppressed 1 duplicate alert between" in " ".join(table.stdout.split())


def test_per_execution_groups_within_a_run_only(tmp_path: Path) -> None:
    """Two sweeps two minutes apart are two rows of one run: one alert per run, docs_count 1;
    the next run, which sees both again, makes its own alert."""
    events = _write(tmp_path, "sip.ndjson", _sweep(T0 + ONE_MIN) + _sweep(T0 + 3 * ONE_MIN))
    rule = tmp_path / "sip.toml"
    rule.write_text(SIP_RULE)
    done = _detect(
        str(events), "-r", str(rule), "--from", "2025-07-16T10:00:00Z",
        "--to", "2025-07-16T10:10:00Z", "-f", "ndjson", "--no-evidence",
    )  # fmt: skip
    alerts = _alerts(done)
    assert [a["reconwatch.run.at"] for a in alerts] == [
        "2025-07-16T10:05:00.000Z",
        "2025-07-16T10:10:00.000Z",
    ]
    assert [a["kibana.alert.suppression.docs_count"] for a in alerts] == [1, 1]
    assert [a["Esql.time_window"] for a in alerts] == ["2025-07-16T10:00:00.000Z"] * 2


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        # Per execution: the overlap event was suppressed at 10:00 and is dropped at 11:00.
        ("", [("09:30:02", "09:59:32", 1), ("10:30:02", "10:59:02", 1)]),
        # 2h: the 11:00 run's events update the 10:00 alert.
        ('duration = { value = 2, unit = "h" }', [("09:30:02", "10:59:02", 3)]),
        # 30m: the 10:00 alert is out of the window; the overlap event, whose alert was never
        # written (so its id is not known), groups with the new events and leads them.
        ('duration = { value = 30, unit = "m" }', [("09:30:02", "09:59:32", 1), ("09:59:32", "10:59:02", 2)]),
    ],
)  # fmt: skip
def test_non_aggregating_rule_across_overlapping_runs(
    tmp_path: Path, duration: str, expected: list[tuple[str, str, int]]
) -> None:
    times = [T0 - 30 * ONE_MIN, T0 - timedelta(seconds=30), T0 + 30 * ONE_MIN, T0 + 59 * ONE_MIN]
    events = _write(tmp_path, "nc.ndjson", [_nc(t) for t in times] + [_nc(T0, host="db-02")])
    rule = tmp_path / "nc.toml"
    rule.write_text(NETCAT_RULE + duration + "\n")
    done = _detect(
        str(events), "-r", str(rule), "--from", "2025-07-16T09:00:00Z",
        "--to", "2025-07-16T11:00:00Z", "-f", "ndjson", "--no-evidence",
    )  # fmt: skip
    alerts = _alerts(done)
    web = [a for a in alerts if a["host.name"] == "web-01"]
    got = [
        (
            str(a["kibana.alert.suppression.start"])[11:19],
            str(a["kibana.alert.suppression.end"])[11:19],
            a["kibana.alert.suppression.docs_count"],
        )
        for a in web
    ]
    assert got == expected
    db = [a for a in alerts if a["host.name"] == "db-02"]
    assert len(db) == 1 and db[0]["kibana.alert.suppression.docs_count"] == 0


def test_group_by_outside_the_columns_is_warned_once(tmp_path: Path, sip_events: Path) -> None:
    rule = tmp_path / "sip.toml"
    rule.write_text(SIP_RULE.replace('"Esql.server_ip"]', '"server.ip"]') + ONE_HOUR)
    done = _detect(str(sip_events), "-r", str(rule), *RANGE, "-f", "ndjson", "--no-evidence")
    alerts = _alerts(done)
    warned = [line for line in done.stderr.splitlines() if "'server.ip'" in line]
    assert len(warned) == 1 and "not a column of the query's result" in warned[0]
    # The missing field is a null term (missing_fields_strategy "suppress"): grouping still works.
    assert alerts[0]["kibana.alert.suppression.terms"] == [
        {"field": "Esql.client_ip", "value": "10.0.0.5"},
        {"field": "server.ip", "value": None},
    ]
    assert [a["kibana.alert.suppression.docs_count"] for a in alerts] == [7, 1]


def test_bad_suppression_table_is_exit_2(tmp_path: Path, sip_events: Path) -> None:
    rule = tmp_path / "sip.toml"
    rule.write_text(SIP_RULE + '\n[rule.alert_suppression.duration]\nunit = "d"\nvalue = 1\n')
    done = _detect(str(sip_events), "-r", str(rule), *RANGE, "-f", "ndjson")
    assert done.returncode == 2
    assert f"{rule}: rule.alert_suppression.duration.unit: 'd' is not one of s, m, h" in done.stderr
    assert "Traceback" not in done.stderr


def test_elastics_own_sip_rule_file_reads_source(sip_events: Path) -> None:
    """The unmodified upstream file (METADATA _source, JSON_EXTRACT) gives the same alerts."""
    upstream = SHARED / "rules" / "discovery_potential_sip_extension_enumeration.toml"
    if not upstream.is_file():
        pytest.skip(f"Elastic's SIP rule not available at {upstream}")
    done = _detect(str(sip_events), "-r", str(upstream), *RANGE, "-f", "ndjson", "--no-evidence")
    first, second = _alerts(done)
    assert first["kibana.alert.instance.id"] == SIP_INSTANCE_ID
    assert first["kibana.alert.suppression.docs_count"] == 7
    assert second["kibana.alert.suppression.docs_count"] == 1
    assert first["Esql.distinct_extensions"] == 25
