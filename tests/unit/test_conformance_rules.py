"""Elasticsearch rules found by the wider csv-spec run (issue 11): warnings, conversions, typing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconwatch.backends import duckdb as duck
from reconwatch.backends import reference
from reconwatch.conformance.datasets import Index, SpecCatalog, SpecData
from reconwatch.conformance.duck import SpecScanSource
from reconwatch.esql.analyze import compile_query
from reconwatch.plan import values
from reconwatch.plan.catalog import Result
from reconwatch.plan.nodes import Column
from reconwatch.types import DataType

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
BACKENDS = ["reference", "duckdb"]
MV = "java.lang.IllegalArgumentException: single-value function encountered multi-value"
INVALID = "org.elasticsearch.xpack.esql.core.InvalidArgumentException"


def run(backend: str, query: str, rows: list[dict[str, object]] | None = None) -> Result:
    """The query over index `t`: one multivalued integer field `x` holding `rows`."""
    index = Index("t", (Column("x", DataType.INTEGER, True),), tuple(rows or []))
    data = SpecData(indices={"t": index})
    plan = compile_query(query, SpecCatalog(data))
    if backend == "reference":
        return reference.execute(plan, data.rows(("t",)) if rows else [], NOW)
    return duck.execute(plan, SpecScanSource(data), NOW)


def header(line_col: str, text: str, result: str = "null") -> str:
    return (
        f"Line {line_col}: evaluation of [{text}] failed, treating result as {result}. "
        "Only first 20 failures recorded."
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_case_with_a_multivalued_condition_warns_at_the_case_as_false(backend: str) -> None:
    result = run(backend, 'ROW foo = CASE([false, true], "a", "b")')
    assert result.rows == [("b",)]
    assert result.warnings == [
        header("1:11", 'CASE([false, true], "a", "b")', "false"),
        f"Line 1:11: {MV}",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_not_over_a_comparison_warns_at_the_not(backend: str) -> None:
    rows = [{"x": [1, 2]}, {"x": 5}]
    result = run(backend, "FROM t | WHERE not(x < 1) | KEEP x", rows)
    assert result.rows == [(5,)]
    assert result.warnings == [header("1:16", "not(x < 1)"), f"Line 1:16: {MV}"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_adjacent_wheres_evaluate_both_conditions_on_every_row(backend: str) -> None:
    # The second WHERE warns on the multivalued row although the first one drops it.
    rows = [{"x": [1, 2]}, {"x": 5}]
    result = run(backend, "FROM t | WHERE x > 1 | WHERE x != 3 | KEEP x", rows)
    assert result.rows == [(5,)]
    assert header("1:30", "x != 3") in result.warnings
    assert header("1:16", "x > 1") in result.warnings


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_equality_an_or_ed_range_covers_is_dropped(backend: str) -> None:
    rows = [{"x": [1, 2]}, {"x": 5}]
    result = run(backend, "FROM t | WHERE x == 2 OR x > 1 | KEEP x", rows)
    assert result.rows == [(5,)]
    assert result.warnings == [header("1:26", "x > 1"), f"Line 1:26: {MV}"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sign_in_a_multivalue_literal_belongs_to_the_number(backend: str) -> None:
    result = run(backend, "ROW i = [1, -2147483648], l = [1, -9223372036854775808]")
    assert [c.type for c in result.columns] == [DataType.INTEGER, DataType.LONG]
    assert result.rows == [([1, -2147483648], [1, -9223372036854775808])]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_name_assigned_twice_in_row_keeps_the_last_value(backend: str) -> None:
    result = run(backend, 'ROW a = 1, b = "x", a = 2')
    assert [c.name for c in result.columns] == ["b", "a"]
    assert result.rows == [("x", 2)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("to_integer(1e19)", f"{INVALID}: [1.0E19] out of [integer] range"),
        ("to_long(-1e19)", f"{INVALID}: [-1.0E19] out of [long] range"),
        ("to_unsigned_long(1e20)", f"{INVALID}: [1.0E20] out of [unsigned_long] range"),
        ('to_integer("2147483647.2")', f"{INVALID}: Cannot parse number [2147483647.2]"),
        ('to_long("no number")', f"{INVALID}: Cannot parse number [no number]"),
        ('to_double("foo")', 'java.lang.NumberFormatException: For input string: "foo"'),
        (
            'to_unsigned_long("foo")',
            (
                "java.lang.NumberFormatException: Character f is neither a decimal digit number, "
                'decimal point, nor "e" notation exponential mark.'
            ),
        ),
    ],
)
def test_failed_conversions_name_javas_exception(backend: str, expr: str, reason: str) -> None:
    result = run(backend, f"ROW a = 1 | EVAL r = {expr} | KEEP r")
    assert result.rows == [(None,)]
    assert result.warnings[1:] == [f"Line 1:22: {reason}"]


def test_string_to_number_reads_numbers_as_java_does() -> None:
    assert values.convert("2147483646.2", DataType.INTEGER) == 2147483646
    assert values.convert(" 7 ", DataType.LONG) == 7
    assert values.convert("1.5e3", DataType.DOUBLE) == 1500.0
    assert values.convert("-Infinity", DataType.DOUBLE) == float("-inf")
    assert values.convert("2.5f", DataType.DOUBLE) == 2.5
    assert values.convert("9223372036854775807.4", DataType.LONG) == values.LONG_MAX
    for bad in ("inf", "nan", "1_000", "0x10", ""):
        with pytest.raises(values.ConversionError):
            values.convert(bad, DataType.DOUBLE)
    with pytest.raises(values.ConversionError, match="Cannot parse number"):
        values.convert("2147483648", DataType.INTEGER)


@pytest.mark.parametrize("backend", BACKENDS)
def test_text_arms_make_a_keyword_case(backend: str) -> None:
    result = run(
        backend, 'ROW k = "a" | EVAL t = TO_TEXT(k), c = CASE(true, TO_TEXT(k)) | KEEP t, c'
    )
    assert [c.type for c in result.columns] == [DataType.TEXT, DataType.KEYWORD]
    assert result.rows == [("a", "a")]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # Named groups, atomic groups and lookbehinds (BASE10NUM, IPV4) are not RE2 syntax.
        ('GROK a "(?<x>[a-z]+) (?>b)(?<y>[a-z]+)"', [("foo", "ar")]),
        ('GROK a "%{IP:ip}"', [None]),
        # A group that takes no part in the match is null, not "" (RE2 reads it as "").
        ('GROK a "(?<x>[a-z]+)( (?<y>[0-9]+))?"', [("foo", None)]),
        ('GROK a "%{WORD:x}( %{NUMBER:y})?"', [("foo", None)]),
        # A repeated name keeps every capture.
        ('GROK a "%{WORD:x} %{WORD:x}"', [["foo", "bar"]]),
        # Appended keys join in their /N order; a plain key repeated keeps its last value.
        ('DISSECT a "%{+x/2} %{+x/1}" APPEND_SEPARATOR = "|"', [("bar|foo")]),
        ('DISSECT a "%{x} %{x}"', [("bar")]),
    ],
)
def test_grok_and_dissect_patterns(backend: str, command: str, expected: list[object]) -> None:
    result = run(backend, f'ROW a = "foo bar" | {command} | DROP a')
    assert [row[0] if len(row) == 1 else row for row in result.rows] == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_grok_and_dissect_match_every_value_of_a_multivalue(backend: str) -> None:
    query = (
        'ROW a = ["1 x", "zz", "3 y"] | GROK a "%{NUMBER:n:int} %{WORD:w}" '
        '| EVAL b = a | DISSECT b "%{p} %{q}" | KEEP n, w, p, q'
    )
    result = run(backend, query)
    assert result.rows == [([1, 3], ["x", "y"], ["1", "3"], ["x", "y"])]


@pytest.mark.parametrize("backend", BACKENDS)
def test_mv_append_of_a_null_is_null(backend: str) -> None:
    result = run(
        backend, "ROW n = null | EVAL a = MV_APPEND(n, 1), b = MV_APPEND([1, 2], 3) | KEEP a, b"
    )
    assert result.rows == [(None, [1, 2, 3])]


@pytest.mark.parametrize("backend", BACKENDS)
def test_to_datetime_reads_strict_date_optional_time(backend: str) -> None:
    result = run(
        backend, 'ROW d = TO_DATETIME("2024-01-01 10:00:00"), e = "2024-01-02T03:04:05Z"::datetime'
    )
    assert result.rows == [(None, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))]
    assert result.warnings[1] == (
        "Line 1:9: java.lang.IllegalArgumentException: failed to parse date field "
        "[2024-01-01 10:00:00] with format [strict_date_optional_time]"
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_constant_expression_warns_once_even_when_no_row_reaches_it(backend: str) -> None:
    # Elasticsearch folds constants while planning: the warning does not depend on the rows.
    rows = [{"x": 5}]
    result = run(backend, 'FROM t | WHERE x < 0 | EVAL y = TO_INTEGER("foo") | KEEP y', rows)
    assert result.rows == []
    assert result.warnings == [
        header("1:33", 'TO_INTEGER("foo")'),
        f"Line 1:33: {INVALID}: Cannot parse number [foo]",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        # (74999 - 25324) / 20 = 2483.75: half of the next power of ten, 5000.
        ("BUCKET(n * 1000, 20, 25324, 74999)", 25000.0),
        ("BUCKET(n, 3, 0, 1000)", 0.0),  # 333.3 -> 500
        ("BUCKET(n, 2, 0, 10)", 20.0),  # 5 is not below half of 10: 10
    ],
)
def test_numeric_bucket_by_count(backend: str, bucket: str, expected: float) -> None:
    result = run(backend, f"ROW n = 27.5 | EVAL b = {bucket} | KEEP b")
    assert result.rows == [(expected,)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (20, datetime(1985, 7, 1, tzinfo=UTC)),  # 12 months fit in 20
        (100, datetime(1985, 7, 8, tzinfo=UTC)),  # 53 weeks fit in 100, 365 days do not
        (500, datetime(1985, 7, 9, tzinfo=UTC)),  # days
        (5, datetime(1985, 1, 1, tzinfo=UTC)),  # not even months: a year
    ],
)
def test_date_bucket_by_count(backend: str, count: int, expected: datetime) -> None:
    query = (
        'ROW d = TO_DATETIME("1985-07-09T10:11:12.000Z") '
        f'| EVAL b = BUCKET(d, {count}, "1985-01-01T00:00:00Z", "1986-01-01T00:00:00Z") | KEEP b'
    )
    assert run(backend, query).rows == [(expected,)]
