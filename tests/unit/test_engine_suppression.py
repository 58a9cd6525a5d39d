"""Alert suppression (Kibana's alertWithSuppression for ES|QL rules) on hand-built alerts, fixed times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conftest import SHARED
from reconwatch.alerts.document import build_alert
from reconwatch.engine.schedule import RunWindow, window_at
from reconwatch.engine.suppression import (
    DOCS_COUNT,
    END,
    INSTANCE_ID,
    LAST_DETECTED,
    START,
    TERMS,
    Suppressor,
    instance_id,
    suppression_terms,
)
from reconwatch.errors import RuleLoadError
from reconwatch.plan.values import format_datetime
from reconwatch.rules.load import load_rule_file, load_rule_text
from reconwatch.rules.model import AlertSuppression, Rule

T0 = datetime(2025, 7, 16, 10, 0, tzinfo=UTC)
RULE_ID = "e7bf9314-f346-45b5-a6ed-044dc3b839c8"


def _rule(suppression: str, *, max_signals: int = 100, aggregating: bool = False) -> Rule:
    query = (
        "from logs-* | stats c = count(*) by host.name, user.name | keep host.name, user.name, c"
        if aggregating
        else "from logs-* metadata _id, _version, _index "
        "| keep _id, _version, _index, @timestamp, host.name, user.name"
    )
    text = f"""
[metadata]
creation_date = "2025/07/16"
updated_date = "2025/07/16"

[rule]
author = ["reconwatch tests"]
description = "suppression tests"
from = "now-6m"
interval = "5m"
language = "esql"
max_signals = {max_signals}
name = "Suppression Test"
risk_score = 21
rule_id = "{RULE_ID}"
severity = "low"
timestamp_override = "event.ingested"
type = "esql"
query = '''{query}'''

[rule.alert_suppression]
{suppression}
"""
    return load_rule_text(text, "suppression-test.toml")


def _alert(
    rule: Rule, window: RunWindow, n: int, *, at: datetime | None = None, **fields: object
) -> dict[str, object]:
    """A non-aggregating alert for source event n (its @timestamp `at`, ingested 1 s later)."""
    row: dict[str, object] = {"_id": f"ev{n}", "_version": 1, "_index": "logs-x-default"}
    if at is not None:
        row["@timestamp"] = format_datetime(at)
        row["event.ingested"] = format_datetime(at + timedelta(seconds=1))
    row.update(fields)
    return build_alert(
        rule, window, row, alert_id=f"id{n}", aggregating=False, source={}, space="default",
        evidence=None,
    )  # fmt: skip


def test_instance_id_matches_npm_object_hash() -> None:
    """Values computed with object-hash 3 on node: objectHash([terms, ruleId, spaceId])."""
    pair = [
        {"field": "Esql.client_ip", "value": "10.0.0.5"},
        {"field": "Esql.server_ip", "value": "10.0.0.9"},
    ]
    assert instance_id(pair, RULE_ID, "default") == "6cee33cc0d007924db4e82075730718cae2252b7"
    missing = [pair[0], {"field": "Esql.server_ip", "value": None}]
    assert instance_id(missing, "rule-1", "default") == "eafd7efc1a8a56f2f0b12f7b6dccf8583893af12"
    arrays = [{"field": "a", "value": ["x", "y"]}, {"field": "b", "value": 5}]
    assert instance_id(arrays, "r", "default") == "095e89cc498f380a389f7925e7a8eb63e7376a15"
    one = [{"field": "host.name", "value": "web-01"}]
    assert instance_id(one, "r", "other") == "22901b09d4793156335ffded82df741b0873e95f"
    nested = [
        {"field": "x", "value": [1, 2.5, True]},
        {"field": "y", "value": {"k": "v", "a": [1]}},
        {"field": "z", "value": False},
    ]
    assert instance_id(nested, "r", "default") == "2c07a0ffa6666356431b667ae3b504dc9c758fa2"


def test_terms_sort_arrays_and_read_the_event_timestamp() -> None:
    config = AlertSuppression(("destination.ip", "@timestamp", "user.name"))
    doc = {
        "destination.ip": ["10.0.0.9", "10.0.0.10", "10.0.0.1"],
        "@timestamp": "2025-07-16T10:00:00.000Z",  # the alert's own (run) time
        "kibana.alert.original_time": "2025-07-16T09:58:00.000Z",
    }
    assert suppression_terms(config, doc) == [
        {"field": "destination.ip", "value": ["10.0.0.1", "10.0.0.10", "10.0.0.9"]},
        {"field": "@timestamp", "value": "2025-07-16T09:58:00.000Z"},
        {"field": "user.name", "value": None},
    ]


def test_one_run_groups_equal_terms_into_one_alert() -> None:
    rule = _rule('group_by = ["host.name"]')
    window = window_at(rule, T0)
    alerts = [
        _alert(rule, window, 1, at=T0 - timedelta(minutes=3), **{"host.name": "web-01"}),
        _alert(rule, window, 2, at=T0 - timedelta(minutes=5), **{"host.name": "web-01"}),
        _alert(rule, window, 3, at=T0 - timedelta(minutes=4), **{"host.name": "db-02"}),
        _alert(rule, window, 4, at=T0 - timedelta(minutes=1), **{"host.name": "web-01"}),
    ]
    suppressor = Suppressor(rule, rule.suppression or AlertSuppression(()))
    out = suppressor.apply(window, alerts)
    # The earliest event of a group keeps its alert; created alerts stay in row order.
    assert [a["kibana.alert.uuid"] for a in out.created] == ["id2", "id3"]
    web, db = out.created
    assert web[DOCS_COUNT] == 2 and db[DOCS_COUNT] == 0
    # Suppression times come from timestamp_override (event.ingested).
    assert web[START] == "2025-07-16T09:55:01.000Z"
    assert web[END] == "2025-07-16T09:59:01.000Z"
    assert web[TERMS] == [{"field": "host.name", "value": "web-01"}]
    assert web[INSTANCE_ID] == instance_id(web[TERMS], RULE_ID, "default")  # type: ignore[arg-type]
    assert out.suppressed == 2 and sorted(out.unwritten_ids) == ["id1", "id4"]
    assert not out.truncated
    assert web["kibana.alert.rule.parameters.alert_suppression"] == {"group_by": ["host.name"]}


def test_per_execution_makes_a_new_alert_each_run_and_drops_events_already_suppressed() -> None:
    rule = _rule('group_by = ["host.name"]')
    first, second = window_at(rule, T0), window_at(rule, T0 + timedelta(minutes=5))
    suppressor = Suppressor(rule, rule.suppression or AlertSuppression(()))
    early = T0 - timedelta(minutes=2)
    out1 = suppressor.apply(
        first,
        [
            _alert(rule, first, 1, at=early, **{"host.name": "web-01"}),
            _alert(rule, first, 2, at=T0 - timedelta(seconds=30), **{"host.name": "web-01"}),
        ],
    )
    assert [a[DOCS_COUNT] for a in out1.created] == [1]
    # Event 2 comes again in the overlap (its alert was suppressed, so its id was never
    # written): its time is inside the first alert's group, so it is dropped, not counted.
    out2 = suppressor.apply(
        second,
        [
            _alert(rule, second, 2, at=T0 - timedelta(seconds=30), **{"host.name": "web-01"}),
            _alert(rule, second, 5, at=T0 + timedelta(minutes=2), **{"host.name": "web-01"}),
        ],
    )
    assert [a["kibana.alert.uuid"] for a in out2.created] == ["id5"]
    assert out2.created[0][DOCS_COUNT] == 0 and out2.suppressed == 0
    assert out2.unwritten_ids == ["id2"]
    assert out1.created[0][DOCS_COUNT] == 1  # per execution: the first alert is left alone


def test_duration_updates_the_open_alert_then_opens_a_new_one() -> None:
    rule = _rule(
        'group_by = ["host.name"]\nduration = { value = 10, unit = "m" }', aggregating=True
    )
    suppressor = Suppressor(rule, rule.suppression or AlertSuppression(()))
    runs = [window_at(rule, T0 + timedelta(minutes=5 * k)) for k in range(4)]

    def agg(window: RunWindow, n: int) -> dict[str, object]:
        row = {"host.name": "web-01", "user.name": "root", "c": n}
        return build_alert(
            rule, window, row, alert_id=f"agg{n}", aggregating=True, source={},
            space="default", evidence=None,
        )  # fmt: skip

    first = suppressor.apply(runs[0], [agg(runs[0], 0)]).created[0]
    # No time column: suppression start and end are the run time (the alert's @timestamp).
    assert first[START] == first[END] == "2025-07-16T10:00:00.000Z"
    second = suppressor.apply(runs[1], [agg(runs[1], 1), agg(runs[1], 2)])
    assert second.created == [] and second.updated == [first] and second.suppressed == 2
    assert first[DOCS_COUNT] == 2
    assert first[END] == first[LAST_DETECTED] == "2025-07-16T10:05:00.000Z"
    # 10:10 - 10m = 10:00: the window starts exactly at the alert's creation, still open.
    third = suppressor.apply(runs[2], [agg(runs[2], 3)])
    assert third.created == [] and first[DOCS_COUNT] == 3
    assert first[END] == "2025-07-16T10:10:00.000Z"
    fourth = suppressor.apply(runs[3], [agg(runs[3], 4)])
    assert [a["kibana.alert.uuid"] for a in fourth.created] == ["agg4"]
    assert fourth.created[0][DOCS_COUNT] == 0 and first[DOCS_COUNT] == 3
    assert fourth.created[0][INSTANCE_ID] == first[INSTANCE_ID]


@pytest.mark.parametrize("strategy", ["suppress", "doNotSuppress"])
def test_missing_fields(strategy: str) -> None:
    rule = _rule(f'group_by = ["host.name", "user.name"]\nmissing_fields_strategy = "{strategy}"')
    window = window_at(rule, T0)
    at = T0 - timedelta(minutes=1)
    alerts = [
        _alert(rule, window, 1, at=at, **{"host.name": "web-01"}),
        _alert(rule, window, 2, at=at, **{"host.name": "web-01"}),
        _alert(rule, window, 3, at=at, **{"host.name": "web-01", "user.name": "root"}),
        _alert(rule, window, 4, at=at, **{"host.name": "web-01", "user.name": "root"}),
    ]
    out = Suppressor(rule, rule.suppression or AlertSuppression(())).apply(window, alerts)
    ids = [a["kibana.alert.uuid"] for a in out.created]
    if strategy == "suppress":
        assert ids == ["id1", "id3"]
        assert out.created[0][TERMS] == [
            {"field": "host.name", "value": "web-01"},
            {"field": "user.name", "value": None},
        ]
        assert [a[DOCS_COUNT] for a in out.created] == [1, 1]
    else:
        # Alerts missing a field are plain alerts: no suppression fields at all.
        assert ids == ["id1", "id2", "id3"]
        assert DOCS_COUNT not in out.created[0] and INSTANCE_ID not in out.created[1]
        assert out.created[2][DOCS_COUNT] == 1


def test_max_signals_counts_suppressed_and_created_alerts() -> None:
    rule = _rule('group_by = ["host.name"]', max_signals=3)
    window = window_at(rule, T0)
    hosts = ["a", "a", "b"]
    alerts = [
        _alert(rule, window, i, at=T0 - timedelta(minutes=3 - i), **{"host.name": h})
        for i, h in enumerate(hosts)
    ]
    out = Suppressor(rule, rule.suppression or AlertSuppression(())).apply(window, alerts)
    # 2 created + 1 suppressed reach max_signals 3: Kibana warns although nothing was lost.
    assert len(out.created) == 2 and out.suppressed == 1 and out.truncated
    fewer = Suppressor(rule, rule.suppression or AlertSuppression(())).apply(window, alerts[:2])
    assert not fewer.truncated

    # Four groups, room for three: the three with the earliest suppression start are written.
    small = _rule('group_by = ["host.name"]', max_signals=3)
    late_first = [
        _alert(small, window, i, at=T0 - timedelta(minutes=m), **{"host.name": h})
        for i, (h, m) in enumerate([("d", 1), ("c", 2), ("b", 3), ("a", 4)])
    ]
    capped = Suppressor(small, small.suppression or AlertSuppression(())).apply(window, late_first)
    assert [a["host.name"] for a in capped.created] == ["c", "b", "a"]
    assert capped.truncated and capped.unwritten_ids == ["id0"]


@pytest.mark.parametrize(
    ("table", "field"),
    [
        ('group_by = ["a", "b", "c", "d"]', "rule.alert_suppression.group_by"),
        ("group_by = []", "rule.alert_suppression.group_by"),
        (
            'group_by = ["a"]\nduration = { value = 5, unit = "d" }',
            "rule.alert_suppression.duration.unit",
        ),
        (
            'group_by = ["a"]\nduration = { value = 0, unit = "m" }',
            "rule.alert_suppression.duration.value",
        ),
        (
            'group_by = ["a"]\nmissing_fields_strategy = "drop"',
            "rule.alert_suppression.missing_fields_strategy",
        ),
    ],
)
def test_bad_suppression_tables_are_rule_errors(table: str, field: str) -> None:
    """Found when the file loads (so `rules check` reports them), each naming its field."""
    with pytest.raises(RuleLoadError) as err:
        _rule(table)
    assert [f for f, _ in err.value.problems] == [field]
    assert "suppression-test.toml" in str(err.value)


def test_defaults_and_units() -> None:
    config = _rule('group_by = ["a"]\nduration = { value = 2, unit = "h" }').suppression
    assert config == AlertSuppression(("a",), timedelta(hours=2), "suppress")
    assert _rule('group_by = ["a"]').suppression == AlertSuppression(("a",), None, "suppress")


def test_every_upstream_suppression_table_loads() -> None:
    rules_dir = SHARED / "rules"
    if not rules_dir.is_dir():
        pytest.skip(f"shared rules not present at {rules_dir}")
    paths = [p for p in sorted(rules_dir.rglob("*.toml")) if "alert_suppression" in p.read_text()]
    assert len(paths) >= 10
    for path in paths:
        config = load_rule_file(path).suppression
        assert config is not None and 1 <= len(config.group_by) <= 3, path
        assert config.duration is not None and config.duration >= timedelta(minutes=5), path
