"""Values past what a type or the host can hold are null with Elasticsearch's warning, the same
on both executors: no Python exception, no DuckDB error, no gigabyte string."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest

from reconwatch.backends import duckdb as duck
from reconwatch.backends import reference as ref
from reconwatch.esql.analyze import compile_query
from reconwatch.plan import values as v
from reconwatch.plan.catalog import Result, StaticCatalog

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
LONG = "java.lang.ArithmeticException: long overflow"
X = 'repeat("ab", 300000)'  # 600,000 bytes

# query -> (rows, the warning's reason, or None for no warning)
CASES: dict[str, tuple[str, list[tuple[object, ...]], str | None]] = {
    "repeat_4_gib": ('ROW r = repeat("ab", 2147483647)', [(None,)], v.REPEAT_TOO_LONG),
    "repeat_at_the_limit": ('ROW r = length(repeat("ab", 524288))', [(1048576,)], None),
    "repeat_past_the_limit": ('ROW r = length(repeat("ab", 524289))', [(None,)], v.REPEAT_TOO_LONG),
    "space": ("ROW r = space(2000000)", [(None,)], v.SPACE_TOO_LONG),
    "repeat_negative": (
        'ROW r = repeat("ab", -2)',
        [(None,)],
        "java.lang.IllegalArgumentException: Number parameter cannot be negative, found [-2]",
    ),
    "space_negative": (
        "ROW n = -1 | EVAL r = space(n) | KEEP r",
        [(None,)],
        "java.lang.IllegalArgumentException: Number parameter cannot be negative, found [-1]",
    ),
    "concat": (f"ROW r = length(concat({X}, {X}))", [(None,)], v.STRING_TOO_LONG),
    "to_base64": ('ROW r = to_base64(repeat("x", 900000))', [(None,)], v.STRING_TOO_LONG),
    "mv_append_doubling": (
        "ROW a = [1, 2] "
        + "| EVAL a = mv_append(a, a) " * 19
        + "| EVAL n = mv_count(a), m = mv_count(mv_append(a, a)) | KEEP n, m",
        [(2**20, None)],
        v.TOO_MANY_VALUES,
    ),
    # Counting values let four doublings of a 1 MiB string through (and twelve reached 4 GiB).
    "mv_append_doubling_bytes": (
        'ROW a = repeat("x", 1048576) '
        + "| EVAL a = mv_append(a, a) " * 4
        + "| EVAL n = mv_count(a) | KEEP n",
        [(None,)],
        v.MULTIVALUE_TOO_LARGE,
    ),
    "date_plus_years": (
        'ROW d = "9999-12-31T00:00:00Z"::datetime + 10 years',
        [(None,)],
        v.DATE_OUT_OF_RANGE,
    ),
    "date_minus_years": (
        'ROW d = "0001-01-01T00:00:00Z"::datetime - 10 years',
        [(None,)],
        v.DATE_OUT_OF_RANGE,
    ),
    "date_plus_huge_days": ("ROW d = now() + 2147483647 days", [(None,)], v.DATE_OUT_OF_RANGE),
    "date_plus_max_millis": (
        "ROW d = now() + 9223372036854775807 ms",
        [(None,)],
        v.DATE_OUT_OF_RANGE,
    ),
    "round_huge_negative_digits": (
        (
            "ROW a = round(123.456, -2147483648), b = round(123, -2147483648), "
            "c = round(1.5, 2147483647)"
        ),
        [(0.0, 0, 1.5)],
        None,
    ),
    "round_long_overflow": ("ROW r = round(9223372036854775807, -1)", [(None,)], LONG),
    "negative_long_literal": (
        "ROW a = -9223372036854775808, b = -2147483648 | EVAL c = a - 1 | KEEP a, b, c",
        [(-(2**63), -(2**31), None)],
        LONG,
    ),
    "literal_past_unsigned_long_is_a_double": (
        "ROW a = -18446744073709551615, b = 99999999999999999999",
        [(-1.8446744073709552e19, 1e20)],
        None,
    ),
    "date_diff_past_an_integer": (
        'ROW r = date_diff("ms", "1970-01-01T00:00:00Z"::datetime, "2024-01-01T00:00:00Z"::datetime)',
        [(None,)],
        "java.lang.ArithmeticException: integer overflow",
    ),
    "abs_most_negative_long": ("ROW r = abs(-9223372036854775808)", [(None,)], LONG),
    "negate_most_negative_long": ("ROW r = -(-9223372036854775808)", [(None,)], LONG),
    # Java's Math.round saturates: the double 2^63 (2^64) is long's (unsigned_long's) maximum,
    # not null (DuckDB's cast of that double to BIGINT was null, without a warning).
    "double_two_to_the_63_to_long": (
        (
            'ROW a = to_long(pow(2, 63)), b = to_long("9223372036854775808"), '
            "c = to_unsigned_long(18446744073709551616)"
        ),
        [(2**63 - 1, 2**63 - 1, 2**64 - 1)],
        None,
    ),
    # Java's integer division wraps the one quotient past the range: MIN / -1 is MIN.
    "min_divided_by_minus_one": (
        "ROW i = -2147483648, l = -9223372036854775808 | EVAL a = i / -1, b = l / -1 | KEEP a, b",
        [(-(2**31), -(2**63))],
        None,
    ),
    # Java's % on doubles takes the dividend's sign (C's fmod); DuckDB's fmod() does not.
    "double_remainder_sign": (
        "ROW a = 7.5 % -2, b = -7.5 % 2, c = -7.5 % -2.0, d = 5.5 % 2, e = -6.0 % 3",
        [(1.5, -1.5, -1.5, 1.5, -0.0)],
        None,
    ),
    "hypot_of_large_doubles": (
        "ROW r = hypot(3e200, 4e200), s = hypot(3, 4), t = hypot(-1e308, 1e308) > 1e308",
        [(4.9999999999999995e200, 5.0, True)],
        None,
    ),
    "double_overflow": (
        "ROW r = 1e308 * 10",
        [(None,)],
        "java.lang.ArithmeticException: not a finite double number: Infinity",
    ),
}


def _run(backend: str, query: str) -> Result:
    plan = compile_query(query, StaticCatalog({}))
    return ref.execute(plan, [], NOW) if backend == "reference" else duck.execute(plan, None, NOW)


@pytest.mark.parametrize("backend", ["reference", "duckdb"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_value_past_a_limit_is_null_with_a_warning(backend: str, name: str) -> None:
    query, rows, reason = CASES[name]
    result = _run(backend, query)
    assert result.rows == rows
    reasons = [w.split(": ", 1)[1] for w in result.warnings[1:]]
    assert reasons == ([] if reason is None else [reason])


@pytest.mark.parametrize("backend", ["reference", "duckdb"])
def test_dates_outside_years_1_to_9999_convert_to_null_not_an_error(backend: str) -> None:
    result = _run(backend, "ROW a = to_datetime(9223372036854775807), b = to_datetime(1e300)")
    assert result.rows == [(None, None)]
    assert len(result.warnings) == 4  # a header and a reason for each


# Peak memory of a fresh interpreter that runs the queries on DuckDB, in KiB (Linux VmHWM).
_PEAK = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from reconwatch.backends import duckdb as duck
    from reconwatch.esql.analyze import compile_query
    from reconwatch.plan.catalog import StaticCatalog
    for query in sys.argv[1:]:
        rows = duck.execute(compile_query(query, StaticCatalog({})), None, datetime.now(UTC)).rows
        assert rows == [(None,)], rows
    # VmHWM is this address space's own peak; ru_maxrss would carry over the peak of the process
    # that spawned this one (Linux keeps it across exec), i.e. pytest's after a long suite.
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    print(int(status.split()[0]))
    """
)


@pytest.mark.slow
def test_a_refused_constant_repeat_allocates_nothing_on_duckdb() -> None:
    # DuckDB folds constants in every CASE branch while planning: the guarded branch once
    # built the 2 GiB string anyway (4 GB of memory, 15 s) before the guard threw it away.
    queries = [
        "ROW r = space(2147483647)",
        'ROW r = repeat("a", 2147483647)',
        'ROW n = 2000000000 | EVAL r = repeat("a", n) | KEEP r',
    ]
    done = subprocess.run(
        [sys.executable, "-c", _PEAK, *queries], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 1024 * 1024  # under 1 GiB: the process itself is ~150 MiB
