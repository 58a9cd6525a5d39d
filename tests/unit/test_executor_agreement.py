"""Elasticsearch rules both executors must follow, checked on ROW queries (no data needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conftest import run_rows
from reconwatch.plan.catalog import Result

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)


def run(backend: str, query: str) -> Result:
    return run_rows(backend, query, NOW)


CASES = {
    # ROUND is half up on the decimal form: 2.05 is 2.04999... in binary but rounds to 2.1.
    "round_half_up": (
        "ROW x = 2.05, y = -2.05, z = 2.5 | EVAL a = ROUND(x, 1), b = ROUND(y, 1), c = ROUND(z) | KEEP a, b, c",
        [(2.1, -2.1, 3.0)],
    ),
    # double -> long rounds like Java's Math.round, it does not truncate.
    "double_to_long_rounds": (
        'ROW x = 55461.6 | EVAL l = x::LONG, i = TO_INTEGER("2.5") | KEEP l, i',
        [(55462, 3)],
    ),
    # An untyped null meets any type (DuckDB would otherwise take it as INTEGER).
    "untyped_null": (
        'ROW a = null, b = "b" | EVAL c = COALESCE(a, b), d = "foo" IN ("bar", null), l = LENGTH(null) | KEEP c, d, l',
        [("b", None, None)],
    ),
    "boolean_stays_boolean": (
        "ROW x = 1 | EVAL b = COALESCE(true, false, null) | KEEP b",
        [(True,)],
    ),
    # DISSECT's \\Z anchor must work on DuckDB's RE2 too.
    "dissect_anchor": ('ROW s = "a-b" | DISSECT s "%{x}-%{y}" | KEEP x, y', [("a", "b")]),
    "bad_ip_is_null": (
        'ROW s = "foo" | EVAL ip = TO_IP(s), p = IP_PREFIX(TO_IP("1.2.3.4"), 32, 129) | KEEP ip, p',
        [(None, None)],
    ),
    "median_std": (
        "ROW x = [1, 2, 3, 10] | MV_EXPAND x | STATS m = MEDIAN(x), s = STD_DEV(x), v = STD_VAR(x), mm = MEDIAN([1, 5])",
        [(2.5, 3.5355339059327378, 12.5, 3.0)],
    ),
    "weighted_avg": (
        "ROW x = [1, 2, 3] | MV_EXPAND x | STATS a = WEIGHTED_AVG(x, x), b = WEIGHTED_AVG([1, 2, 3], 1)",
        [(14 / 6, 2.0)],
    ),
    "top_ips_by_address": (
        'ROW ip = TO_IP(["10.0.0.9", "9.0.0.1", "10.0.0.10"]) | STATS t = TOP(ip, 2, "desc")',
        [(["10.0.0.10", "10.0.0.9"],)],
    ),
    # IPv4 sorts as IPv4-mapped IPv6, after ::1.
    "mv_sort_ips_by_address": (
        'ROW ip = TO_IP(["10.0.0.9", "9.0.0.1", "::1"]) | EVAL s = MV_SORT(ip) | KEEP s',
        [(["::1", "9.0.0.1", "10.0.0.9"],)],
    ),
    "rlike_empty_language": (
        'ROW x = "abc" | EVAL a = x RLIKE "#", b = x RLIKE "a@" | KEEP a, b',
        [(False, True)],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rows(backend: str, name: str) -> None:
    query, rows = CASES[name]
    assert run(backend, query).rows == rows


MV = "java.lang.IllegalArgumentException: single-value function encountered multi-value"


def header(where: str, text: str) -> str:
    return (
        f"Line {where}: evaluation of [{text}] failed, treating result as null. "
        "Only first 20 failures recorded."
    )


WARNINGS = {
    "mv_comparison": (
        "ROW y = [1, 2] | EVAL z = y == 1",
        [header("1:27", "y == 1"), f"Line 1:27: {MV}"],
    ),
    "mv_operand_of_and": (
        "ROW b = [true, false] | EVAL z = b AND true",
        [header("1:34", "b"), f"Line 1:34: {MV}"],
    ),
    "failed_conversion": (
        'ROW s = ["1.1.1.1", "foo"] | EVAL ip = TO_IP(s)',
        [
            header("1:40", "TO_IP(s)"),
            "Line 1:40: java.lang.IllegalArgumentException: 'foo' is not an IP string literal.",
        ],
    ),
    "sum_overflow": (
        "ROW x = [9223372036854775807, 1] | MV_EXPAND x | STATS s = SUM(x)",
        [header("1:60", "SUM(x)"), "Line 1:60: java.lang.ArithmeticException: long overflow"],
    ),
    # Single values and constants that convert warn about nothing, even where DuckDB folds.
    "no_failure_no_warning": (
        'ROW s = "1.1.1.1", y = [1] | EVAL ip = TO_IP(s), z = y == 1, p = IP_PREFIX(ip, 24, 0)',
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(WARNINGS))
def test_warnings(backend: str, name: str) -> None:
    query, expected = WARNINGS[name]
    assert run(backend, query).warnings == expected
