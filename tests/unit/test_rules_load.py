"""Rule loading: built-ins, every corpus file, and broken files naming file, field and reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from conftest import SHARED
from reconwatch.errors import RuleLoadError, UsageError
from reconwatch.rules.builtin import (
    BUILTINS,
    DEFAULT_RULE,
    builtin_text,
    load_builtin,
    resolve_rule,
)
from reconwatch.rules.datemath import DateMathError, parse_datemath, parse_interval
from reconwatch.rules.load import load_rule_file, load_rule_text


def test_seed_is_default_and_loads_with_kibana_settings() -> None:
    rule = load_builtin(DEFAULT_RULE)
    assert rule.name == "Potential Subnet Scanning Activity from Compromised Host"
    assert rule.interval == timedelta(hours=1)
    assert (rule.from_, rule.to) == ("now-61m", "now")
    assert rule.timestamp_override == "event.ingested"
    assert rule.max_signals == 100
    assert (rule.severity, rule.risk_score) == ("low", 21)
    assert rule.threat[0]["tactic"]["id"] == "TA0007"
    assert "Triage and analysis" in rule.note


def test_builtins_resolve_by_name_rule_id_and_path(tmp_path: Path) -> None:
    assert resolve_rule("port-scanning").builtin == "port-scanning"
    assert resolve_rule("860f2a03-a1cf-48d6-a674-c6d62ae608a1").builtin == DEFAULT_RULE
    path = tmp_path / "r.toml"
    path.write_text(builtin_text("subnet-scanning"))
    assert resolve_rule(str(path)).severity == "medium"
    with pytest.raises(UsageError, match="nope"):
        resolve_rule("nope")


@pytest.mark.skipif(not (SHARED / "rules").is_dir(), reason="shared rules not present")
def test_builtin_copies_are_byte_for_byte() -> None:
    assert (
        builtin_text(DEFAULT_RULE)
        == (SHARED / "rules/historical" / BUILTINS[DEFAULT_RULE][0]).read_text()
    )
    for name in ("subnet-scanning", "port-scanning"):
        assert builtin_text(name) == (SHARED / "rules" / BUILTINS[name][0]).read_text()


@pytest.mark.skipif(not (SHARED / "rules/esql-corpus").is_dir(), reason="shared corpus not present")
def test_every_corpus_rule_loads() -> None:
    files = sorted((SHARED / "rules/esql-corpus").glob("*.toml"))
    assert len(files) == 209
    for f in files:
        assert load_rule_file(f).type == "esql"


def _broken() -> str:
    text = builtin_text(DEFAULT_RULE)
    text = text.replace('severity = "low"', 'severity = "urgent"')
    text = text.replace("risk_score = 21", "risk_score = 210")
    text = text.replace('interval = "1h"', 'interval = "hourly"')
    return text.replace('updated_date = "2025/07/16"', 'updated_date = "16-07-2025"')


def test_broken_rule_collects_every_problem_with_file_and_field() -> None:
    with pytest.raises(RuleLoadError) as info:
        load_rule_text(_broken(), "bad.toml")
    fields = [f for f, _ in info.value.problems]
    assert fields == ["metadata.updated_date", "rule.severity", "rule.risk_score", "rule.interval"]
    line = info.value.one_line()
    assert line.startswith("bad.toml: metadata.updated_date:")
    assert "bad.toml: rule.severity: 'urgent' is not one of" in line
    assert info.value.exit_code == 2


def test_bad_suppression_table_is_a_load_problem() -> None:
    text = builtin_text(DEFAULT_RULE) + (
        '\n[rule.alert_suppression]\ngroup_by = []\nmissing_fields_strategy = "bogus"\n'
    )
    with pytest.raises(RuleLoadError) as info:
        load_rule_text(text, "sup.toml")
    assert [f for f, _ in info.value.problems] == [
        "rule.alert_suppression.group_by",
        "rule.alert_suppression.missing_fields_strategy",
    ]
    good = builtin_text(DEFAULT_RULE) + (
        '\n[rule.alert_suppression]\ngroup_by = ["process.executable"]\n'
    )
    rule = load_rule_text(good, "ok.toml")
    assert rule.suppression is not None and rule.suppression.group_by == ("process.executable",)


def test_missing_file_and_bad_toml_are_rule_load_errors(tmp_path: Path) -> None:
    with pytest.raises(RuleLoadError, match=r"missing\.toml"):
        load_rule_file(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[rule\nname=")
    with pytest.raises(RuleLoadError, match="<toml>"):
        load_rule_file(bad)


def test_esql_schema_checks() -> None:
    text = builtin_text("subnet-scanning").replace("| keep", "| sort")
    text = text.replace("query = '''", "index = [\"x\"]\nquery = '''", 1)
    with pytest.raises(RuleLoadError) as info:
        load_rule_text(text, "r.toml")
    reasons = dict(info.value.problems)
    assert reasons["rule.index"] == "Index is not a valid field for ES|QL rule type"
    assert "keep" in reasons["rule.query"]


def test_max_signals_capped_with_warning() -> None:
    text = builtin_text(DEFAULT_RULE).replace(
        'from = "now-61m"', 'from = "now-61m"\nmax_signals = 5000'
    )
    rule = load_rule_text(text, "r.toml")
    assert rule.max_signals == 1000
    assert "capped" in rule.warnings[0]


def test_datemath() -> None:
    from datetime import UTC, datetime

    now = datetime(2025, 7, 16, 10, 30, 15, tzinfo=UTC)
    assert parse_datemath("now-61m").resolve(now) == datetime(2025, 7, 16, 9, 29, 15, tzinfo=UTC)
    assert parse_datemath("now").resolve(now) == now
    assert parse_datemath("now-1d/d").resolve(now) == datetime(2025, 7, 15, tzinfo=UTC)
    assert parse_interval("1h") == timedelta(hours=1)
    for bad in ("yesterday", "now-5q", "now/d-1h"):
        with pytest.raises(DateMathError):
            parse_datemath(bad)
    with pytest.raises(DateMathError):
        parse_interval("0m")


def test_toml_nested_too_deeply_is_a_load_error() -> None:
    text = "a = " + "[" * 100_000 + "]" * 100_000 + "\n"
    with pytest.raises(RuleLoadError, match="recursion"):
        load_rule_text(text, "deep.toml")


@pytest.mark.parametrize("start", ["now", "now+1h", "now-0s", "now+1d/d"])
def test_a_window_that_is_always_empty_is_a_load_problem(start: str) -> None:
    text = builtin_text(DEFAULT_RULE).replace('from = "now-', f'from = "{start}" # was now-', 1)
    with pytest.raises(RuleLoadError) as info:
        load_rule_text(text, "w.toml")
    reasons = dict(info.value.problems)
    assert reasons["rule.from"] == (
        f"{start!r} is not before rule.to 'now': every run would search no time"
    )


@pytest.mark.parametrize("start", ["now/d", "now-1h/h", "now-1s"])
def test_a_window_empty_at_most_on_a_boundary_loads(start: str) -> None:
    text = builtin_text(DEFAULT_RULE).replace('from = "now-', f'from = "{start}" # was now-', 1)
    assert load_rule_text(text, "w.toml").from_ == start
