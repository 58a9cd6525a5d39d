"""The csv-spec parser on small inline examples."""

from __future__ import annotations

from reconwatch.conformance.specfile import parse_spec_text, split_cells
from reconwatch.types import DataType


def test_simple_case() -> None:
    spec = parse_spec_text(
        "simple\nfrom employees | keep emp_no | limit 2;\n\nemp_no:integer\n10001\n10002\n;\n",
        "x.csv-spec",
    )
    assert spec.problems == []
    (case,) = spec.cases
    assert case.id == "x.csv-spec#simple"
    assert case.line == 1
    assert case.query == "from employees | keep emp_no | limit 2"
    assert case.query_line == 2
    assert [(c.name, c.type) for c in case.columns] == [("emp_no", DataType.INTEGER)]
    assert case.rows == (("10001",), ("10002",))
    assert not case.ignore_order
    assert not case.ignored


def test_directives_multiline_query_warnings_and_comments() -> None:
    text = """\
// a comment before the test
# another comment
multi
required_capability: per_agg_filtering
required_capability: fn_ip_prefix
skip_flattened_rewrite: field_extract_multivalue_null

from hosts
// tag::docs[]
| where ip0 == ip1
  | keep ip0;
ignoreOrder:true
warning:Line 2:9: evaluation of [ip0 == ip1] failed, treating result as null. Only first 20 failures recorded.

warningRegex:single-value function encountered multi-value
ip0:ip
// end::docs[]
127.0.0.1
[::1, 127.0.0.2]
;
"""
    spec = parse_spec_text(text, "h.csv-spec")
    assert spec.problems == []
    (case,) = spec.cases
    assert case.name == "multi"
    assert case.capabilities == ("per_agg_filtering", "fn_ip_prefix")
    assert case.directives == (("skip_flattened_rewrite", "field_extract_multivalue_null"),)
    # Lines are trimmed and tag lines dropped, as Elasticsearch does (warning positions rely on it).
    assert case.query == "from hosts\n| where ip0 == ip1\n| keep ip0"
    assert case.query_line == 8
    assert case.ignore_order
    assert case.warnings == (
        "Line 2:9: evaluation of [ip0 == ip1] failed, treating result as null. Only first 20 failures recorded.",
    )
    assert case.warning_regexes == ("single-value function encountered multi-value",)
    assert case.rows == (("127.0.0.1",), ("[::1, 127.0.0.2]",))


def test_lone_semicolon_escaped_semicolon_and_abbreviated_types() -> None:
    text = (
        'settings\nSET a="b"\\;\nROW x = 1\n;\n\n c : l | s: d |b:bool | k:s | u:ul\n'
        "1 | 2.0 | true | a | 3\n;\n"
    )
    (case,) = parse_spec_text(text).cases
    assert case.query == 'SET a="b";\nROW x = 1'
    assert [c.type for c in case.columns] == [
        DataType.LONG,
        DataType.DOUBLE,
        DataType.BOOLEAN,
        DataType.KEYWORD,
        DataType.UNSIGNED_LONG,
    ]
    assert [c.name for c in case.columns] == ["c", "s", "b", "k", "u"]
    assert case.columns[0].type_text == "l"


def test_ignore_and_skip_markers() -> None:
    text = (
        "old-Ignore\nrow a = 1;\n\na:integer\n1\n;\n\n"
        "marked#[skip:-8.12.99,reason:introduced in 8.13]\nrow a = 1;\n\na:integer\n1\n;\n"
    )
    first, second = parse_spec_text(text).cases
    assert first.name == "old" and first.ignored and first.skip is None
    assert second.name == "marked" and not second.ignored
    assert second.skip is not None
    assert (second.skip.low, second.skip.high) == ("", "8.12.99")
    assert second.skip.reason == "introduced in 8.13"


def test_empty_result_and_names_with_colons() -> None:
    text = "none\nrow a = 1 | where a > 1 | eval b = a::long;\n\na:integer | a::long:long\n;\n"
    (case,) = parse_spec_text(text).cases
    assert case.rows == ()
    assert [(c.name, c.type) for c in case.columns] == [
        ("a", DataType.INTEGER),
        ("a::long", DataType.LONG),
    ]


def test_query_without_semicolon_ends_at_the_header() -> None:
    # ip.csv-spec#equalityNoSort-Ignore forgets the query's ';'.
    text = (
        "noSemi-Ignore\nfrom hosts | keep ip0\n\nip0:ip\n::1\n;\n\n"
        "next\nrow a = 1;\n\na:integer\n1\n;\n"
    )
    spec = parse_spec_text(text)
    assert [c.name for c in spec.cases] == ["noSemi", "next"]
    assert spec.cases[0].query == "from hosts | keep ip0"
    assert spec.cases[0].notes


def test_bad_block_is_reported_and_the_rest_kept() -> None:
    text = (
        "bad\nrow a = 1;\n\na:integer | b:integer\n1\n;\n\n"
        "good\nrow a = 1;\n\na:integer\n1\n;\n\n"
        "unclosed\nrow a = 1;\n\na:integer\n"
    )
    spec = parse_spec_text(text, "p.csv-spec")
    assert [c.name for c in spec.cases] == ["good"]
    assert [(e.path, e.line) for e in spec.problems] == [("p.csv-spec", 5), ("p.csv-spec", 15)]
    assert "row has 1 cells, header has 2" in spec.problems[0].one_line()
    assert spec.problems[0].one_line().startswith("p.csv-spec:5: ")


def test_unknown_header_type_is_kept_untyped() -> None:
    (case,) = parse_spec_text("g\nrow a = 1;\n\np:cartesian_point\nPOINT(1 2)\n;\n").cases
    assert case.columns[0].type is None
    assert case.columns[0].type_text == "cartesian_point"


def test_duplicate_names_get_unique_ids() -> None:
    block = "dup\nrow a = 1;\n\na:integer\n1\n;\n\n"
    spec = parse_spec_text(block * 2)
    assert [c.name for c in spec.cases] == ["dup", "dup@8"]


def test_split_cells_escaped_bar() -> None:
    assert split_cells(" a | b\\|c |  ") == ["a", "b|c", ""]


def test_case_after_an_unterminated_query_is_marked_as_swallowed_upstream() -> None:
    text = (
        "noSemi-Ignore\nfrom hosts | keep ip0\n\nip0:ip\n::1\n;\n\n"
        "swallowed\nrow a = 1;\n\na:integer\n1\n;\n\n"
        "fine\nrow a = 1;\n\na:integer\n1\n;\n"
    )
    cases = parse_spec_text(text).cases
    assert [c.swallowed_by for c in cases] == [None, "noSemi", None]
