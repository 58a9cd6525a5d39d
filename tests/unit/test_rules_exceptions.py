"""Exception lists: Kibana NDJSON export and the short TOML form, compiled to ES|QL conditions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconwatch.engine.exceptions_esql import keep_condition
from reconwatch.errors import RuleLoadError
from reconwatch.esql import ast
from reconwatch.esql.parser import parse
from reconwatch.plan.nodes import Column
from reconwatch.rules.exceptions import describe, load_exceptions
from reconwatch.types import DataType

FIELDS = {
    "process.executable": Column("process.executable", DataType.KEYWORD),
    "agent.id": Column("agent.id", DataType.KEYWORD),
    "destination.ip": Column("destination.ip", DataType.IP),
    "event.type": Column("event.type", DataType.KEYWORD, multivalued=True),
}


def condition(text: str) -> ast.Expr:
    """The expression ES|QL text parses to (the keep condition is inserted as a tree)."""
    where = parse(f"FROM x | WHERE {text}").commands[1]
    assert isinstance(where, ast.Where)
    return where.condition


def _ndjson(tmp_path: Path, items: list[dict[str, object]]) -> Path:
    lines = [{"list_id": "scanners", "name": "Known scanners", "type": "detection"}]
    lines += [{"item_id": f"i{i}", "name": f"item {i}", **it} for i, it in enumerate(items)]
    lines.append(
        {"exported_exception_list_count": 1, "exported_exception_list_item_count": len(items)}
    )
    path = tmp_path / "exceptions.ndjson"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_kibana_export_all_operators(tmp_path: Path) -> None:
    path = _ndjson(
        tmp_path,
        [
            {
                "entries": [
                    {
                        "field": "process.executable",
                        "operator": "included",
                        "type": "match",
                        "value": "/usr/bin/nmap",
                    },
                    {
                        "field": "agent.id",
                        "operator": "excluded",
                        "type": "match_any",
                        "value": ["a", "b"],
                    },
                ]
            },
            {"entries": [{"field": "destination.ip", "operator": "included", "type": "exists"}]},
            {
                "entries": [
                    {
                        "field": "process.executable",
                        "operator": "excluded",
                        "type": "wildcard",
                        "value": "/opt/*",
                    }
                ]
            },
        ],
    )
    lst = load_exceptions(path)
    assert lst.name == "Known scanners"
    assert len(lst.items) == 3
    assert (
        describe(lst.items[0])
        == "process.executable is '/usr/bin/nmap' AND agent.id is not one of ['a', 'b']"
    )
    cond = keep_condition([lst], FIELDS)
    assert cond == condition(
        'not ((coalesce(process.executable == "/usr/bin/nmap", false) and '
        'not coalesce(agent.id in ("a", "b"), false)) or (destination.ip is not null) or '
        '(not coalesce(process.executable like "/opt/*", false)))'
    )


def test_toml_form_multivalue_ip_and_unknown_field(tmp_path: Path) -> None:
    path = tmp_path / "ex.toml"
    path.write_text(
        '[[exception]]\nname = "x"\n"event.type" = "start"\n"destination.ip" = { "is one of" = ["10.0.0.1", "bogus"] }\n'
        '[[exception]]\n"no.such.field" = { "does not exist" = true }\n'
    )
    cond = keep_condition([load_exceptions(path)], FIELDS)
    assert cond == condition(
        'not (((coalesce(mv_contains(event.type, "start"), false)) and '
        'coalesce(destination.ip == to_ip("10.0.0.1"), false)) or (not false))'
    )


def test_bad_exception_files_name_every_problem(tmp_path: Path) -> None:
    path = _ndjson(
        tmp_path, [{"entries": [{"field": "a", "type": "regex", "value": "x"}]}, {"entries": []}]
    )
    with open(path, "a") as fh:
        fh.write("{not json\n")
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")  # deeper than the JSON parser's stack
    with pytest.raises(RuleLoadError) as info:
        load_exceptions(path)
    where = [f for f, _ in info.value.problems]
    assert where == ["line 2: entries[0]", "line 3: entries", "line 5", "line 6"]
    bad = tmp_path / "b.toml"
    bad.write_text('[[exception]]\n"a" = { "equals" = "x" }\n')
    with pytest.raises(RuleLoadError, match="operator 'equals'"):
        load_exceptions(bad)


def test_toml_problems_are_exact(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text(
        'exception = [{ "host.name" = { "is like" = "x" }, a = { exists = false } }, "x", {}]\n'
    )
    with pytest.raises(RuleLoadError) as info:
        load_exceptions(bad)
    assert [f for f, _ in info.value.problems] == [
        "exception[0].host.name",
        "exception[0].a",
        "exception[1]",
        "exception[2]",
    ]
    assert info.value.problems[2][1] == "must be a table of field = condition"
    assert info.value.problems[3][1] == "has no conditions"


def test_check_fields_refuses_entries_that_can_never_match(tmp_path: Path) -> None:
    from reconwatch.ecs.schema import ECS_FIELDS
    from reconwatch.rules.exceptions import check_fields

    path = _ndjson(
        tmp_path,
        [
            {"entries": [{"field": "destination.ip", "operator": "included", "type": "match", "value": "not-an-ip"}]},
            {"entries": [{"field": "destination.port", "operator": "excluded", "type": "match_any", "value": ["80", "eighty"]}]},
            {"entries": [{"field": "destination.port", "operator": "included", "type": "wildcard", "value": "8*"}]},
            {"entries": [{"field": "hots.name", "operator": "included", "type": "exists"}]},
        ],
    )  # fmt: skip
    lst = load_exceptions(path)
    with pytest.raises(RuleLoadError) as caught:
        check_fields(lst, ECS_FIELDS)
    problems = dict(caught.value.problems)
    assert problems["item 0: destination.ip"].startswith("'not-an-ip' is not a valid ip")
    assert problems["item 1: destination.port"].startswith("'eighty' is not a valid long")
    assert "needs a string field" in problems["item 2: destination.port"]
    assert "did you mean [host.name]" in problems["item 3: hots.name"]
    # Valid values of each type, an IPv6 address, and a field only the events have, pass.
    good = _ndjson(
        tmp_path,
        [
            {"entries": [{"field": "destination.ip", "operator": "included", "type": "match_any", "value": ["10.0.0.1", "fd00::1"]}]},
            {"entries": [{"field": "destination.port", "operator": "included", "type": "match", "value": 443}]},
            {"entries": [{"field": "custom.tag", "operator": "included", "type": "wildcard", "value": "x*"}]},
        ],
    )  # fmt: skip
    check_fields(load_exceptions(good), {**ECS_FIELDS, "custom.tag": DataType.KEYWORD})


def test_an_ndjson_file_without_a_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "rules.ndjson"
    path.write_text(json.dumps({"rule_id": "x", "name": "a rule"}) + "\n")
    with pytest.raises(RuleLoadError, match="holds no exception list"):
        load_exceptions(path)
    path.write_bytes(b'{"name": "caf\xe9"}\n')
    with pytest.raises(RuleLoadError, match=r"not UTF-8 text \(byte 0xe9 on line 1\)"):
        load_exceptions(path)
