"""ES|QL renderer: readable text, quoting and parentheses; parse(render(ast)) == ast for any AST."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.esql import ast
from reconwatch.esql.parser import parse, parse_expression
from reconwatch.esql.render import quote_name, quote_string, render, render_expr

F = ast.Field


def rt(text: str) -> str:
    return render_expr(parse_expression(text))


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("a OR b AND c", "a OR b AND c"),
        ("(a OR b) AND c", "(a OR b) AND c"),
        ("a OR (b OR c)", "a OR (b OR c)"),
        ("NOT (a AND b)", "NOT (a AND b)"),
        ("not a == 1", "NOT a == 1"),
        ("(a + b) * c", "(a + b) * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("a - b - c", "a - b - c"),
        ("-(a + b)", "-(a + b)"),
        ("- -a", "- -a"),
        ("(-1)::long", "(-1)::long"),
        ("(a == b) == c", "(a == b) == c"),
        ("(NOT a) IN (1)", "(NOT a) IN (1)"),
        ("x   ::   IP", "x::ip"),
        ("now() - 1hours", "now() - 1 hours"),
        ("COUNT ( * )", "count(*)"),
        ("a not in (1,2)", "a NOT IN (1, 2)"),
        ('a not rlike ("x")', 'a NOT RLIKE ("x")'),
        ("a is not null", "a IS NOT NULL"),
        ('a:"q"', 'a : "q"'),
        ('f(x, {"a": 1, "b": [1, 2]})', 'f(x, {"a": 1, "b": [1, 2]})'),
        ("?p", "?p"),
        ("1.5e300", "1.5e+300"),
    ],
)
def test_render_expr(text: str, rendered: str) -> None:
    assert rt(text) == rendered


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("host.os.type", "host.os.type"),
        ("@timestamp", "@timestamp"),
        ("Esql.event_count", "Esql.event_count"),
        ("AVG(salary)", "`AVG(salary)`"),
        ("a.0.b", "`a.0.b`"),
        ("tick`name", "`tick``name`"),
        ("by", "`by`"),
        ("null", "`null`"),
        ("x.null", "x.null"),
        ("_", "`_`"),
        ("", "``"),
    ],
)
def test_quote_name(name: str, quoted: str) -> None:
    assert quote_name(name) == quoted


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ("tab\there", '"tab\\there"'),
        ("line\nbreak", '"line\\nbreak"'),
        ('say "hi"!', '"""say "hi"!"""'),
        ("C:\\Windows\\*", '"""C:\\Windows\\*"""'),
        ('ends with "', '"ends with \\""'),
    ],
)
def test_quote_string(value: str, quoted: str) -> None:
    assert quote_string(value) == quoted
    assert parse_expression(quoted) == ast.Literal("string", value)


def test_render_query_one_command_per_line() -> None:
    text = (
        'from logs-*, "odd index" metadata _id | where a > 1 | eval b = a*2 | keep b, c*'
        " | drop `AVG(x)` | rename b as c | stats n = count(*) where c > 0 by d"
        " | inline stats m = max(c) | sort n desc nulls first, d | limit 5 | mv_expand d"
        ' | dissect d "%{x}" append_separator = "-" | grok d "%{IP:ip}"'
        " | enrich p on d with e"
    )
    assert render(parse(text)) == "\n".join(
        [
            'FROM logs-*, "odd index" METADATA _id',
            "| WHERE a > 1",
            "| EVAL b = a * 2",
            "| KEEP b, c*",
            "| DROP `AVG(x)`",
            "| RENAME b AS c",
            "| STATS n = count(*) WHERE c > 0 BY d",
            "| INLINE STATS m = max(c)",
            "| SORT n DESC NULLS FIRST, d",
            "| LIMIT 5",
            "| MV_EXPAND d",
            '| DISSECT d "%{x}" APPEND_SEPARATOR = "-"',
            '| GROK d "%{IP:ip}"',
            "| enrich p on d with e",
        ]
    )


def test_render_set_statement_has_no_pipe() -> None:
    q = parse('SET a = "b"; ROW x = 1 | LIMIT 1')
    assert render(q) == 'SET a = "b";\nROW x = 1\n| LIMIT 1'
    assert parse(render(q)) == q


def test_render_patterns_and_sources() -> None:
    q = ast.Query(
        (
            ast.From(("metadata", "a b", "logs-*", "x//y")),
            ast.Keep(("odd name*", "ok.*", "by")),
        )
    )
    text = render(q)
    assert text == 'FROM "metadata", "a b", logs-*, "x//y"\n| KEEP `odd name`*, ok.*, `by`'
    assert parse(text) == q


def test_stats_without_aggregates() -> None:
    for text in ("ROW a = 1 | STATS BY a", "ROW a = 1 | STATS"):
        q = parse(text)
        assert render(q) == text.replace(" | ", "\n| ")
        assert parse(render(q)) == q


# -- property: random ASTs survive render -> parse -----------------------------------------------

_IDENT = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_]{0,6}", fullmatch=True)
_NAMES = st.one_of(
    _IDENT,
    st.lists(_IDENT, min_size=2, max_size=3).map(".".join),
    st.sampled_from(
        ["@timestamp", "_id", "AVG(x)", "a b", "tick`s", "by", "null", "x.in", "a.0.b", "desc"]
    ),
)
_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_FUNCS = st.sampled_from(["count", "max", "concat", "to_lower", "date_trunc", "kql", "left"])
_TYPES = st.sampled_from(["ip", "long", "keyword", "datetime", "date_nanos", "double"])
_UNITS: list[ast.TimeUnit] = [
    "year", "quarter", "month", "week", "day", "hour", "minute", "second", "millisecond",
]  # fmt: skip


def _literals() -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        # Up to 20 digits: the lexer reads a longer integer as a double, as ES|QL does past
        # unsigned_long, so it comes back a decimal literal (tested in test_esql_lexer).
        st.integers(min_value=0, max_value=10**20 - 1).map(lambda v: ast.Literal("integer", v)),
        st.floats(min_value=0, allow_nan=False, allow_infinity=False).map(
            lambda v: ast.Literal("decimal", v)
        ),
        _TEXT.map(lambda v: ast.Literal("string", v)),
        st.booleans().map(lambda v: ast.Literal("boolean", v)),
        st.just(ast.Literal("null", None)),
        st.sampled_from(["", "p", "1", "?f"]).map(lambda v: ast.Literal("param", v)),
        st.builds(ast.TimeSpan, st.integers(0, 1000), st.sampled_from(_UNITS)),
        _NAMES.map(ast.Field),
    )


def _compound(sub: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    ops = st.sampled_from(["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "=~"])
    items = st.lists(sub, min_size=1, max_size=3).map(tuple)
    patterns = st.lists(_TEXT, min_size=1, max_size=3).map(tuple)
    return st.one_of(
        st.builds(ast.Binary, ops, sub, sub),
        st.builds(ast.And, st.lists(sub, min_size=2, max_size=4).map(tuple)),
        st.builds(ast.Or, st.lists(sub, min_size=2, max_size=4).map(tuple)),
        st.builds(ast.Not, sub),
        st.builds(ast.Unary, st.sampled_from(["-", "+"]), sub),
        st.builds(ast.In, sub, items, st.booleans()),
        st.builds(
            lambda v, p, r, n, listed: ast.Like(v, p, r, n, listed or len(p) > 1),
            sub, patterns, st.booleans(), st.booleans(), st.booleans(),
        ),
        st.builds(ast.IsNull, sub, st.booleans()),
        st.builds(ast.Cast, sub, _TYPES),
        st.builds(ast.Match, _NAMES.map(ast.Field), _TEXT.map(lambda v: ast.Literal("string", v))),
        st.builds(ast.Call, _FUNCS, st.lists(sub, max_size=3).map(tuple)),
        st.builds(lambda f: ast.Call(f, (), True), _FUNCS),
        st.builds(ast.ListLiteral, st.lists(sub, max_size=3).map(tuple)),
        st.builds(
            lambda f, a, m: ast.Call(f, (a, ast.MapLiteral(tuple(m)))),
            _FUNCS, sub, st.lists(st.tuples(_TEXT, sub), max_size=2),
        ),
    )  # fmt: skip


EXPRS = st.recursive(_literals(), _compound, max_leaves=12)


@settings(max_examples=600, deadline=None)
@given(EXPRS)
def test_expression_round_trip(expr: ast.Expr) -> None:
    text = render_expr(expr)
    assert parse_expression(text) == expr, text


_ASSIGNS = st.lists(st.builds(ast.Assign, st.none() | _NAMES, EXPRS), min_size=1, max_size=3)
_PATTERNS = st.lists(
    st.one_of(_NAMES, st.sampled_from(["*", "host.*", "*name", "a*b", "odd name*"])),
    min_size=1,
    max_size=3,
)
_SOURCES = st.lists(
    st.sampled_from(["logs-*", "a", ".alerts-security.*", "cluster:idx", "odd index", "metadata"]),
    min_size=1,
    max_size=3,
)

_PROCESSING = st.one_of(
    st.builds(ast.Where, EXPRS),
    st.builds(ast.Eval, _ASSIGNS.map(tuple)),
    st.builds(ast.Keep, _PATTERNS.map(tuple)),
    st.builds(ast.Drop, _PATTERNS.map(tuple)),
    st.builds(ast.Rename, st.lists(st.tuples(_NAMES, _NAMES), min_size=1, max_size=2).map(tuple)),
    st.builds(
        ast.Stats,
        st.lists(
            st.builds(ast.AggField, st.none() | _NAMES, EXPRS, st.none() | EXPRS), max_size=2
        ).map(tuple),
        st.lists(st.builds(ast.Assign, st.none() | _NAMES, EXPRS), max_size=2).map(tuple),
        st.booleans(),
    ),
    st.builds(
        ast.Sort,
        st.lists(
            st.builds(ast.SortItem, EXPRS, st.booleans(), st.none() | st.booleans()),
            min_size=1,
            max_size=2,
        ).map(tuple),
    ),
    st.builds(ast.Limit, st.integers(0, 10_000)),
    st.builds(ast.MvExpand, _NAMES),
    st.builds(ast.Dissect, EXPRS, _TEXT, st.none() | _TEXT),
    st.builds(ast.Grok, EXPRS, _TEXT),
    st.sampled_from(
        [
            ast.Unsupported("ENRICH", "ENRICH policy ON a WITH b = c"),
            ast.Unsupported("LOOKUP JOIN", "LOOKUP JOIN lookup-idx ON key"),
            ast.Unsupported("FORK", "FORK (WHERE a | LIMIT 1) (WHERE b)"),
        ]
    ),
)
_SOURCE_COMMANDS = st.one_of(
    st.builds(
        ast.From,
        _SOURCES.map(tuple),
        st.lists(st.sampled_from(["_id", "_index", "_version"]), max_size=2).map(tuple),
    ),
    st.builds(ast.Row, _ASSIGNS.map(tuple)),
)
QUERIES = st.builds(
    lambda first, rest: ast.Query((first, *rest)),
    _SOURCE_COMMANDS,
    st.lists(_PROCESSING, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(QUERIES)
def test_query_round_trip(query: ast.Query) -> None:
    text = render(query)
    assert parse(text) == query, text
