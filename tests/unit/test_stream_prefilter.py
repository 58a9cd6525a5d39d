"""Stream fast paths agree with the general ones: the raw-event pre-filter and the event-time parser."""

from __future__ import annotations

from reconwatch.backends.stream.prefilter import (
    PASS,
    REJECT,
    UNKNOWN,
    compile_verdict,
    leading_equalities,
)
from reconwatch.plan import nodes as p
from reconwatch.types import DataType as T


def _eq(name: str, value: object, type_: T = T.KEYWORD) -> p.Call:
    return p.Call("eq", (p.Ref(name, type_), p.Const(value, type_)), T.BOOLEAN)


def test_simple_conjunction_is_compiled_and_dropped() -> None:
    cond = p.Call("and", (_eq("host.os.type", "linux"), _eq("event.action", "x")), T.BOOLEAN)
    tests, rest = leading_equalities((p.Filter(cond, ()),), {"host.os.type", "event.action"})
    assert tests == [("host.os.type", "linux"), ("event.action", "x")]
    assert rest == ()


def test_other_terms_keep_the_where_and_eval_stops_the_search() -> None:
    other = p.Call("gt", (p.Ref("n", T.LONG), p.Const(1, T.LONG)), T.BOOLEAN)
    cond = p.Call("and", (_eq("a", "1"), other), T.BOOLEAN)
    where = p.Filter(cond, ())
    late = p.Filter(_eq("b", "2"), ())
    steps: tuple[p.Step, ...] = (where, p.Eval((("b", p.Const("2", T.KEYWORD)),), ()), late)
    tests, rest = leading_equalities(steps, {"a", "b", "n"})
    assert tests == [("a", "1")]
    assert rest == steps


def test_verdicts() -> None:
    verdict = compile_verdict([("a", "x"), ("b", "y")])
    assert verdict({"a": ["x"], "b": ["y"]}) == PASS
    assert verdict({"a": "x", "b": "y"}) == PASS
    assert verdict({"a": ["x"], "b": ["z"]}) == REJECT
    assert verdict({"a": ["x"]}) == REJECT  # missing: null
    assert verdict({"a": ["x"], "b": []}) == REJECT
    assert verdict({"a": ["x"], "b": ["y", "z"]}) == UNKNOWN  # multivalue: the WHERE decides
    assert verdict({"a": [1], "b": ["y"]}) == UNKNOWN


def test_fast_event_time_agrees_with_the_generic_parser() -> None:
    from reconwatch.backends.stream.cells import iso_millis
    from reconwatch.plan import values as v

    for text in (
        "2025-07-15T00:00:00.351Z",
        "1969-12-31T23:59:59.999Z",
        "2024-02-29T12:34:56.000Z",
    ):
        assert iso_millis(text) == v.datetime_to_millis(v.parse_datetime(text))
    for text in ("2025-02-30T00:00:00.000Z", "2025-07-15T24:00:00.000Z", "2025-07-15T00:00:00Z"):
        assert iso_millis(text) is None  # left to the generic parser (which rejects or parses)


def test_fast_ipv4_order_key_agrees_with_ip_bytes() -> None:
    from reconwatch.backends.stream.cells import ipv4_key
    from reconwatch.plan import values as v

    for text in ("10.0.0.1", "0.0.0.0", "255.255.255.255", "192.168.1.10"):
        assert ipv4_key(text) == v.ip_bytes(text)
    for other in ("010.0.0.1", "::1", "1.2.3", "1.2.3.4 ", 7, None):
        assert ipv4_key(other) is None  # left to the strict parser


def test_count_thresholds_take_leading_where_terms_on_count_columns() -> None:
    from reconwatch.backends.stream.prefilter import count_thresholds

    c = p.Ref("c", T.LONG)
    d = p.Ref("d", T.LONG)
    cond = p.Call(
        "and",
        (
            p.Call("gt", (c, p.Const(250, T.INTEGER)), T.BOOLEAN),
            p.Call("lt", (p.Const(1, T.INTEGER), d), T.BOOLEAN),  # mirrored: d > 1
        ),
        T.BOOLEAN,
    )
    later = p.Filter(p.Call("eq", (c, p.Const(0, T.INTEGER)), T.BOOLEAN), ())
    steps = (p.Filter(cond, ()), p.Eval((("c", p.Const(0, T.INTEGER)),), ()), later)
    tests = count_thresholds(steps, {"c": 0, "d": 1})
    assert [(i, bound) for i, _f, bound in tests] == [(0, 250), (1, 1)]
    (_i, gt, _b), (_j, mirrored, _c) = tests
    assert gt(251, 250) and not gt(250, 250)
    assert mirrored(2, 1) and not mirrored(1, 1)


def test_linear_count_terms_take_scaled_count_comparisons() -> None:
    from reconwatch.backends.stream.prefilter import linear_count_terms

    c, d, x = p.Ref("c", T.LONG), p.Ref("d", T.LONG), p.Ref("x", T.LONG)

    def mul(a: p.Expr, b: p.Expr) -> p.Call:
        return p.Call("mul", (a, b), T.LONG)

    def k(n: object) -> p.Const:
        return p.Const(n, T.INTEGER)

    terms = [
        p.Call("lt", (mul(c, k(4)), mul(d, k(5))), T.BOOLEAN),
        p.Call("gte", (mul(k(9), d), c), T.BOOLEAN),  # constant first, plain count
        p.Call("lt", (mul(x, k(4)), mul(d, k(5))), T.BOOLEAN),  # x is not a count
        p.Call("lt", (mul(c, k(4.5)), d), T.BOOLEAN),  # not an integer factor
        p.Call("lt", (mul(c, k(2**40)), d), T.BOOLEAN),  # a product past the long range
        p.Call("gt", (c, k(3)), T.BOOLEAN),  # a plain threshold: count_thresholds' term
    ]
    cond: p.Expr = terms[0]
    for term in terms[1:]:
        cond = p.Call("and", (cond, term), T.BOOLEAN)
    found = linear_count_terms((p.Filter(cond, ()),), {"c": 0, "d": 1})
    assert [t[:4] for t in found] == [(0, 4, 1, 5), (1, 9, 0, 1)]
    assert found[0][4](4 * 4, 4 * 5) and not found[0][4](5 * 4, 4 * 5)
