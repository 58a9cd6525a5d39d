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
    # ROUND's digits and SCALB's scale factor may be longs (Elasticsearch's type tables); a
    # count from a column, not a constant, rounds half up on the decimal form too (2.05 -> 2.1).
    # Past 400 digits either way a double rounds to itself or to 0; an integral value is itself
    # at any digits >= 0 and 0 below its own digits.
    "round_and_scalb_take_long_digits": (
        (
            "ROW n = TO_LONG(1), m = 1, x = 2.05, i = 12345, l = TO_LONG(12355), "
            "big = TO_LONG(3000000000) | EVAL a = ROUND(x, n), b = ROUND(i, -n), "
            "c = ROUND(l, -n), d = ROUND(x, m), e = ROUND(x, big), f = ROUND(x, -big), "
            "g = ROUND(l, -big), h = ROUND(i, big), s = SCALB(x, n), t = ROUND(1.25, 3000000000) "
            "| KEEP a, b, c, d, e, f, g, h, s, t"
        ),
        [(2.1, 12350, 12360, 2.1, 2.05, 0.0, 0, 12345, 4.1, 1.25)],
    ),
    # ROUND of an int or long is Java's Maths.round(long, long): a value with no more digits
    # (by a double's log10) than are rounded away is 0, not the next power of ten; an
    # unsigned_long past the longs is rounded as a BigInteger (math.csv-spec's roundMaxUL...).
    "round_integral_counts_digits_as_java": (
        (
            "ROW n = -1, x = [6, 15, 56, -6] | MV_EXPAND x | EVAL r = ROUND(x, n), "
            "l = ROUND(9223372036854775807, -19), u = ROUND(12446744073709551615, -19::long) "
            "| KEEP r, l, u"
        ),
        [(0, 0, 10**19), (20, 0, 10**19), (60, 0, 10**19), (0, 0, 10**19)],
    ),
    # TO_UPPER/TO_LOWER are Java's String.toUpperCase/toLowerCase(Locale.ROOT): full case
    # mapping and the final sigma (DuckDB's own upper/lower gave ẞ, i, ﬁ, ŉ and ασ).
    "case_mapping_is_javas": (
        (
            'ROW s = ["straße", "ﬁ", "ŉ", "ᾳ", "abc"], t = ["İ", "ΑΣ", "ΟΔΟΣ Α", "ABC"] '
            "| EVAL u = TO_UPPER(s), l = TO_LOWER(t) | KEEP u, l"
        ),
        [
            (
                ["STRASSE", "FI", "\u02bcN", "\u0391\u0399", "ABC"],
                ["i\u0307", "\u03b1\u03c2", "\u03bf\u03b4\u03bf\u03c2 \u03b1", "abc"],
            )
        ],
    ),
    # Java's Math.cbrt is exact on exact cubes; C's and DuckDB's cbrt are an ulp off.
    "cbrt_exact_cubes": (
        "ROW a = CBRT(-27), b = CBRT(27.0), c = CBRT(1000), d = CBRT(0.001), e = CBRT(-0.0)",
        [(-3.0, 3.0, 10.0, 0.1, -0.0)],
    ),
    # Lucene's RegExp has no inline flags: `(?i)` is a group holding a literal `?` then `i`.
    # Its \d \s \w are ASCII, a space is an ordinary character, `.` takes a newline too.
    "rlike_is_lucene_not_re2": (
        (
            'ROW x = "ABC" | EVAL a = x RLIKE "(?i)abc", b = "?iabc" RLIKE "(?i)abc", '
            'c = "a b" RLIKE "a b", d = "x\\ny" RLIKE "x.y", e = "\u0663" RLIKE "\\\\d", '
            'f = "7" RLIKE "\\\\d", g = "15" RLIKE "<1-20>" | KEEP a, b, c, d, e, f, g'
        ),
        [(False, True, True, True, False, True, True)],
    ),
    # Elasticsearch holds an IPv4 as its IPv4-mapped IPv6 address, so an IPv4 is in a
    # ::ffff: block of the same addresses (and a mapped address in an IPv4 block).
    "cidr_match_ipv4_in_mapped_block": (
        (
            'ROW ip = TO_IP("1.2.3.4"), m = TO_IP("::ffff:1.2.3.4") '
            '| EVAL a = CIDR_MATCH(ip, "::ffff:1.2.3.0/120"), b = CIDR_MATCH(m, "1.2.3.0/24"), '
            'c = CIDR_MATCH(ip, "::ffff:1.2.4.0/120") | KEEP a, b, c'
        ),
        [(True, True, False)],
    ),
    "url_decode_and_base64": (
        (
            'ROW a = URL_DECODE("a+b%20%E2%82%AC"), b = FROM_BASE64("aGVsbG8"), '
            'c = FROM_BASE64("aGVsbA==")'
        ),
        [("a b \u20ac", "hello", "hell")],
    ),
    # Versions order by their parts (1.10 after 1.9, a pre-release before its release) on
    # every executor: comparisons, SORT, MV_SORT, MV_MAX, MAX, TOP.
    "version_ordering": (
        (
            'ROW a = ["1.10.0", "1.9.0", "1.0.0-beta", "1.0.0"] | EVAL v = TO_VERSION(a) '
            '| EVAL s = MV_SORT(v, "desc"), m = MV_MIN(v) | MV_EXPAND v '
            '| EVAL g = v > TO_VERSION("1.2") | SORT v DESC | KEEP v, g, s, m | LIMIT 2'
        ),
        [
            ("1.10.0", True, ["1.10.0", "1.9.0", "1.0.0", "1.0.0-beta"], "1.0.0-beta"),
            ("1.9.0", True, ["1.10.0", "1.9.0", "1.0.0", "1.0.0-beta"], "1.0.0-beta"),
        ],
    ),
    # Found by the executor hunt: DuckDB took an integer through a double or abs() overflowed.
    "integral_ceil_floor_and_scalb_of_zero": (
        (
            "ROW a = CEIL(9223372036854775807), b = FLOOR(-9223372036854775808), "
            "c = SCALB(0, 2147483647), d = SCALB(-0.0, 2147483647), e = COPY_SIGN(-2147483648, -1)"
        ),
        [(2**63 - 1, -(2**63), 0.0, -0.0, -(2**31))],
    ),
    "version_aggregates": (
        (
            'ROW a = TO_VERSION(["1.10.0", "1.9.0"]) | MV_EXPAND a '
            '| STATS m = MAX(a), n = MIN(a), t = TOP(a, 2, "asc")'
        ),
        [("1.10.0", "1.9.0", ["1.9.0", "1.10.0"])],
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
    "substring_negative_length": (
        'ROW s = "abcdef" | EVAL t = SUBSTRING(s, 3, -1)',
        [
            header("1:29", "SUBSTRING(s, 3, -1)"),
            (
                "Line 1:29: java.lang.IllegalArgumentException: Length parameter cannot be negative, "
                "found [-1]"
            ),
        ],
    ),
    # Java's Base64 decoder and URLDecoder, with their messages (not Python's).
    "from_base64_bad_input": (
        'ROW s = ["!!!", "aGVsbA=", "a", "aGVsb="] | MV_EXPAND s | EVAL t = FROM_BASE64(s)',
        [
            header("1:68", "FROM_BASE64(s)"),
            "Line 1:68: java.lang.IllegalArgumentException: Illegal base64 character 21",
            (
                "Line 1:68: java.lang.IllegalArgumentException: Input byte array has wrong 4-byte "
                "ending unit"
            ),
            (
                "Line 1:68: java.lang.IllegalArgumentException: Input byte[] should at least have 2 "
                "bytes for base64 bytes"
            ),
            (
                "Line 1:68: java.lang.IllegalArgumentException: Last unit does not have enough valid "
                "bits"
            ),
        ],
    ),
    "url_decode_bad_input": (
        'ROW s = ["%zz", "%2z", "%-1", "abc%4"] | MV_EXPAND s | EVAL t = URL_DECODE(s)',
        [
            header("1:65", "URL_DECODE(s)"),
            (
                "Line 1:65: java.lang.IllegalArgumentException: URLDecoder: Illegal hex characters "
                'in escape (%) pattern - Error at index 0 in: "zz"'
            ),
            (
                "Line 1:65: java.lang.IllegalArgumentException: URLDecoder: Illegal hex characters "
                'in escape (%) pattern - Error at index 1 in: "2z"'
            ),
            (
                "Line 1:65: java.lang.IllegalArgumentException: URLDecoder: Illegal hex characters "
                "in escape (%) pattern - negative value"
            ),
            (
                "Line 1:65: java.lang.IllegalArgumentException: URLDecoder: Incomplete trailing "
                "escape (%) pattern"
            ),
        ],
    ),
    # A block that is not one, met before any match, is null with a warning on every executor.
    "cidr_match_bad_block": (
        'ROW ip = TO_IP("1.2.3.4") | EVAL a = CIDR_MATCH(ip, "x", "1.2.3.0/24")',
        [
            header("1:38", 'CIDR_MATCH(ip, "x", "1.2.3.0/24")'),
            "Line 1:38: java.lang.IllegalArgumentException: 'x' is not an IP string literal.",
        ],
    ),
    # EXP past about 709.78 is not a finite double: null, as all of Elasticsearch's arithmetic.
    "exp_overflow": (
        "ROW x = 1000 | EVAL e = EXP(x)",
        [
            header("1:25", "EXP(x)"),
            "Line 1:25: java.lang.ArithmeticException: not a finite double number: Infinity",
        ],
    ),
    "asin_and_copy_sign_of_the_most_negative_integer": (
        "ROW i = -2147483648 | EVAL a = ASIN(i), c = COPY_SIGN(i, 1)",
        [
            header("1:32", "ASIN(i)"),
            "Line 1:32: java.lang.ArithmeticException: Asin input out of range",
            header("1:45", "COPY_SIGN(i, 1)"),
            "Line 1:45: java.lang.ArithmeticException: integer overflow",
        ],
    ),
    # SCALB narrows a long scale factor with Math.toIntExact: outside the ints it is null with
    # Elasticsearch's `integer overflow`, even for 0.0 (whose scalb is 0 at any int).
    "scalb_long_scale_outside_the_ints": (
        "ROW n = TO_LONG(3000000000) | EVAL s = SCALB(0.0, -n)",
        [
            header("1:40", "SCALB(0.0, -n)"),
            "Line 1:40: java.lang.ArithmeticException: integer overflow",
        ],
    ),
    # One reason, the first check that fails, as Java's LOG: DuckDB folds every constant CASE
    # branch while planning, and the base-1 branch warned too.
    "log_base_one_of_zero": (
        "ROW b = 1, x = 0 | EVAL l = LOG(b, x)",
        [
            header("1:29", "LOG(b, x)"),
            "Line 1:29: java.lang.ArithmeticException: Log of non-positive number",
        ],
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
