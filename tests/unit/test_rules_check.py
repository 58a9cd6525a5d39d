"""`rules check`: each rule's query checked against the schema of its index patterns (ECS, Elastic Defend), with line:col and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SHARED
from reconwatch.cli.main import _register_all, app
from reconwatch.ecs.indices import ecs_field_types, ecs_version, index_fields
from reconwatch.rules.builtin import DEFAULT_RULE, builtin_text
from reconwatch.rules.check import check_query
from reconwatch.rules.load import load_rule_file
from reconwatch.types import DataType as T

DEFEND = "from logs-endpoint.events.network-*"
QUERY_OPEN = "query = '''"


def findings(query: str) -> list[tuple[str, str]]:
    return [(f.level, f.text) for f in check_query(query).findings]


def test_the_shipped_ecs_table() -> None:
    types = ecs_field_types()
    assert ecs_version() == "9.4.0"
    assert len(types) > 2000
    assert types["destination.port"] is T.LONG
    assert types["source.ip"] is T.IP
    assert types["@timestamp"] is T.DATETIME
    assert types["message"] is T.TEXT  # match_only_text
    assert types["process.command_line.text"] is T.TEXT  # a multi-field
    assert types["process.name"] is T.KEYWORD
    assert "process" not in types  # objects are not columns


def test_a_query_that_does_not_parse_fails_with_its_position() -> None:
    assert findings(f"{DEFEND} | stats c = count(* by host.name") == [
        ("error", "line 1:57: mismatched input 'by' expecting ')'")
    ]


def test_an_unknown_column_of_a_defend_index_fails() -> None:
    assert findings(f"{DEFEND}\n| stats c = count(*) by host.nme") == [
        ("error", "line 2:25: Unknown column [host.nme], did you mean [host.name]?")
    ]


def test_defend_extensions_are_fields_of_a_defend_index() -> None:
    query = (
        f'{DEFEND} | where process.Ext.ancestry == "a" and Effective_process.name == "b"'
        ' and process.name.caseless == "c" and host.os.Ext.variant == "d"'
        " | stats c = count(*) by Target.process.name"
    )
    assert findings(query) == []


@pytest.mark.parametrize(
    ("query", "where"),
    [
        (
            f'{DEFEND} | where destination.port == "x"',
            "line 1:45: first argument of [destination.port",
        ),
        # Known ECS types are checked on indices whose other fields reconwatch does not ship.
        (
            "from logs-aws.cloudtrail-* | where source.ip > 3",
            "line 1:36: first argument of [source.ip",
        ),
        (
            "from logs-okta* | eval x = avg(user.name)",
            "line 1:28: aggregate function [avg(user.name)]",
        ),
    ],
)
def test_a_comparison_with_the_wrong_type_fails(query: str, where: str) -> None:
    (level, text), *_rest = findings(query)
    assert level == "error"
    assert text.startswith(where), text


def test_fields_of_an_unshipped_integration_are_a_warning_not_a_failure() -> None:
    query = (
        "from logs-aws.cloudtrail-*, logs-okta.system-* | where aws.cloudtrail.user_identity.arn"
        ' == "x" and okta.client.ip == "1.2.3.4" | stats c = count(*) by user.name'
    )
    assert findings(query) == [
        (
            "warning",
            (
                "cannot check fields of index logs-aws.cloudtrail-*, logs-okta.system-*: reconwatch"
                " ships no schema for their fields beyond ECS 9.4.0; not checked:"
                " aws.cloudtrail.user_identity.arn, okta.client.ip"
            ),
        )
    ]


def test_an_unknown_index_pattern_is_a_warning() -> None:
    assert findings("from my-index | where foo > 1 | keep foo") == [
        (
            "warning",
            (
                "cannot check fields of index my-index: reconwatch ships no schema for their"
                " fields; not checked: foo"
            ),
        )
    ]


def test_a_name_no_step_defines_still_fails_where_schemas_are_partial() -> None:
    """Only a source field can be unshipped: a name unknown after STATS is an error anyway."""
    query = "from logs-aws.cloudtrail-* | stats c = count(*) by user.name | where cc > 1"
    assert findings(query) == [("error", "line 1:70: Unknown column [cc]")]


def test_keep_pattern_matching_nothing() -> None:
    assert findings(f"{DEFEND} | keep aws.*") == [
        ("error", "line 1:44: No matches found for pattern [aws.*]")
    ]
    assert findings("from logs-aws.cloudtrail-* | keep aws.*")[0][0] == "warning"


def test_one_name_two_types_across_indices() -> None:
    """keyword and text read as keyword together; another pair is a union type ES|QL refuses."""
    assert index_fields("logs-endpoint.events.process-*").complete
    assert not index_fields("logs-aws.cloudtrail-*").complete
    assert findings(f"{DEFEND}, logs-aws.cloudtrail-* | stats v = values(message)") == []


def test_engine_refusals_found_by_the_analyser_are_unsupported() -> None:
    query = f'{DEFEND} | where process.name rlike "a&b"'
    assert [level for level, _ in findings(query)] == ["unsupported"]


def _rule_with(query: str) -> str:
    text = builtin_text(DEFAULT_RULE)
    start = text.index("query = '''")
    end = text.index("'''", start + 11) + 3
    return text[:start] + f"query = '''\n{query}\n'''" + text[end:]


def test_rules_check_cli_exit_codes_and_lines(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(_rule_with(f"{DEFEND} | stats c = count(*) by host.name | keep c, host.name"))
    bad = tmp_path / "bad.toml"
    bad.write_text(_rule_with(f"{DEFEND} | stats c = count(*) by host.nme | keep c, host.nme"))
    unchecked = tmp_path / "unchecked.toml"
    unchecked.write_text(
        _rule_with("from logs-gcp.audit-* | stats c = count(*) by gcp.audit.x | keep c")
    )
    _register_all()
    runner = CliRunner()
    res = runner.invoke(app, ["rules", "check", str(good), str(unchecked)])
    assert res.exit_code == 0, res.output
    assert f"OK {good}" in res.output
    assert f"WARNING {unchecked}: rule.query: cannot check fields of index logs-gcp.audit-*" in (
        res.output
    )
    res = runner.invoke(app, ["rules", "check", str(tmp_path)])
    assert res.exit_code == 2
    query_line = bad.read_text().splitlines().index(QUERY_OPEN) + 2
    assert (
        f"FAIL {bad}: rule.query: line 1:61 (file line {query_line}): Unknown column [host.nme],"
        " did you mean [host.name]?" in res.output
    )
    assert "3 file(s): 3 valid, 0 invalid; 1 fail at run time; 2 runnable" in res.output


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "rules/esql-corpus").is_dir(), reason="shared corpus not present")
def test_the_corpus_runs_as_before() -> None:
    """The upstream corpus: nothing fails at run time; the 194 the engine runs stay runnable,
    and every pure Elastic Defend rule is checked completely (no warning)."""
    runnable = 0
    for path in sorted((SHARED / "rules/esql-corpus").glob("*.toml")):
        rule = load_rule_file(path)
        result = check_query(rule.query)
        assert result.errors == [], path
        runnable += not result.unsupported
        first = rule.query.strip().split("|")[0]
        if "logs-endpoint." in first and "," not in first:
            assert result.warnings == [], path
    assert runnable == 194


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("Logs-*", "Invalid index name [Logs-*], must be lowercase"),
        (
            '"logs x"',
            "Invalid index name [logs x], must not contain the following characters [' ']",
        ),
        ("logs#1", "Invalid index name [logs#1], must not contain the following characters [#]"),
        ("_logs", "Invalid index name [_logs], must not start with '_', '-', or '+'"),
        ("logs-* metadata _foo", "unsupported metadata field [_foo]"),
    ],
)
def test_an_invalid_from_fails(source: str, reason: str) -> None:
    assert findings(f"from {source} | limit 1") == [("error", f"line 1:1: {reason}")]


@pytest.mark.parametrize(
    "source",
    ["remote:logs-endpoint.events.network-*", "<logs-{now/d}>", "logs-endpoint.*,-logs-aws*"],
)
def test_remote_date_math_and_excluded_patterns_are_valid(source: str) -> None:
    assert [level for level, _ in findings(f"from {source} | limit 1")] in ([], ["warning"])


def test_a_remote_defend_pattern_is_checked_as_defend_and_an_exclusion_selects_nothing() -> None:
    assert findings("from remote:logs-endpoint.events.network-* | where host.nme == 1") == [
        ("error", "line 1:52: Unknown column [host.nme], did you mean [host.name]?")
    ]
    assert findings("from logs-endpoint.*, -logs-aws* | where aws.x == 1") == [
        ("error", "line 1:42: Unknown column [aws.x]")
    ]
    # Elasticsearch knows `_score`; reconwatch does not read it: the engine's gap, not an error.
    assert [level for level, _ in findings("from logs-* metadata _score | limit 1")] == [
        "unsupported"
    ]


def test_every_unknown_column_is_named_then_the_first_other_problem() -> None:
    query = (
        f'{DEFEND} | where host.nme == "a" and destination.prot > 1 and destination.port == "x"'
        " | stats c = count(*) by host.name | where cc > 1"
    )
    assert findings(query) == [
        ("error", "line 1:45: Unknown column [host.nme], did you mean [host.name]?"),
        ("error", "line 1:65: Unknown column [destination.prot], did you mean [destination.port]?"),
        (
            "error",
            (
                'line 1:90: first argument of [destination.port == "x"] is [numeric] so second'
                " argument must also be [numeric] but was [keyword]"
            ),
        ),
    ]
