"""The DuckDB SQL of an expression grows linearly with the expression, and the SQL that binds
repeated operands once computes what the reference interpreter computes."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconwatch.backends import duckdb as duck
from reconwatch.backends import reference as ref
from reconwatch.backends.duckdb.compile import compile_plan
from reconwatch.esql.analyze import compile_query
from reconwatch.plan.catalog import StaticCatalog

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
ROW = 'ROW a = 7, l = 3000000000, b = [1, 2], s = "ab", t = ["x", "y"], ip = "10.1.2.3"'
# Per expression node, at most this much SQL; templates with checks are a few hundred characters.
PER_NODE = 1200


def sql_for(expr: str) -> str:
    plan = compile_query(f"{ROW} | EVAL r = {expr} | KEEP r", StaticCatalog({}))
    return compile_plan(plan, "NOW", {}, []).sql


BASE = len(sql_for("1"))

# Random typed expressions, as text, with their node count. Operators that check overflow,
# the single-value rule and failed conversions are the ones whose SQL repeats its operands.
Sized = tuple[str, int]


def _leaf(choices: list[str]) -> st.SearchStrategy[Sized]:
    return st.sampled_from(choices).map(lambda t: (t, 1))


INT_LEAVES = _leaf(["a", "l", "b", "1", "-2", "mv_min(b)"])
STR_LEAVES = _leaf(["s", "t", '"q"'])


def _ints(
    sub_i: st.SearchStrategy[Sized], sub_s: st.SearchStrategy[Sized]
) -> st.SearchStrategy[Sized]:
    op = st.sampled_from(["+", "-", "*", "/", "%"])
    return st.one_of(
        st.builds(lambda x, o, y: (f"({x[0]} {o} {y[0]})", x[1] + y[1] + 1), sub_i, op, sub_i),
        sub_i.map(lambda x: (f"-({x[0]})", x[1] + 1)),
        sub_i.map(lambda x: (f"abs({x[0]})", x[1] + 1)),
        sub_i.map(lambda x: (f"to_long({x[0]})", x[1] + 1)),
        sub_s.map(lambda x: (f"length({x[0]})", x[1] + 1)),
        st.builds(lambda x, y: (f"coalesce({x[0]}, {y[0]})", x[1] + y[1] + 1), sub_i, sub_i),
        st.builds(
            lambda x, y, z: (f"case({x[0]} > {y[0]}, {x[0]}, {z[0]})", 2 * x[1] + y[1] + z[1] + 2),
            sub_i, sub_i, sub_i,
        ),
    )  # fmt: skip


def _strs(
    sub_i: st.SearchStrategy[Sized], sub_s: st.SearchStrategy[Sized]
) -> st.SearchStrategy[Sized]:
    return st.one_of(
        st.builds(lambda x, y: (f"concat({x[0]}, {y[0]})", x[1] + y[1] + 1), sub_s, sub_s),
        sub_i.map(lambda x: (f"to_string({x[0]})", x[1] + 1)),
        sub_s.map(lambda x: (f"to_upper({x[0]})", x[1] + 1)),
        sub_s.map(lambda x: (f"to_string(to_ip({x[0]}))", x[1] + 2)),
        sub_s.map(lambda x: (f"substring({x[0]}, 1, 3)", x[1] + 1)),
    )


def _expressions() -> st.SearchStrategy[tuple[Sized, Sized]]:
    both = st.recursive(
        st.tuples(INT_LEAVES, STR_LEAVES),
        lambda sub: st.tuples(
            _ints(sub.map(lambda p: p[0]), sub.map(lambda p: p[1])),
            _strs(sub.map(lambda p: p[0]), sub.map(lambda p: p[1])),
        ),
        max_leaves=40,
    )
    return both


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_sql_grows_linearly_with_the_expression(pair: tuple[Sized, Sized]) -> None:
    for text, nodes in pair:
        size = len(sql_for(text)) - BASE
        assert size <= PER_NODE * nodes, (text, size, nodes)


def test_chains_that_grew_exponentially_are_linear() -> None:
    # Each overflow check or conversion repeated its operand: 8 terms made gigabytes of SQL.
    for make in (
        lambda n: " + ".join(["a"] * n),
        lambda n: " * ".join(["b"] * n),
        lambda n: "to_ip(to_string(" * n + "ip" + "))" * n,
    ):
        small, large = len(sql_for(make(8))) - BASE, len(sql_for(make(32))) - BASE
        assert large <= 5 * small, (make(2), small, large)  # 4x the terms; was 5^24x


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expressions())
def test_bound_operands_compute_what_the_reference_computes(pair: tuple[Sized, Sized]) -> None:
    for text, _nodes in pair:
        plan = compile_query(f"{ROW} | EVAL r = {text} | KEEP r", StaticCatalog({}))
        assert duck.execute(plan, None, NOW).rows == ref.execute(plan, [], NOW).rows, text
