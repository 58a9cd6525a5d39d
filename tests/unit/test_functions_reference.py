"""Each registered function and operator on the reference interpreter: values, nulls, multivalues."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconwatch.backends.reference import execute
from reconwatch.esql import functions as fns
from reconwatch.esql.analyze import compile_query
from reconwatch.esql.patterns import PatternError, like_to_regex, rlike_to_regex
from reconwatch.evaluate.aggregates import _STATES
from reconwatch.evaluate.expressions import _SPECIAL, SCALARS
from reconwatch.plan.catalog import StaticCatalog

NOW = datetime(2024, 5, 3, 10, 11, 12, 345000, tzinfo=UTC)
EMPTY = StaticCatalog()
MV_WARNING = "java.lang.IllegalArgumentException: single-value function encountered multi-value"


def row(text: str) -> tuple[object, list[str]]:
    """The value of the last column of `ROW ...` and the warnings."""
    result = execute(compile_query(text, EMPTY), [], NOW)
    assert len(result.rows) == 1
    return result.rows[0][-1], result.warnings


def value(text: str) -> object:
    return row(text)[0]


def test_every_registered_function_has_an_implementation() -> None:
    for name in fns.canonical_names():
        fn = fns.REGISTRY[name]
        if fn.kind is fns.Kind.AGGREGATE:
            assert name in _STATES, name
        else:
            assert name in SCALARS or name in _SPECIAL, name


def test_unsupported_names_are_not_registered() -> None:
    assert not fns.UNSUPPORTED & set(fns.REGISTRY)


# ---------------------------------------------------------------------------------------------
# Null propagation, three-valued logic, multivalues


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("null + 1", None),
        ("to_lower(null)", None),
        ("null == null", None),
        ("true or null", True),
        ("false or null", None),
        ("false and null", False),
        ("true and null", None),
        ("not null", None),
        ("null is null", True),
        ("1 in (2, null)", None),
        ("1 in (1, null)", True),
        ("1 in (2, 3)", False),
        ("coalesce(null, 2, 3)", 2),
        ('case(false, "a", null, "b", "c")', "c"),
        ('case(false, "a")', None),
    ],
)
def test_null_semantics(expr: str, expected: object) -> None:
    assert value(f"row a = 1 | eval x = {expr}") == expected


def test_single_value_function_on_multivalue_is_null_with_two_warnings() -> None:
    result, warnings = row("row a = [1, 2] | eval b = a + 1")
    assert result is None
    assert warnings == [
        "Line 1:27: evaluation of [a + 1] failed, treating result as null. Only first 20 failures recorded.",
        f"Line 1:27: {MV_WARNING}",
    ]


def test_comparison_on_multivalue_is_null() -> None:
    assert value('row a = ["x", "y"] | eval b = a == "x"') is None
    assert value('row a = ["x", "y"] | eval b = a like "x*"') is None
    assert value('row a = ["x", "y"] | eval b = a in ("x")') is None


def test_one_element_list_is_a_single_value() -> None:
    assert value('row a = ["x"] | eval b = a == "x"') is True


def test_mv_aware_functions() -> None:
    assert value("row a = [3, 1, 2] | eval b = mv_count(a)") == 3
    assert value("row a = [3, 1, 2] | eval b = mv_min(a)") == 1
    assert value("row a = [3, 1, 2] | eval b = mv_max(a)") == 3
    assert value("row a = [3, 1, 2] | eval b = mv_first(a)") == 3
    assert value("row a = [3, 1, 2] | eval b = mv_last(a)") == 2
    assert value("row a = [3, 1, 2] | eval b = mv_sum(a)") == 6
    assert value("row a = [3, 1, 2] | eval b = mv_avg(a)") == 2.0
    assert value("row a = [3, 1, 2, 3] | eval b = mv_dedupe(a)") == [3, 1, 2]
    assert value("row a = [3, 1, 2] | eval b = mv_slice(a, 1, 2)") == [1, 2]
    assert value("row a = [3, 1, 2] | eval b = mv_slice(a, -1)") == 2
    assert value('row a = [3, 1, 2] | eval b = mv_sort(a, "desc")') == [3, 2, 1]
    assert value('row a = ["a", "b"] | eval b = mv_concat(a, ", ")') == "a, b"
    assert value("row a = [1, 2, 3] | eval b = mv_contains(a, [1, 3])") is True
    assert value("row a = [1, 2, 3] | eval b = mv_contains(a, 4)") is False
    assert value("row a = [1, 2, 3] | eval b = mv_intersection(a, [3, 1, 9])") == [1, 3]
    assert value("row a = [1, 2] | eval b = mv_append(a, 3)") == [1, 2, 3]
    assert value("row a = 5 | eval b = mv_count(a)") == 1
    assert value("row a = 5 | eval b = mv_count(null)") is None


def test_conversions_map_every_value() -> None:
    assert value("row a = [1, 2] | eval b = to_string(a)") == ["1", "2"]
    assert value("row a = 1.0 | eval b = to_string(a)") == "1.0"
    assert value('row a = "10.1.2.3" | eval b = to_ip(a)') == "10.1.2.3"
    assert value('row a = "::ffff:10.1.2.3" | eval b = to_ip(a)') == "10.1.2.3"
    assert value('row a = "42" | eval b = to_integer(a)') == 42
    assert value('row a = "4.5" | eval b = to_double(a)') == 4.5
    assert value('row a = "TRUE" | eval b = to_boolean(a)') is True
    assert value("row a = 3.9 | eval b = to_long(a)") == 4  # Math.round
    assert value("row a = -2.5 | eval b = to_integer(a)") == -2
    assert value('row a = "2024-01-02T03:04:05Z" | eval b = to_datetime(a)') == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=UTC
    )
    assert value('row a = "10.0.0.1" | eval b = a::ip') == "10.0.0.1"


def test_failed_conversion_is_null_with_warning() -> None:
    result, warnings = row('row a = "foo" | eval b = to_ip(a)')
    assert result is None
    assert (
        warnings[1]
        == "Line 1:26: java.lang.IllegalArgumentException: 'foo' is not an IP string literal."
    )


# ---------------------------------------------------------------------------------------------
# Arithmetic


def test_arithmetic_and_java_division() -> None:
    assert value("row a = 7 | eval b = a / 2") == 3
    assert value("row a = -7 | eval b = a / 2") == -3
    assert value("row a = -7 | eval b = a % 3") == -1
    assert value("row a = 7.0 | eval b = a / 2") == 3.5
    assert value("row a = 3 | eval b = -a") == -3


def test_overflow_and_division_by_zero_warn() -> None:
    result, warnings = row("row a = 2147483647 | eval b = a + 1")
    assert result is None and warnings[1].endswith(
        "java.lang.ArithmeticException: integer overflow"
    )
    result, warnings = row("row a = 1 | eval b = a / 0")
    assert result is None and warnings[1].endswith("java.lang.ArithmeticException: / by zero")
    assert value("row a = 2147483647 | eval b = to_long(a) + 1") == 2147483648


# ---------------------------------------------------------------------------------------------
# Strings


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('to_lower("AbC")', "abc"),
        ('to_upper("AbC")', "ABC"),
        ('length("héllo")', 5),
        ('concat("a", "b", "c")', "abc"),
        ('substring("abcdef", 2, 3)', "bcd"),
        ('substring("abcdef", -2)', "ef"),
        ('locate("abcabc", "c")', 3),
        ('locate("abcabc", "c", 4)', 6),
        ('locate("abc", "z")', 0),
        ('replace("a1b22", "\\\\d+", "#")', "a#b#"),
        ('replace("ab", "(a)(b)", "$2$1")', "ba"),
        ('split("a,b,c", ",")', ["a", "b", "c"]),
        ('split("abc", ",")', "abc"),
        ('starts_with("nmap -sS", "nmap")', True),
        ('ends_with("/usr/bin/nc", "/nc")', True),
        ('trim("  x  ")', "x"),
        ('url_decode("a%20b+c")', "a b c"),
        ('from_base64("aGVsbG8=")', "hello"),
        ('to_base64("hello")', "aGVsbG8="),
        ('json_extract("{\\"a\\": {\\"b\\": [1, \\"x\\"]}}", "a.b[1]")', "x"),
        ('json_extract("{\\"a\\": 1}", "$.a")', "1"),
        ('json_extract("{\\"a\\": 1}", "b")', None),
        ('"ABC" =~ "abc"', True),
        ('"ABC" == "abc"', False),
    ],
)
def test_string_functions(expr: str, expected: object) -> None:
    assert value(f"row a = 1 | eval x = {expr}") == expected


def test_like_and_rlike_are_whole_string_and_case_sensitive() -> None:
    assert value('row a = "python3" | eval x = a like "python*"') is True
    assert value('row a = "Python3" | eval x = a like "python*"') is False
    assert value('row a = "xpython3" | eval x = a like "python*"') is False
    assert value('row a = "ab" | eval x = a like "a?"') is True
    assert value('row a = "a*" | eval x = a like "a\\\\*"') is True
    assert value('row a = "ab" | eval x = a like "a\\\\*"') is False
    assert value('row a = "nc -e" | eval x = a rlike "nc\\\\s+-e"') is True
    assert value('row a = "xnc -e" | eval x = a rlike "nc.*"') is False
    assert value('row a = "b" | eval x = a like ("a*", "b*")') is True


def test_lucene_regex_translation() -> None:
    assert rlike_to_regex('a"b.c"d') == r"ab\.cd"
    assert rlike_to_regex("a@") == "a.*"
    assert rlike_to_regex("^x$") == r"\^x\$"
    assert rlike_to_regex("*sh") == r"\*sh"  # a leading * is a literal in Lucene
    assert like_to_regex("a*b?") == "a.*b."
    with pytest.raises(PatternError) as info:
        rlike_to_regex("a&b")
    assert info.value.unsupported


# ---------------------------------------------------------------------------------------------
# Dates, IPs, numbers


def test_date_functions() -> None:
    d = 'to_datetime("2024-05-03T10:11:12.345Z")'
    assert value(f"row a = 1 | eval x = date_trunc(1 month, {d})") == datetime(
        2024, 5, 1, tzinfo=UTC
    )
    assert value(f"row a = 1 | eval x = date_trunc(1 week, {d})") == datetime(
        2024, 4, 29, tzinfo=UTC
    )
    assert value(f"row a = 1 | eval x = date_trunc(15 minutes, {d})") == datetime(
        2024, 5, 3, 10, 0, tzinfo=UTC
    )
    assert value(f"row a = 1 | eval x = date_trunc(1 year, {d})") == datetime(
        2024, 1, 1, tzinfo=UTC
    )
    assert value(f'row a = 1 | eval x = date_diff("hour", {d}, {d} + 1 day)') == 24
    assert value(f'row a = 1 | eval x = date_diff("month", {d}, {d} + 45 days)') == 1
    assert value(f'row a = 1 | eval x = date_extract("hour_of_day", {d})') == 10
    assert value("row a = 1 | eval x = now() - 1 hour") == datetime(
        2024, 5, 3, 9, 11, 12, 345000, tzinfo=UTC
    )
    assert value(f"row a = 1 | eval x = {d} + 1 month") == datetime(
        2024, 6, 3, 10, 11, 12, 345000, tzinfo=UTC
    )


def test_ip_functions_and_ordering() -> None:
    assert value('row a = to_ip("10.1.2.3") | eval x = cidr_match(a, "10.0.0.0/8")') is True
    assert (
        value('row a = to_ip("10.1.2.3") | eval x = cidr_match(a, "192.168.0.0/16", "::1")')
        is False
    )
    assert value('row a = to_ip("fe80::1") | eval x = cidr_match(a, "FE80::/10")') is True
    assert value('row a = to_ip("::1") | eval x = a < "127.0.0.1"') is True
    assert value('row a = to_ip("127.0.0.1") | eval x = a < "fe80::1"') is True
    assert value('row a = to_ip("10.1.2.3") | eval x = ip_prefix(a, 24, 0)') == "10.1.2.0"
    result, warnings = row(
        'row a = to_ip(["10.0.0.1", "10.0.0.2"]) | eval x = cidr_match(a, "10.0.0.0/8")'
    )
    assert result is None and warnings[1].endswith(MV_WARNING)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("abs(-3)", 3),
        ("round(2.345, 2)", 2.35),
        ("round(-2.5)", -3.0),
        ("round(1234, -2)", 1200),
        ("floor(2.7)", 2.0),
        ("ceil(2.1)", 3.0),
        ("pow(2, 10)", 1024.0),
        ("sqrt(16)", 4.0),
        ("greatest(1, 5, 3)", 5),
        ("least(1, 5, 3)", 1),
        ("to_double(3) / 2", 1.5),
    ],
)
def test_numeric_functions(expr: str, expected: object) -> None:
    assert value(f"row a = 1 | eval x = {expr}") == expected


# ---------------------------------------------------------------------------------------------
# Aggregates


def stats(text: str) -> dict[str, object]:
    result = execute(compile_query(text, EMPTY), [], NOW)
    return result.as_dicts()[0]


def test_aggregates_over_multivalues() -> None:
    got = stats(
        "row a = [-1, 0, 3, 1, -1, 3] | stats c = count(a), s = count(*), d = count_distinct(a), "
        'mn = min(a), mx = max(a), sm = sum(a), av = avg(a), v = values(a), t = top(a, 2, "desc")'
    )
    assert got == {
        "c": 6,
        "s": 1,
        "d": 4,
        "mn": -1,
        "mx": 3,
        "sm": 5,
        "av": 5 / 6,
        "v": [-1, 0, 1, 3],
        "t": [3, 3],
    }


def test_aggregates_on_no_values() -> None:
    got = stats(
        "row a = null | stats c = count(a), d = count_distinct(a), m = max(a), v = values(a)"
    )
    assert got == {"c": 0, "d": 0, "m": None, "v": None}


def test_values_single_distinct_value_is_single() -> None:
    assert stats('row a = ["x", "x"] | stats v = values(a)') == {"v": "x"}


def test_sum_overflow_warns() -> None:
    result = execute(
        compile_query("row a = [9223372036854775807, 1] | stats s = sum(a)", EMPTY), [], NOW
    )
    assert result.rows == [(None,)]
    assert result.warnings[1].endswith("java.lang.ArithmeticException: long overflow")


def test_median_std_and_weighted_avg() -> None:
    got = stats(
        "row a = [1, 2, 3, 10] | stats m = median(a), sd = std_dev(a), sv = std_var(a), "
        "w = weighted_avg(a, 2)"
    )
    assert got == {"m": 2.5, "sd": 3.5355339059327378, "sv": 12.5, "w": 4.0}
    result = execute(
        compile_query("row v = [1, 2], w = [1, 2] | stats x = weighted_avg(v, w)", EMPTY), [], NOW
    )
    assert result.rows == [(None,)] and result.warnings[1].endswith(MV_WARNING)


def test_like_star_is_is_not_null() -> None:
    assert value('row a = ["x", "y"] | eval b = a like "*"') is True
    assert value('row a = null | eval b = a not like "*"') is True


def test_to_lower_and_to_upper_map_every_value() -> None:
    assert value('row a = ["Some", "Text"] | eval b = to_lower(a)') == ["some", "text"]
    assert value('row a = ["Some", "Text"] | eval b = to_upper(a)') == ["SOME", "TEXT"]


def test_string_time_spans_are_cast_by_unit() -> None:
    d = 'to_datetime("2024-05-03T10:11:12.345Z")'
    assert value(f'row a = 1 | eval x = date_trunc("1 hour", {d})') == datetime(
        2024, 5, 3, 10, tzinfo=UTC
    )
    assert value(f'row a = 1 | eval x = date_trunc("1 day", {d})') == datetime(
        2024, 5, 3, tzinfo=UTC
    )
