"""Comparison of results with csv-spec expectations: types, multivalues, doubles, order, warnings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconwatch.conformance.compare import cell_matches, compare, parse_expected, render
from reconwatch.conformance.specfile import SpecCase, parse_spec_text
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import Column
from reconwatch.types import DataType as T


def _case(text: str) -> SpecCase:
    (case,) = parse_spec_text(text, "t.csv-spec").cases
    return case


@pytest.mark.parametrize(
    ("actual", "expected", "type_", "ok"),
    [
        (1, "1", T.INTEGER, True),
        (2, "1", T.INTEGER, False),
        (None, "null", T.INTEGER, True),
        (None, "0", T.LONG, False),
        (True, "true", T.BOOLEAN, True),
        (1, "true", T.BOOLEAN, False),
        (0.1 + 0.2, "0.3", T.DOUBLE, True),  # last-digit noise of a different summation order
        (0.3001, "0.3", T.DOUBLE, False),
        (float("nan"), "NaN", T.DOUBLE, True),
        (datetime(1985, 1, 1, tzinfo=UTC), "1985-01-01T00:00:00.000Z", T.DATETIME, True),
        (datetime(1985, 1, 1, 0, 0, 1, tzinfo=UTC), "1985-01-01T00:00:00.000Z", T.DATETIME, False),
        ("::ffff:127.0.0.1", "127.0.0.1", T.IP, True),
        (["a", "b"], "[a, b]", T.KEYWORD, True),
        (["b", "a"], "[a, b]", T.KEYWORD, False),  # multivalues compared in the order printed
        ("a", "[a, b]", T.KEYWORD, False),
        ([1, 2], "[1,2]", T.LONG, True),
        ("x", "{any}", T.KEYWORD, True),
        ("1", "1", T.INTEGER, False),  # a string where an integer is due is wrong
    ],
)
def test_cell_matches(actual: object, expected: str, type_: T, ok: bool) -> None:
    assert cell_matches(actual, expected, type_) is ok


def test_parse_expected_and_render_round_trip() -> None:
    assert parse_expected("[1.0, 2.5]", T.DOUBLE) == [1.0, 2.5]
    assert render([1.0, None, True, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)]) == (
        "[1.0, null, true, 2024-01-02T03:04:05.000Z]"
    )
    assert render(1.0e-4) == "1.0E-4"


SPEC = "c\nrow a = 1;\n\na:integer | b:keyword\n1 | x\n2 | y\n;\n"
SPEC_UNORDERED = "c\nrow a = 1;\nignoreOrder:true\n\na:integer | b:keyword\n1 | x\n2 | y\n;\n"
COLS = (Column("a", T.INTEGER), Column("b", T.KEYWORD))


def test_equal_result_has_no_diff() -> None:
    assert compare(_case(SPEC), Result(COLS, [(1, "x"), (2, "y")])) == []


def test_row_order_matters_unless_ignore_order() -> None:
    swapped = Result(COLS, [(2, "y"), (1, "x")])
    diff = compare(_case(SPEC), swapped)
    assert diff[0].startswith("row 1: expected 1 | x")
    assert compare(_case(SPEC_UNORDERED), swapped) == []


def test_missing_and_extra_rows_are_named() -> None:
    diff = compare(_case(SPEC_UNORDERED), Result(COLS, [(1, "x"), (3, "z")]))
    assert "missing: 2 | y" in diff
    assert "unexpected: 3 | z" in diff
    diff = compare(_case(SPEC), Result(COLS, [(1, "x")]))
    assert diff[0] == "expected 2 rows, got 1"


def test_header_names_and_types_are_checked() -> None:
    diff = compare(_case(SPEC), Result((Column("a", T.LONG), COLS[1]), [(1, "x"), (2, "y")]))
    assert diff[0] == "header: expected a:integer | b:keyword"
    assert "got a:long | b:keyword" in diff[1]


def test_warnings_exact_and_regex() -> None:
    text = (
        "w\nrow a = 1;\nwarning:Line 1:1: exact one\nwarningRegex:evaluation of \\[x\\] failed\n\n"
        "a:integer\n1\n;\n"
    )
    case = _case(text)
    cols = (Column("a", T.INTEGER),)
    good = ["Line 1:1: exact one", "Line 1:9: evaluation of [x] failed, treating result as null."]
    assert compare(case, Result(cols, [(1,)], good)) == []
    diff = compare(case, Result(cols, [(1,)], []))
    assert diff == [
        "missing warning: Line 1:1: exact one",
        "missing warning matching: evaluation of \\[x\\] failed",
    ]
    diff = compare(_case(SPEC), Result(COLS, [(1, "x"), (2, "y")], ["surprise"]))
    assert diff == ["unexpected warning: surprise"]


@pytest.mark.parametrize(
    ("text", "type_", "value"),
    [
        ('"two"', T.KEYWORD, "two"),
        ('"33,F"', T.KEYWORD, "33,F"),
        ('""', T.KEYWORD, ""),
        ('["a", "b"]', T.KEYWORD, ["a", "b"]),
        ('["true", "", "a,b"]', T.KEYWORD, ["true", "", "a,b"]),
        ('["x"]', T.KEYWORD, '["x"]'),  # brackets without a comma are one keyword
        ('"1"', T.INTEGER, 1),
        ("two", T.KEYWORD, "two"),
        ('a"b', T.KEYWORD, 'a"b'),  # a quote inside a value stays
    ],
)
def test_quoted_expected_values_are_unquoted(text: str, type_: T, value: object) -> None:
    assert parse_expected(text, type_) == value


def test_percent_encoded_warnings_match_the_plain_text() -> None:
    text = "w\nrow a = 1;\nwarning:Line 1:1: pattern [%25{a} %E2%80%94]\n\na:integer\n1\n;\n"
    cols = (Column("a", T.INTEGER),)
    assert compare(_case(text), Result(cols, [(1,)], ["Line 1:1: pattern [%{a} \u2014]"])) == []
    plain = "w\nrow a = 1;\nwarning:Line 1:1: pattern [%{a}]\n\na:integer\n1\n;\n"
    assert compare(_case(plain), Result(cols, [(1,)], ["Line 1:1: pattern [%{a}]"])) == []
    diff = compare(_case(text), Result(cols, [(1,)], ["Line 1:1: pattern [%{b} \u2014]"]))
    assert diff[0].startswith("missing warning:")
