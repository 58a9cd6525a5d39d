"""Meta-test: every registered ES|QL function and operator runs on every executor, or is refused by name."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from conftest import BATCH_BACKENDS, run_rows
from reconwatch.errors import UnsupportedFeatureError
from reconwatch.esql import functions as fns
from reconwatch.esql.analyze import compile_query
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import Result, StaticCatalog

NOW = datetime(2024, 5, 3, 10, 11, 12, 345000, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    """A query whose single output column `r` must hold `expected` on every backend, except
    those named in `unsupported` (backend -> why), which must refuse it by name."""

    query: str
    expected: object
    unsupported: dict[str, str] = field(default_factory=dict)


def s(expr: str, expected: object, row: str = "x = 1", **unsupported: str) -> Case:
    """A scalar: ROW inputs (not folded by the analyser), then `EVAL r = expr`."""
    return Case(f"ROW {row} | EVAL r = {expr} | KEEP r", expected, unsupported)


def a(agg: str, expected: object, row: str, expand: str = "", **unsupported: str) -> Case:
    """An aggregate over ROW inputs, optionally MV_EXPANDed into several rows first."""
    mid = f" | MV_EXPAND {expand}" if expand else ""
    return Case(f"ROW {row}{mid} | STATS r = {agg}", expected, unsupported)


def dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


D = 'd = to_datetime("2024-05-03T10:11:12.345Z")'

CASES: list[Case] = [
    # -- arithmetic --------------------------------------------------------------------------
    s("x + 2", 3),
    s("x - 3", -2),
    s("x * 7", 7),
    s("7 / x2", 3, row="x2 = 2"),
    s("7.0 / x2", 3.5, row="x2 = 2"),
    s("x / 0", None),
    s("-7 / x2", -3, row="x2 = 2"),
    s("f % 0", None, row="f = 7.5"),
    s("pow(n, 0.5)", None, row="n = -8"),
    s("log10(n)", None, row="n = 0"),
    s("-7 % x3", -1, row="x3 = 3"),
    s("-x", -1),
    s("d + 1 month", dt("2024-06-03T10:11:12.345Z"), row=D),
    s("d - 1 day", dt("2024-05-02T10:11:12.345Z"), row=D),
    # -- comparison and logic ----------------------------------------------------------------
    s("x == 1", True),
    s('k != "b"', True, row='k = "a"'),
    s("x < 2", True),
    s("x <= 0", False),
    s("x > 0", True),
    s("x >= 2", False),
    s('k =~ "ABC"', True, row='k = "abc"'),
    s("t and f", False, row="t = true, f = false"),
    s("t or n", True, row="t = true, n = null"),
    s("not t", False, row="t = true"),
    s("x in (3, 1)", True),
    s("x in (3, null)", None),
    s('k like "a*c"', True, row='k = "abc"'),
    s('k rlike "a.c"', True, row='k = "abc"'),
    s("n is null", True, row="n = null"),
    s("x is not null", True),
    s("mv == 1", None, row="mv = [1, 2]"),
    # -- casts -------------------------------------------------------------------------------
    s("x::keyword", "1"),
    s("k::text", "a", row='k = "a"'),
    s("k::integer", 12, row='k = "12"'),
    s("k::long", 4, row='k = "3.6"'),
    s("k::unsigned_long", 5, row='k = "5"'),
    s("x::double", 1.0),
    s("k::boolean", True, row='k = "TRUE"'),
    s("k::datetime", dt("2024-01-02T00:00:00Z"), row='k = "2024-01-02"'),
    s("k::ip", "10.0.0.1", row='k = "::ffff:10.0.0.1"'),
    s("k::version", "1.2.3", row='k = "1.2.3"'),
    # -- conversions ---------------------------------------------------------------------------
    s("to_string(f)", "1.5", row="f = 1.5"),
    s("to_string(mv)", ["1", "2"], row="mv = [1, 2]"),
    s("to_integer(k)", 42, row='k = "42"'),
    s("to_long(f)", 4, row="f = 3.5"),
    s("to_unsigned_long(k)", 7, row='k = "7"'),
    s("to_double(k)", 1.5, row='k = "1.5"'),
    s("to_boolean(k)", False, row='k = "yes"'),
    s("to_datetime(ms)", dt("1970-01-01T00:00:01Z"), row="ms = 1000"),
    s("to_ip(k)", "2001:db8::1", row='k = "2001:DB8:0:0:0:0:0:1"'),
    s("to_ip(k)", None, row='k = "foo"'),
    s("to_version(k)", "2.0.0-rc1", row='k = "2.0.0-rc1"'),
    # -- strings -------------------------------------------------------------------------------
    s("to_lower(k)", "abc", row='k = "AbC"'),
    s("to_upper(k)", ["A", "B"], row='k = ["a", "b"]'),
    s("trim(k)", "a b", row='k = "  a b \t"'),
    s("ltrim(k)", "a ", row='k = "  a "'),
    s("rtrim(k)", "  a", row='k = "  a "'),
    s("reverse(k)", "cba", row='k = "abc"'),
    s("length(k)", 5, row='k = "héllo"'),
    s("bit_length(k)", 16, row='k = "ab"'),
    s("byte_length(k)", 2, row='k = "é"'),
    s('concat(k, "-", k)', "a-a", row='k = "a"'),
    s('concat(k, "-", n)', None, row='k = "a", n = null'),
    s("substring(k, 2, 3)", "ell", row='k = "hello"'),
    s("substring(k, -3)", "llo", row='k = "hello"'),
    s("left(k, 2)", "he", row='k = "hello"'),
    s("right(k, 2)", "lo", row='k = "hello"'),
    s('locate(k, "ll")', 3, row='k = "hello"'),
    s('replace(k, "l+", "L")', "heLo", row='k = "hello"'),
    s('split(k, ",")', ["a", "b", "c"], row='k = "a,b,c"'),
    s('starts_with(k, "he")', True, row='k = "hello"'),
    s('ends_with(k, "lo")', True, row='k = "hello"'),
    s('contains(k, "ell")', True, row='k = "hello"'),
    s("repeat(k, 3)", "ababab", row='k = "ab"'),
    s("space(x2)", "  ", row="x2 = 2"),
    s("url_decode(k)", "a b c", row='k = "a%20b+c"'),
    s("url_encode(k)", "a+b%26c", row='k = "a b&c"'),
    s("url_encode_component(k)", "a%20b%26c", row='k = "a b&c"'),
    s("to_base64(k)", "aGk=", row='k = "hi"'),
    s("from_base64(k)", "hi", row='k = "aGk="'),
    s("md5(k)", "0cc175b9c0f1b6a831c399e269772661", row='k = "a"'),
    s("sha1(k)", "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8", row='k = "a"'),
    s(
        "sha256(k)",
        "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
        row='k = "a"',
    ),
    s('json_extract(k, "a.b")', "2", row='k = """{"a": {"b": 2}}"""'),
    # -- numbers -------------------------------------------------------------------------------
    s("abs(n)", 4, row="n = -4"),
    s("ceil(f)", 2.0, row="f = 1.2"),
    s("floor(f)", -2.0, row="f = -1.5"),
    s("round(f)", 3.0, row="f = 2.5"),
    s("round(f, 2)", 2.35, row="f = 2.345"),
    s("round(n, -2)", 1200, row="n = 1234"),
    s("signum(n)", -1.0, row="n = -3"),
    s("sqrt(n)", 4.0, row="n = 16"),
    s("sqrt(n)", None, row="n = -1"),
    s("cbrt(n)", 3.0, row="n = 27"),
    s("exp(n)", 1.0, row="n = 0"),
    s("log10(n)", 2.0, row="n = 100"),
    s("pow(n, 10)", 1024.0, row="n = 2"),
    s("pi() + x - x", math.pi),
    s("e() + x - x", math.e),
    s("tau() + x - x", math.tau),
    s("greatest(x, 5, 3)", 5),
    s("least(x, 5, 3)", 1),
    s('case(x > 1, "big", x == 1, "one", "small")', "one"),
    s('case(x > 1, "big")', None),
    s("coalesce(n, x)", 1, row="n = null, x = 1"),
    # -- dates -------------------------------------------------------------------------------
    s("now()", dt("2024-05-03T10:11:12.345Z")),
    s("date_trunc(1 hour, d)", dt("2024-05-03T10:00:00Z"), row=D),
    s("date_trunc(1 month, d)", dt("2024-05-01T00:00:00Z"), row=D),
    s('date_diff("hour", d, d + 5 hours)', 5, row=D),
    s('date_extract("hour_of_day", d)', 10, row=D),
    s("bucket(d, 1 day)", dt("2024-05-03T00:00:00Z"), row=D),
    s("bucket(n, 10.0)", 20.0, row="n = 23"),
    # -- IPs ---------------------------------------------------------------------------------
    s('cidr_match(ip, "10.0.0.0/8", "fe80::/10")', True, row='ip = to_ip("10.1.2.3")'),
    s('cidr_match(ip, "10.0.0.0/8")', True, row='ip = to_ip("::ffff:10.1.2.3")'),
    s('cidr_match(ip, "fe80::/10")', False, row='ip = to_ip("::1")'),
    s("ip_prefix(ip, 24, 0)", "192.168.1.0", row='ip = to_ip("192.168.1.77")'),
    s("ip_prefix(ip, 0, 32)", "2001:db8::", row='ip = to_ip("2001:db8:1:2::9")'),
    # -- multivalues ---------------------------------------------------------------------------
    s("mv_count(mv)", 3, row="mv = [5, 1, 3]"),
    s("mv_first(mv)", 5, row="mv = [5, 1, 3]"),
    s("mv_last(mv)", 3, row="mv = [5, 1, 3]"),
    s("mv_min(mv)", 1, row="mv = [5, 1, 3]"),
    s("mv_max(mv)", "b", row='mv = ["a", "b"]'),
    s("mv_min(ip)", "::1", row='ip = to_ip(["10.0.0.1", "::1"])'),
    s("mv_sum(mv)", 9, row="mv = [5, 1, 3]"),
    s("mv_avg(mv)", 3.0, row="mv = [5, 1, 3]"),
    s("mv_median(mv)", 4, row="mv = [5, 1, 3, 9]"),
    s('mv_concat(mv, ",")', "a,b", row='mv = ["a", "b"]'),
    s("mv_dedupe(mv)", ["a", "b"], row='mv = ["a", "b", "a"]'),
    s("mv_slice(mv, 1, 2)", [1, 3], row="mv = [5, 1, 3, 9]"),
    s('mv_sort(mv, "desc")', [9, 5, 3, 1], row="mv = [5, 1, 3, 9]"),
    s("mv_append(mv, x)", [5, 1, 1], row="mv = [5, 1], x = 1"),
    s("mv_contains(mv, sub)", True, row="mv = [5, 1, 3], sub = [3, 5]"),
    s("mv_intersection(mv, other)", [1, 3], row="mv = [5, 1, 3], other = [3, 1, 7]"),
    # -- aggregates ----------------------------------------------------------------------------
    a("count()", 1, row="x = [1, 2]"),
    a("count(x)", 3, row="x = [1, 2, 2]"),
    a("count_distinct(x)", 2, row="x = [1, 2, 2]"),
    a("values(x)", ["a", "b"], row='x = ["b", "a", "b"]'),
    a("min(x)", -1, row="x = [3, -1, 2]"),
    a("max(ip)", "fe80::1", row='ip = to_ip(["10.0.0.1", "fe80::1", "::1"])'),
    a("sum(x)", 4, row="x = [3, -1, 2]"),
    a("avg(x)", 4 / 3, row="x = [3, -1, 2]"),
    a("median(x)", 2.5, row="x = [1, 2, 3, 4]"),
    a("std_dev(x)", 2.0, row="x = [2, 4, 4, 4, 5, 5, 7, 9]"),
    a("std_var(x)", 4.0, row="x = [2, 4, 4, 4, 5, 5, 7, 9]"),
    a('top(x, 2, "desc")', [9, 5], row="x = [5, 1, 9]"),
    Case(
        "ROW v = [1, 3] | MV_EXPAND v | EVAL w = v | STATS r = weighted_avg(v, w)",
        2.5,
    ),
    a("count(x) where x > 1", 2, row="x = [1, 2, 3]", expand="x"),
    # -- nulls, multivalues and edge cases, where executors tend to differ ------------------
    s('k in ("a", null)', True, row='k = "a"'),
    s('k in ("b", null)', None, row='k = "a"'),
    s("mv in (1, 2)", None, row="mv = [1, 2]"),
    s('mv like "a*"', None, row='mv = ["a", "ab"]'),
    s('mv rlike "a.*"', None, row='mv = ["a", "ab"]'),
    s('cidr_match(ip, "10.0.0.0/8")', None, row='ip = to_ip(["10.0.0.1", "10.0.0.2"])'),
    s("not mv", None, row="mv = [true, false]"),
    s("mv and true", None, row="mv = [true, true]"),
    s('case(mv, "yes", "no")', "no", row="mv = [true, false]"),
    s("coalesce(mv, 9)", [1, 2], row="mv = [1, 2]"),
    s("greatest(mv, 3)", 5, row="mv = [1, 5]"),
    s("least(mv, 3)", 1, row="mv = [1, 5]"),
    s("length(mv)", None, row='mv = ["a", "bc"]'),
    s('concat(mv, "x")', None, row='mv = ["a", "bc"]'),
    s("mv + 1", None, row="mv = [1, 2]"),
    s("to_lower(n)", None, row="n = null"),
    s("mv_count(n)", None, row="n = null"),
    s("mv_first(n)", None, row="n = null"),
    s("mv_slice(mv, -2, -1)", [3, 9], row="mv = [5, 1, 3, 9]"),
    s("mv_slice(mv, 7)", None, row="mv = [5, 1]"),
    s("mv_dedupe(mv)", ["b", "a"], row='mv = ["b", "a", "b"]'),
    s("mv_sort(mv)", ["a", "b", "c"], row='mv = ["c", "a", "b"]'),
    s(
        "mv_sort(ip)",
        ["::1", "10.0.0.1", "fe80::1"],
        row='ip = to_ip(["fe80::1", "10.0.0.1", "::1"])',
    ),
    s("mv_max(ip)", "fe80::1", row='ip = to_ip(["fe80::1", "10.0.0.1", "::1"])'),
    s("mv_median(mv)", 2.5, row="mv = [1.0, 4.0, 2.0, 3.0]"),
    s("mv_sum(mv)", None, row="mv = [9223372036854775807, 1]"),
    s('mv_concat(mv, ", ")', "a, b", row='mv = ["a", "b"]'),
    s('split(k, ",")', "abc", row='k = "abc"'),
    s("to_string(ip)", "fe80::a", row='ip = to_ip("FE80::A")'),
    s("to_string(d)", "2024-05-03T10:11:12.345Z", row=D),
    s("to_string(b)", "true", row="b = true"),
    s("to_string(f)", "1.0E7", row="f = 10000000.0"),
    s("to_integer(k)", None, row='k = "4294967296"'),
    s("to_long(k)", 3, row='k = "2.5"'),
    s("to_long(d)", 1714731072345, row=D),
    s("to_datetime(k)", dt("2024-05-03T08:00:00Z"), row='k = "2024-05-03T10:00:00+02:00"'),
    s("to_ip(mv)", ["10.0.0.1", "::1"], row='mv = ["10.0.0.1", "bad", "::1"]'),
    s("x + 2147483647", None),
    s("n * 2", None, row="n = 9223372036854775807"),
    s("substring(k, 0, 2)", "he", row='k = "hello"'),
    s("substring(k, 10)", "", row='k = "hello"'),
    s("left(k, 10)", "hello", row='k = "hello"'),
    s("right(k, 0)", "", row='k = "hello"'),
    s('locate(k, "l", 4)', 4, row='k = "hello"'),
    s('locate(k, "z")', 0, row='k = "hello"'),
    s('replace(k, "(l)", "[$1]")', "he[l][l]o", row='k = "hello"'),
    s("round(f, 1)", -2.6, row="f = -2.55"),
    s("round(f)", -3.0, row="f = -2.5"),
    s("ceil(n)", 3, row="n = 3"),
    s("abs(f)", 2.5, row="f = -2.5"),
    s("signum(n)", 0.0, row="n = 0"),
    s("date_trunc(15 minutes, d)", dt("2024-05-03T10:00:00Z"), row=D),
    s("date_trunc(1 week, d)", dt("2024-04-29T00:00:00Z"), row=D),
    s("date_trunc(1 year, d)", dt("2024-01-01T00:00:00Z"), row=D),
    s('date_diff("day", d, d - 3 days)', -3, row=D),
    s('date_extract("day_of_week", d)', 5, row=D),
    s("d > now() - 1 hour", True, row=D),
    s('ip == "::ffff:10.0.0.1"', True, row='ip = to_ip("10.0.0.1")'),
    s('ip < "10.0.0.2"', True, row='ip = to_ip("::1")'),
    s(r'k like """a\*"""', True, row='k = "a*"'),
    s(r'k like """a\*"""', False, row='k = "ab"'),
    s('k like ("x*", "?b")', True, row='k = "ab"'),
    s('k rlike "a|b"', True, row='k = "b"'),
    s('k rlike "[a-c]+"', True, row='k = "abc"'),
    s('k =~ "Straße"', False, row='k = "STRASSE"'),
    # KQL's wildcard term (mv_any_like): any value of a multivalue; `?` is literal, null is false.
    s('kql("k: a*")', True, row='k = ["xy", "ab"]'),
    s('kql("k: a?*")', False, row='k = ["xy", "ab"]'),
    s('kql("k: a*")', False, row="k = null"),
    a("count_distinct(ip)", 2, row='ip = to_ip(["10.0.0.1", "::ffff:10.0.0.1", "::1"])'),
    a("values(ip)", ["::1", "10.0.0.1"], row='ip = to_ip(["10.0.0.1", "::1"])'),
    a("min(k)", "A", row='k = ["a", "B", "A"]'),
    a("max(b)", True, row="b = [false, true]"),
    a("max(d)", dt("2024-05-03T10:11:12.345Z"), row=D),
    a("sum(x)", None, row="x = [9223372036854775807, 1]"),
    a("sum(f)", 0.75, row="f = [0.5, 0.25]"),
    a("avg(x)", None, row="x = null"),
    a("count(x)", 0, row="x = null"),
    a("count_distinct(x)", 0, row="x = null"),
    a("values(x)", None, row="x = null"),
    a("count(x) where x > 1", 0, row="x = [1, 2]"),
    a("min(x) where x > 1", 2, row="x = [1, 2, 3]", expand="x"),
    a("values(x) where x != 2", [1, 3], row="x = [1, 2, 3]", expand="x"),
    # -- conversions as Elasticsearch reads numbers (issue 11) ---------------------------------
    s("to_text(k)", "a", row='k = "a"'),
    s("to_text(mv)", ["a", "b"], row='mv = ["a", "b"]'),
    s("to_integer(k)", None, row='k = "2147483647.2"'),  # read as a double: out of range
    s("to_integer(k)", 2147483646, row='k = "2147483646.2"'),
    s("to_long(k)", None, row='k = "1e19"'),
    s("to_integer(f)", None, row="f = 1e19"),  # warns [1.0E19] out of [integer] range
    s("to_unsigned_long(f)", None, row="f = 1e20"),
    s("to_unsigned_long(k)", None, row='k = "foo"'),  # BigDecimal's message
    s("to_unsigned_long(k)", 2147483648, row='k = "2147483648.2"'),
    s("to_double(k)", None, row='k = "foo"'),  # For input string: "foo"
    s("to_double(k)", None, row='k = "inf"'),  # Java reads Infinity, not inf
    s("to_double(k)", 1.5, row='k = " 1.5d "'),
    s("case(t, k)", "a", row='t = true, k = to_text("a")'),
    # -- math, clamping, hashing and date patterns (issue 11) -----------------------------------
    s("acos(f)", 0.45102681179626236, row="f = 0.9"),
    s("asin(f)", None, row="f = 12.0"),  # Asin input out of range
    s("atan(f)", math.atan(0.5), row="f = 0.5"),
    s("atan2(y, f)", 1.5243181954438936, row="y = 12.9, f = 0.6"),
    s("cos(f)", math.cos(1.8), row="f = 1.8"),
    s("cosh(f)", 3.1074731763172667, row="f = 1.8"),
    s("cosh(f)", None, row="f = 1000.0"),  # cosh overflow
    s("sin(x)", math.sin(1)),
    s("sinh(f)", math.sinh(1.8), row="f = 1.8"),
    s("tan(f)", math.tan(1.8), row="f = 1.8"),
    s("tanh(f)", math.tanh(1.8), row="f = 1.8"),
    s("hypot(a3, b4)", 5.0, row="a3 = 3, b4 = 4"),
    s("to_degrees(mv)", [89.95437383553924, 179.9087476710785], row="mv = [1.57, 3.14]"),
    s("to_radians(n)", math.pi, row="n = 180"),
    s("log(b, n)", 3.0, row="b = 2, n = 8"),
    s("log(n)", math.log(10), row="n = 10"),
    s("log(b, n)", None, row="b = 1, n = 8"),  # Log of base 1
    s("clamp(n, lo, hi)", 3, row="n = 5, lo = 1, hi = 3"),
    s("clamp_min(k, lo)", "b", row='k = "a", lo = "b"'),
    s("clamp_max(k, hi)", "Facello", row='k = "Georgi", hi = "Facello"'),
    s("round_to(n, 0, 5, 10)", 5, row="n = 7"),
    s("round_to(f, 1.0, 2.0)", 1.0, row="f = -3.5"),
    s('date_extract("aligned_day_of_week_in_month", d)', 3, row=D),
    s('date_extract("aligned_week_of_year", d)', 18, row=D),
    s('date_extract("nano_of_day", d)', 36672345000000, row=D),
    s('date_extract("clock_hour_of_ampm", d)', 10, row=D),
    s('date_extract("instant_seconds", d)', 1714731072, row=D),
    s('date_extract("no_such_field", d)', None, row=D),
    s("bucket(n, 20, 25324, 74999)", 25000.0, row="n = 27000"),
    s('mv_like(mv, "fo*")', True, row='mv = ["foo", "bar"]'),
    s('mv_like(mv, "x*")', False, row="mv = null"),  # two-valued: null is false
    s('mv_rlike(mv, "b.r")', True, row='mv = ["foo", "bar"]'),
    s("copy_sign(n, f)", -3, row="n = 3, f = -0.5"),
    s("copy_sign(f, n)", 2.5, row="f = -2.5, n = 1"),
    s("scalb(f, n)", 24.0, row="f = 3.0, n = 3"),
    s("scalb(f, n)", None, row="f = 1.0, n = 2000"),  # not a finite double number
    s("day_name(d)", "Friday", row=D),
    s("month_name(d)", "May", row=D),
    s('hash("SHA-256", k)', hashlib.sha256(b"hello").hexdigest(), row='k = "hello"'),
    s('hash("nope", k)', None, row='k = "hello"'),  # NoSuchAlgorithmException
    s('date_format("yyyy-MM-dd HH:mm EEE", d)', "2024-05-03 10:11 Fri", row=D),
    s("date_format(d)", "2024-05-03T10:11:12.345Z", row=D),
    s('date_parse("dd/MM/yyyy", k)', dt("2024-05-03T00:00:00Z"), row='k = "03/05/2024"'),
    s('date_parse("yyyy-MM-dd", k)', None, row='k = "03/05/2024"'),
    s("date_parse(k)", dt("2024-05-03T10:00:00Z"), row='k = "2024-05-03T10:00:00Z"'),
    # Ips and versions order by a key, not as text, on every executor.
    s("greatest(ip, ip2)", "10.0.0.1", row='ip = to_ip("10.0.0.1"), ip2 = to_ip("::1")'),
    s("least(v, w)", "1.9.0", row='v = to_version("1.10.0"), w = to_version("1.9.0")'),
    s("v < w", False, row='v = to_version("1.10.0"), w = to_version("1.9.0")'),
    s("mv_sort(v)", ["1.9.0", "1.10.0"], row='v = to_version(["1.10.0", "1.9.0"])'),
]


# ---------------------------------------------------------------------------------------------


def _run(backend: str, query: str) -> Result:
    return run_rows(backend, query, NOW)


def _exprs(expr: p.Expr | None) -> Iterator[str]:
    if isinstance(expr, p.Call):
        yield expr.fn
        for arg in expr.args:
            yield from _exprs(arg)


def plan_functions(plan: p.Plan) -> set[str]:
    """Every function and operator a plan calls (registry names, aliases folded)."""
    found: set[str] = set()
    roots: list[p.Expr | None] = []
    if isinstance(plan.source, p.RowSource):
        roots += [e for _, e in plan.source.assignments]
    for step in plan.steps:
        if isinstance(step, p.Filter):
            roots.append(step.condition)
        elif isinstance(step, p.Eval):
            roots += [e for _, e in step.assignments]
        elif isinstance(step, p.Sort):
            roots += [k.expr for k in step.keys]
        elif isinstance(step, p.Aggregate):
            roots += [e for _, e in step.groups]
            for _, agg in step.aggregates:
                found.add(agg.fn)
                roots += [*agg.args, agg.filter]
    for root in roots:
        found.update(_exprs(root))
    return {fns.REGISTRY[name].name for name in found if name in fns.REGISTRY}


def _same(got: object, want: object) -> bool:
    if isinstance(want, float) and isinstance(got, int | float):
        return math.isclose(got, want, rel_tol=1e-9)
    if isinstance(want, list) and isinstance(got, list):
        return len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True))
    return type(got) is type(want) and got == want


@pytest.mark.parametrize("case", CASES, ids=[c.query for c in CASES])
def test_case(case: Case, backend: str) -> None:
    if backend in case.unsupported:
        with pytest.raises(UnsupportedFeatureError):
            _run(backend, case.query)
        return
    result = _run(backend, case.query)
    assert [c.name for c in result.columns] == ["r"]
    assert len(result.rows) == 1
    got = result.rows[0][0]
    assert _same(got, case.expected), f"{backend}: {got!r} != {case.expected!r}"


@pytest.mark.parametrize("case", [c for c in CASES if not c.unsupported], ids=lambda c: c.query)
def test_backends_warn_alike(case: Case) -> None:
    warnings = {
        backend: sorted(_run(backend, case.query).warnings) for backend in ("duckdb", "reference")
    }
    assert warnings["duckdb"] == warnings["reference"]


def test_every_registered_function_is_covered_on_every_backend() -> None:
    covered = set().union(*(plan_functions(compile_query(c.query, StaticCatalog())) for c in CASES))
    missing = sorted(set(fns.canonical_names()) - covered)
    assert not missing, f"registry entries without a coverage case: {missing}"


def test_unsupported_reasons_are_given_by_name() -> None:
    for case in CASES:
        for backend, reason in case.unsupported.items():
            assert backend in BATCH_BACKENDS
            assert reason.strip(), case.query
