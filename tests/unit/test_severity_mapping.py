"""severity_mapping applied to alerts as Kibana's buildSeverityFromMapping does."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from reconwatch.alerts.document import build_alert, severity_from_mapping
from reconwatch.engine.schedule import window_at
from reconwatch.errors import RuleLoadError
from reconwatch.rules.builtin import builtin_text, load_builtin
from reconwatch.rules.load import load_rule_text

T = datetime(2025, 7, 16, 10, 0, tzinfo=UTC)


def _with_mapping(mapping: list[dict[str, object]]):  # type: ignore[no-untyped-def]
    rule = load_builtin("recon-sweep")
    return dataclasses.replace(rule, raw={**rule.raw, "severity_mapping": mapping})


def _alert(rule, row):  # type: ignore[no-untyped-def]
    return build_alert(
        rule, window_at(rule, T), row, alert_id="x", aggregating=True, source={},
        space="default", evidence=None,
    )  # fmt: skip


def test_a_recognised_authorised_scanner_is_lowered_to_low() -> None:
    rule = load_builtin("recon-sweep")
    assert rule.severity == "medium"
    alert = _alert(rule, {"host.name": "h", "Esql.scanner_product": "runZero"})
    assert alert["kibana.alert.severity"] == "low"
    assert alert["kibana.alert.rule.severity"] == "medium"  # the rule's own, as in Kibana
    assert alert["kibana.alert.rule.parameters.meta"] == {
        "severityOverrideField": "Esql.scanner_product"
    }
    plain = _alert(rule, {"host.name": "h"})
    assert plain["kibana.alert.severity"] == "medium"
    assert "kibana.alert.rule.parameters.meta" not in plain


def test_the_highest_matching_severity_wins_whatever_the_order() -> None:
    mapping = [
        {"field": "a", "operator": "equals", "value": "1", "severity": "critical"},
        {"field": "b", "operator": "equals", "value": "x", "severity": "low"},
        {"field": "c", "operator": "equals", "value": "y", "severity": "high"},
    ]
    rule = _with_mapping(mapping)
    assert severity_from_mapping(rule, {"a": 1, "b": "x", "c": "y"}) == ("critical", "a")
    assert severity_from_mapping(rule, {"b": ["z", "x"], "c": "y"}) == ("high", "c")
    assert severity_from_mapping(rule, {"b": "x"}) == ("low", "b")
    assert severity_from_mapping(rule, {"b": "X"}) == ("medium", None)


def test_values_compare_as_text_and_event_severity_as_an_integer() -> None:
    rule = _with_mapping(
        [
            {"field": "n", "operator": "equals", "value": "7", "severity": "high"},
            {"field": "event.severity", "operator": "equals", "value": "3.9", "severity": "low"},
        ]
    )
    assert severity_from_mapping(rule, {"n": 7}) == ("high", "n")
    assert severity_from_mapping(rule, {"n": 7.0})[1] is None  # not a safe integer or a string
    assert severity_from_mapping(rule, {"n": True})[1] is None
    assert severity_from_mapping(rule, {"event.severity": 3}) == ("low", "event.severity")
    assert severity_from_mapping(rule, {"event.severity": "3"})[1] is None
    assert severity_from_mapping(rule, {"event": {"severity": [1, 3]}}) == ("low", "event.severity")


def test_a_malformed_mapping_is_a_load_problem() -> None:
    text = builtin_text("recon-sweep").replace(
        'operator = "equals", value = "runZero"', 'operator = "is", value = "runZero"'
    )
    with pytest.raises(RuleLoadError) as err:
        load_rule_text(text, "x.toml")
    assert "rule.severity_mapping[0].operator" in str(err.value)


def test_a_pack_alert_names_the_blind_spots_its_rule_closes() -> None:
    rule = load_builtin("recon-campaign")
    alert = _alert(rule, {"host.name": ["a", "b"], "process.executable": "/usr/bin/nmap"})
    assert alert["reconwatch.rule.blind_spots"] == ["per-process grouping", "run boundary"]
    assert "reconwatch.rule.blind_spots" not in _alert(load_builtin("subnet-scanning"), {})
