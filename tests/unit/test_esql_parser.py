"""ES|QL parser: commands, operators, precedence, time spans, spans and positioned errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconwatch.errors import QueryError, QuerySyntaxError, UnsupportedFeatureError
from reconwatch.esql import ast
from reconwatch.esql.parser import parse, parse_expression

SEED = """from logs-endpoint.events.network-*
| keep @timestamp, host.os.type, event.type, event.action, process.executable, destination.ip, agent.id, host.name
| where
 @timestamp > now() - 1 hours and
 host.os.type == "linux" and
 event.type == "start" and
 event.action == "connection_attempted"
| stats
 Esql.event_count = count(),
 Esql.destination_ip_count_distinct = count_distinct(destination.ip),
 Esql.agent_id_count_distinct = count_distinct(agent.id),
 Esql.host_name_values = values(host.name),
 Esql.agent_id_values = values(agent.id)
 by process.executable
| where
 Esql.agent_id_count_distinct == 1 and
 Esql.destination_ip_count_distinct > 250
| sort Esql.event_count asc
| limit 100
"""

F = ast.Field
L = ast.Literal


def i(v: int) -> ast.Literal:
    return L("integer", v)


def s(v: str) -> ast.Literal:
    return L("string", v)


def e(text: str) -> ast.Expr:
    return parse_expression(text)


def one(text: str) -> ast.Command:
    """The single processing command of `ROW x = 1 | <text>`."""
    query = parse("ROW x = 1 | " + text)
    assert len(query.commands) == 2
    return query.commands[1]


# -- the seed rule -------------------------------------------------------------------------------


def test_seed_query() -> None:
    q = parse(SEED)
    eq = lambda name, v: ast.Binary("==", F(name), s(v))  # noqa: E731
    assert q.commands == (
        ast.From(("logs-endpoint.events.network-*",)),
        ast.Keep(
            (
                "@timestamp",
                "host.os.type",
                "event.type",
                "event.action",
                "process.executable",
                "destination.ip",
                "agent.id",
                "host.name",
            )
        ),
        ast.Where(
            ast.And(
                (
                    ast.Binary(
                        ">",
                        F("@timestamp"),
                        ast.Binary("-", ast.Call("now", ()), ast.TimeSpan(1, "hour")),
                    ),
                    eq("host.os.type", "linux"),
                    eq("event.type", "start"),
                    eq("event.action", "connection_attempted"),
                )
            )
        ),
        ast.Stats(
            (
                ast.AggField("Esql.event_count", ast.Call("count", ())),
                ast.AggField(
                    "Esql.destination_ip_count_distinct",
                    ast.Call("count_distinct", (F("destination.ip"),)),
                ),
                ast.AggField(
                    "Esql.agent_id_count_distinct", ast.Call("count_distinct", (F("agent.id"),))
                ),
                ast.AggField("Esql.host_name_values", ast.Call("values", (F("host.name"),))),
                ast.AggField("Esql.agent_id_values", ast.Call("values", (F("agent.id"),))),
            ),
            (ast.Assign(None, F("process.executable")),),
        ),
        ast.Where(
            ast.And(
                (
                    ast.Binary("==", F("Esql.agent_id_count_distinct"), i(1)),
                    ast.Binary(">", F("Esql.destination_ip_count_distinct"), i(250)),
                )
            )
        ),
        ast.Sort((ast.SortItem(F("Esql.event_count")),)),
        ast.Limit(100),
    )
    assert q.source == SEED


def test_seed_spans() -> None:
    q = parse(SEED)
    stats = q.commands[3]
    assert isinstance(stats, ast.Stats)
    assert stats.span.text(SEED).startswith("stats\n Esql.event_count")
    assert stats.span.text(SEED).endswith("by process.executable")
    agg = stats.aggs[1]
    assert agg.span.text(SEED) == (
        "Esql.destination_ip_count_distinct = count_distinct(destination.ip)"
    )
    assert agg.expr.span.text(SEED) == "count_distinct(destination.ip)"
    assert (agg.span.line, agg.span.col) == (10, 2)
    limit = q.commands[-1]
    assert limit.span.text(SEED) == "limit 100"


# -- source commands -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sources", "metadata"),
    [
        ("FROM employees", ("employees",), ()),
        ("from logs-*, .alerts-security.*", ("logs-*", ".alerts-security.*"), ()),
        ("FROM cluster:idx,other-*", ("cluster:idx", "other-*"), ()),
        ('FROM "quoted index", """x"""', ("quoted index", "x"), ()),
        ("from a metadata _id, _index, _version", ("a",), ("_id", "_index", "_version")),
        ("FROM a, b METADATA _id", ("a", "b"), ("_id",)),
        ("FROM a // comment\n", ("a",), ()),
    ],
)
def test_from(text: str, sources: tuple[str, ...], metadata: tuple[str, ...]) -> None:
    assert parse(text).commands == (ast.From(sources, metadata),)


def test_row() -> None:
    assert parse('ROW a = 1, b = "x", c = [1, 2], d = null, 2').commands == (
        ast.Row(
            (
                ast.Assign("a", i(1)),
                ast.Assign("b", s("x")),
                ast.Assign("c", ast.ListLiteral((i(1), i(2)))),
                ast.Assign("d", L("null", None)),
                ast.Assign(None, i(2)),
            )
        ),
    )


# -- processing commands -------------------------------------------------------------------------


def test_where_and_eval() -> None:
    assert one("WHERE a > 1") == ast.Where(ast.Binary(">", F("a"), i(1)))
    assert one("EVAL y = x + 1, x * 2, `odd name`.z = 3") == ast.Eval(
        (
            ast.Assign("y", ast.Binary("+", F("x"), i(1))),
            ast.Assign(None, ast.Binary("*", F("x"), i(2))),
            ast.Assign("odd name.z", i(3)),
        )
    )


def test_keep_and_drop_patterns() -> None:
    assert one("KEEP a, b.*, *name, `AVG(x)`, *") == ast.Keep(("a", "b.*", "*name", "AVG(x)", "*"))
    assert one("drop host.*, @timestamp") == ast.Drop(("host.*", "@timestamp"))


def test_rename_both_forms() -> None:
    assert one("RENAME a AS b, new = old") == ast.Rename((("a", "b"), ("old", "new")))


def test_stats_forms() -> None:
    assert one("STATS count(*)") == ast.Stats((ast.AggField(None, ast.Call("count", (), True)),))
    assert one("STATS BY a, b = x") == ast.Stats(
        (), (ast.Assign(None, F("a")), ast.Assign("b", F("x")))
    )
    assert one("STATS c = COUNT() WHERE x > 1, m = max(y) BY g") == ast.Stats(
        (
            ast.AggField("c", ast.Call("count", ()), ast.Binary(">", F("x"), i(1))),
            ast.AggField("m", ast.Call("max", (F("y"),))),
        ),
        (ast.Assign(None, F("g")),),
    )
    assert one("INLINE STATS m = max(y) BY g") == ast.Stats(
        (ast.AggField("m", ast.Call("max", (F("y"),))),), (ast.Assign(None, F("g")),), inline=True
    )
    assert one("inlinestats max(y)") == ast.Stats(
        (ast.AggField(None, ast.Call("max", (F("y"),))),), inline=True
    )


def test_sort() -> None:
    assert one("SORT a, b DESC, c ASC NULLS FIRST, d nulls last") == ast.Sort(
        (
            ast.SortItem(F("a")),
            ast.SortItem(F("b"), descending=True),
            ast.SortItem(F("c"), nulls_first=True),
            ast.SortItem(F("d"), nulls_first=False),
        )
    )


def test_limit_mv_expand_dissect_grok() -> None:
    assert one("LIMIT 0") == ast.Limit(0)
    assert one("MV_EXPAND a.b") == ast.MvExpand("a.b")
    assert one('DISSECT msg "%{a} %{b}"') == ast.Dissect(F("msg"), "%{a} %{b}")
    assert one('dissect msg """%{a}""" APPEND_SEPARATOR = ","') == ast.Dissect(
        F("msg"), "%{a}", ","
    )
    assert one('GROK msg "%{IP:ip}"') == ast.Grok(F("msg"), "%{IP:ip}")


@pytest.mark.parametrize(
    ("text", "name", "kept"),
    [
        ("ENRICH policy ON a WITH b = c", "ENRICH", "ENRICH policy ON a WITH b = c"),
        ("LOOKUP JOIN idx-lookup ON key", "LOOKUP JOIN", "LOOKUP JOIN idx-lookup ON key"),
        ("FORK (WHERE a | LIMIT 1) (WHERE b)", "FORK", "FORK (WHERE a | LIMIT 1) (WHERE b)"),
        ('COMPLETION x = prompt WITH {"inference_id": "m"}', "COMPLETION", None),
        ("CHANGE_POINT v ON t", "CHANGE_POINT", None),
        ("SAMPLE 0.5", "SAMPLE", None),
        ('GROK msg "%{A:a}", "%{B:b}"', "GROK", None),
    ],
)
def test_unsupported_commands_keep_name_and_text(text: str, name: str, kept: str | None) -> None:
    source = f"FROM a\n| {text} // trailing\n| LIMIT 1"
    q = parse(source)
    cmd = q.commands[1]
    assert isinstance(cmd, ast.Unsupported)
    assert (cmd.name, cmd.text) == (name, kept or text)
    assert cmd.span.text(source) == cmd.text
    assert (cmd.span.line, cmd.span.col) == (2, 3)
    assert q.commands[2] == ast.Limit(1)


def test_unsupported_source_command_and_set() -> None:
    q = parse('SET a = "b";\nSHOW info')
    assert q.commands == (
        ast.Unsupported("SET", 'SET a = "b";'),
        ast.Unsupported("SHOW", "SHOW info"),
    )


# -- expressions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("a OR b AND c", ast.Or((F("a"), ast.And((F("b"), F("c")))))),
        ("a AND b OR c", ast.Or((ast.And((F("a"), F("b"))), F("c")))),
        ("a OR b OR c", ast.Or((F("a"), F("b"), F("c")))),
        ("(a OR b) OR c", ast.Or((ast.Or((F("a"), F("b"))), F("c")))),
        ("a AND (b AND c) AND d", ast.And((F("a"), ast.And((F("b"), F("c"))), F("d")))),
        ("NOT a AND b", ast.And((ast.Not(F("a")), F("b")))),
        ("NOT a == 1", ast.Not(ast.Binary("==", F("a"), i(1)))),
        ("NOT NOT a", ast.Not(ast.Not(F("a")))),
        ("a + b * c", ast.Binary("+", F("a"), ast.Binary("*", F("b"), F("c")))),
        ("a - b - c", ast.Binary("-", ast.Binary("-", F("a"), F("b")), F("c"))),
        ("(a - b) % c", ast.Binary("%", ast.Binary("-", F("a"), F("b")), F("c"))),
        ("a / b * c", ast.Binary("*", ast.Binary("/", F("a"), F("b")), F("c"))),
        ("-a * b", ast.Binary("*", ast.Unary("-", F("a")), F("b"))),
        ("-x::long", ast.Unary("-", ast.Cast(F("x"), "long"))),
        ("+1", ast.Unary("+", i(1))),
        ("a + 1 > b * 2", ast.Binary(">", ast.Binary("+", F("a"), i(1)), ast.Binary("*", F("b"), i(2)))),
        ("a =~ \"X\"", ast.Binary("=~", F("a"), s("X"))),
        ("a != b", ast.Binary("!=", F("a"), F("b"))),
        ("a <= 1 AND b >= 2", ast.And((ast.Binary("<=", F("a"), i(1)), ast.Binary(">=", F("b"), i(2))))),
        ("x::ip", ast.Cast(F("x"), "ip")),
        ('"1.2.3.4"::IP', ast.Cast(s("1.2.3.4"), "ip")),
        ("x::string::long", ast.Cast(ast.Cast(F("x"), "string"), "long")),
        ("a IN (1, 2, b)", ast.In(F("a"), (i(1), i(2), F("b")))),
        ("a NOT IN (1)", ast.In(F("a"), (i(1),), negated=True)),
        ("NOT a IN (1)", ast.Not(ast.In(F("a"), (i(1),)))),
        ('a LIKE "x*"', ast.Like(F("a"), ("x*",))),
        ('a not like ("x*", "y?")', ast.Like(F("a"), ("x*", "y?"), negated=True, listed=True)),
        ('a RLIKE """.*\\d+"""', ast.Like(F("a"), (".*\\d+",), regex=True)),
        ('a NOT RLIKE "b"', ast.Like(F("a"), ("b",), regex=True, negated=True)),
        ("a IS NULL", ast.IsNull(F("a"))),
        ("a is not null OR b", ast.Or((ast.IsNull(F("a"), negated=True), F("b")))),
        ('a : "query"', ast.Match(F("a"), s("query"))),
        ('a::keyword : "q" and b', ast.And((ast.Match(ast.Cast(F("a"), "keyword"), s("q")), F("b")))),
        ("[1, 2.5, \"x\"]", ast.ListLiteral((i(1), L("decimal", 2.5), s("x")))),
        ("[]", ast.ListLiteral(())),
        ("true AND false", ast.And((L("boolean", True), L("boolean", False)))),
        ("?p + ?", ast.Binary("+", L("param", "p"), L("param", ""))),
        ("COUNT(*)", ast.Call("count", (), True)),
        ("Count_Distinct(ip0, 80000)", ast.Call("count_distinct", (F("ip0"), i(80000)))),
        ('KQL("""a : b""")', ast.Call("kql", (s("a : b"),))),
        ('match(a, "x", {"fuzziness": 1})', ast.Call("match", (F("a"), s("x"), ast.MapLiteral((("fuzziness", i(1)),))))),
        ("`a.b`", F("a.b")),
        ("`weird``name`.x", F("weird`name.x")),
        ("a.in.null", F("a.in.null")),
        ("@timestamp", F("@timestamp")),
    ],
)  # fmt: skip
def test_expressions(text: str, tree: ast.Expr) -> None:
    assert e(text) == tree


@pytest.mark.parametrize(
    ("unit", "spellings"),
    [
        ("year", "year y yr years"),
        ("quarter", "quarter q quarters"),
        ("month", "month mo months"),
        ("week", "week w weeks"),
        ("day", "day d days"),
        ("hour", "hour h hours"),
        ("minute", "minute m min minutes"),
        ("second", "second s sec seconds"),
        ("millisecond", "millisecond ms milliseconds"),
    ],
)
def test_time_span_units(unit: str, spellings: str) -> None:
    for spelling in spellings.split():
        for text in (f"3 {spelling}", f"3{spelling}", f"3   {spelling.upper()}"):
            span = e(text)
            assert span == ast.TimeSpan(3, unit), text  # type: ignore[arg-type]
            assert isinstance(span, ast.TimeSpan)
            assert span.unit_text.lower() == spelling
            assert span.span.text(text) == text


def test_time_spans_in_context() -> None:
    assert e("now() - 61 minutes") == ast.Binary(
        "-", ast.Call("now", ()), ast.TimeSpan(61, "minute")
    )
    assert e("bucket(@timestamp, 1h)") == ast.Call(
        "bucket", (F("@timestamp"), ast.TimeSpan(1, "hour"))
    )
    assert e("-1 day") == ast.Unary("-", ast.TimeSpan(1, "day"))


@pytest.mark.parametrize(
    "text",
    [
        "COUNT_DISTINCT(ip0, 80000)",
        "couNt(*)",
        "concat(gender,   to_string(languages))",
        "languages + emp_no",
        "(a + b) * 2",
        "a.b.`c d`",
        "NOT x IN (1, 2)",
        'x NOT LIKE ("a", "b")',
        "1 hours",
    ],
)
def test_expression_spans_cover_source_exactly(text: str) -> None:
    q = parse(f"ROW a = 1\n|  EVAL {text} , z = 1")
    ev = q.commands[1]
    assert isinstance(ev, ast.Eval)
    assert ev.fields[0].span.text(q.source) == text
    assert ev.fields[0].expr.span.text(q.source) == text
    assert (ev.fields[0].span.line, ev.fields[0].span.col) == (2, 9)


def test_nested_spans() -> None:
    text = "a + f(b, -c) * 2 > 1"
    tree = e(text)
    assert isinstance(tree, ast.Binary)
    assert tree.span.text(text) == text
    plus = tree.left
    assert isinstance(plus, ast.Binary)
    assert plus.span.text(text) == "a + f(b, -c) * 2"
    times = plus.right
    assert isinstance(times, ast.Binary)
    call = times.left
    assert isinstance(call, ast.Call)
    assert call.span.text(text) == "f(b, -c)"
    assert call.args[1].span.text(text) == "-c"


def test_keywords_case_insensitive() -> None:
    a = parse("FROM a | WHERE x IS NOT NULL AND y NOT IN (1) | SORT x DESC NULLS LAST")
    b = parse("from a | where x is not null and y not in (1) | sort x desc nulls last")
    assert a == b


def test_comments_anywhere() -> None:
    q = parse("FROM a /* c */ | // line\n WHERE /* x */ b // end")
    assert q.commands == (ast.From(("a",)), ast.Where(F("b")))


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("", "1:1", "mismatched input '<EOF>' expecting {'from', 'row', 'show', 'ts', 'explain'}"),
        ("WHERE a", "1:1", "mismatched input 'WHERE' expecting {'from', 'row', 'show', 'ts', 'explain'}"),
        ("FROM a |", "1:9", "mismatched input '<EOF>' expecting {'where', 'eval', 'keep'"),
        ("FROM a | bogus x", "1:10", "mismatched input 'bogus' expecting {'where'"),
        ("FROM a\n| WHERE x ==", "2:13", "mismatched input '<EOF>' expecting an expression"),
        ("FROM a\n| WHERE x = 1", "2:11", "mismatched input '=' expecting {<EOF>, '|'}"),
        ("FROM a | WHERE (x", "1:18", "mismatched input '<EOF>' expecting ')'"),
        ("FROM a | LIMIT x", "1:16", "mismatched input 'x' expecting an integer"),
        ("FROM a | LIMIT 1.5", "1:16", "mismatched input '1.5' expecting an integer"),
        ("FROM a | SORT x NULLS", "1:22", "mismatched input '<EOF>' expecting {'first', 'last'}"),
        ("FROM a | RENAME x y", "1:19", "mismatched input 'y' expecting {'as', '='}"),
        ("FROM a | WHERE x IS 1", "1:21", "mismatched input '1' expecting {'not', 'null'}"),
        ("FROM a | WHERE x IN 1", "1:21", "mismatched input '1' expecting '('"),
        ("FROM a | WHERE x LIKE 1", "1:23", "unsupported: LIKE with a computed pattern"),
        ("FROM a | WHERE a == NOT b", "1:21", "mismatched input 'NOT' expecting an operand"),
        ("FROM a | KEEP", "1:14", "mismatched input '<EOF>' expecting a column name or pattern"),
        ("FROM | KEEP a", "1:6", "mismatched input '|' expecting an index pattern"),
        ("FROM a | INLINE x", "1:17", "mismatched input 'x' expecting 'stats'"),
        ("FROM a | GROK x", "1:16", "mismatched input '<EOF>' expecting a string"),
        ("FROM a | EVAL x::", "1:18", "mismatched input '<EOF>' expecting a data type name"),
        ('FROM a | WHERE x == "a', "1:21", "unterminated string"),
    ],
)  # fmt: skip
def test_errors_are_positioned(text: str, where: str, message: str) -> None:
    with pytest.raises(QueryError) as info:
        parse(text)
    err = info.value
    assert isinstance(err, QuerySyntaxError | UnsupportedFeatureError)
    assert err.span is not None
    assert f"{err.span.line}:{err.span.col}" == where
    assert err.message.startswith(message)
    assert err.source == text


DEPTH_LIMIT = "expression nested deeper than the limit of 100 levels"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("ROW x = " + "(" * 5000 + "1" + ")" * 5000, "1:109"),
        ("ROW x = " + "abs(" * 300 + "1" + ")" * 300, "1:409"),
        ("ROW x = " + "- " * 300 + "1", "1:209"),
        ("ROW x = " + "NOT " * 300 + "true", "1:409"),
        # A left-deep chain parses in a loop; the tree it makes is still too deep to walk.
        ("ROW x = 1" + " + 1" * 250, "1:613"),
        ("ROW x = 1 | WHERE " + " AND ".join(["(a OR b" for _ in range(120)]) + ")" * 120, "1:416"),
    ],
)
def test_too_deep_is_refused_at_a_position(text: str, where: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(text)
    assert info.value.message == DEPTH_LIMIT
    assert info.value.span is not None
    assert f"{info.value.span.line}:{info.value.span.col}" == where


def test_parse_expression_checks_depth_too() -> None:
    with pytest.raises(QuerySyntaxError, match=DEPTH_LIMIT):
        parse_expression("1" + " * 2" * 101)


def test_long_and_or_chains_are_one_node() -> None:
    q = parse("ROW a = 1 | WHERE " + " OR ".join(f"a == {n}" for n in range(3000)))
    where = q.commands[1]
    assert isinstance(where, ast.Where)
    assert isinstance(where.condition, ast.Or)
    assert len(where.condition.operands) == 3000
    assert where.condition.span.text(q.source).endswith("a == 2999")
    text = " AND ".join(["a > 0"] * 500)
    assert parse_expression(text) == ast.And(tuple(parse_expression("a > 0") for _ in range(500)))


def test_depth_up_to_the_limit_parses() -> None:
    parse("ROW x = " + "abs(" * 99 + "1" + ")" * 99)
    parse("ROW x = 1" + " + 1" * 99)


def test_error_caret_points_at_the_bad_token() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse("FROM a\n| WHERE x >> 1")
    assert info.value.render() == (
        "line 2:12: mismatched input '>' expecting an expression\n| WHERE x >> 1\n           ^"
    )


_FUZZ_WORDS = [
    "from", "row", "where", "eval", "stats", "by", "keep", "drop", "rename", "as", "sort", "limit",
    "mv_expand", "dissect", "grok", "inline", "enrich", "set", "|", ",", "(", ")", "[", "]", "{",
    "}", '"s"', '"""t"""', "`q`", "1", "2.5", "x", "a.b", "and", "or", "not", "in", "like", "is",
    "null", "==", "=", "-", "*", "::", ":", "?", "desc", "nulls", "metadata", "hour", "\n", ";",
    ".", "`", '"', "=~", "count(*)", "lookup join",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_FUZZ_WORDS), max_size=14), st.booleans())
def test_any_text_parses_or_raises_a_query_error(words: list[str], prefixed: bool) -> None:
    text = ("FROM a | " if prefixed else "") + " ".join(words)
    try:
        parse(text)
    except QueryError as exc:
        assert "cannot parse query" not in exc.message  # that would be a parser bug
