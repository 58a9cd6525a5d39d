"""KQL() in ES|QL: the parser, error positions, the lowering, and its semantics on both executors."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest

from conftest import SHARED
from reconwatch.backends import duckdb as duck
from reconwatch.backends import executor
from reconwatch.backends import reference as ref
from reconwatch.errors import QuerySemanticError, QuerySyntaxError, UnsupportedFeatureError
from reconwatch.esql import ast, kql
from reconwatch.esql.analyze import compile_query, support_report
from reconwatch.esql.parser import parse
from reconwatch.ingest import Dataset
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.plan.catalog import StaticCatalog
from reconwatch.plan.documents import convert_leaf, flatten
from reconwatch.types import DataType as T

CORPUS = SHARED / "rules" / "esql-corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"rule corpus not found at {CORPUS}")
NOW = datetime(2024, 5, 3, 12, 0, tzinfo=UTC)
INDEX = "logs-endpoint.events.process-default"


def shape(node: kql.Node) -> object:
    """A parse tree without offsets, for comparisons."""
    if isinstance(node, kql.Value):
        return "*".join(node.chunks) if not node.quoted else f'"{node.chunks[0]}"'
    if isinstance(node, kql.Bool):
        return (node.op, *(shape(i) for i in node.items))
    if isinstance(node, kql.Not):
        return ("not", shape(node.operand))
    if isinstance(node, kql.FieldMatch):
        return (":", shape(node.field), shape(node.values))
    if isinstance(node, kql.Exists):
        return ("exists", shape(node.field))
    if isinstance(node, kql.Range):
        return (node.op, shape(node.field), shape(node.value))
    if isinstance(node, kql.Nested):
        return ("{}", shape(node.field), shape(node.query))
    return ("free", shape(node.values))


# -- parser ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:1", (":", "a", "1")),
        ("a : 1", (":", "a", "1")),
        ('a: "x y"', (":", "a", '"x y"')),
        ("a: x y", (":", "a", "x y")),
        (
            "a:1 or b:2 and not c:3",
            ("or", (":", "a", "1"), ("and", (":", "b", "2"), ("not", (":", "c", "3")))),
        ),
        (
            "(a:1 OR b:2) AND c:3",
            ("and", ("or", (":", "a", "1"), (":", "b", "2")), (":", "c", "3")),
        ),
        ("NOT not a:1", ("not", ("not", (":", "a", "1")))),
        ("a:(x or y and not z)", (":", "a", ("or", "x", ("and", "y", ("not", "z"))))),
        ("a: *", ("exists", "a")),
        ('a: "*"', (":", "a", '"*"')),
        ("a: x*y*", (":", "a", "x*y*")),
        ("a*: x", (":", "a*", "x")),
        ("a >= 10", ("gte", "a", "10")),
        ("a<now-1d/d", ("lt", "a", "now-1d/d")),
        ('a > "2024-01-01"', ("gt", "a", '"2024-01-01"')),
        ("a: {b: c}", ("{}", "a", (":", "b", "c"))),
        ("hello", ("free", "hello")),
        ("a:orange and b:notice", ("and", (":", "a", "orange"), (":", "b", "notice"))),
        (r"a:\(x\)\:\*", (":", "a", "(x):*")),
        (r"a:x \or y", (":", "a", "x or y")),
        (r"a:\or", (":", "a", "or")),
        (r'a:"q\"uote\\"', (":", "a", '"q"uote\\"')),
        ('a:"x\\*"', (":", "a", '"x\\*"')),
        ("p:/var/lib/*/script.sh", (":", "p", "/var/lib/*/script.sh")),
    ],
)
def test_parse(text: str, expected: object) -> None:
    assert shape(kql.parse(text)) == expected


def test_escaped_star_is_not_a_wildcard() -> None:
    node = kql.parse(r"a:x\*")
    assert isinstance(node, kql.FieldMatch) and isinstance(node.values, kql.Value)
    assert node.values.chunks == ("x*",)
    assert not node.values.has_wildcard


@pytest.mark.parametrize(
    ("text", "message", "offset"),
    [
        ("a:(b or c", "expected [)]", 9),
        ("a: ", "expected a value after [:]", 3),
        ('a:"open', "unterminated quoted string", 2),
        ("a:1 and", "expected a field or a value", 7),
        ("a:1 )", "unexpected [)]", 4),
        (r"a:b\q", "invalid escape [\\q]", 3),
        ("a > x*", "a range value cannot hold a wildcard", 4),
    ],
)
def test_syntax_errors_name_the_offset(text: str, message: str, offset: int) -> None:
    query = f'FROM logs | WHERE KQL("""{text}""")'
    with pytest.raises(QuerySyntaxError) as info:
        compile_query(query, StaticCatalog({}))
    err = info.value
    assert message in err.message
    start = query.index('"""') + 3
    assert err.span is not None
    assert (err.span.line, err.span.col) == (1, 1 + start + offset)


def test_error_position_goes_through_string_escapes_and_lines() -> None:
    query = 'FROM logs\n| WHERE x == 1 AND KQL("a:\\"b\\" and c:(d or")'
    with pytest.raises(QuerySyntaxError) as info:
        compile_query(query, StaticCatalog({"x": p.Column("x", T.INTEGER)}))
    err = info.value
    assert err.span is not None
    # The KQL text is `a:"b" and c:(d or`; its end is the closing quote of the ES|QL literal.
    assert err.span.line == 2
    assert err.span.col == query.split("\n")[1].rindex('"') + 1
    caret = err.render().splitlines()
    assert caret[-1].index("^") == err.span.col - 1
    assert err.one_line().startswith("line 2:")


def test_support_report_refuses_nested_and_field_less_queries_by_name() -> None:
    problems = support_report(parse('FROM logs | WHERE KQL("a: {b: c}") OR KQL("x:1 or hello")'))
    assert [type(e) for e in problems] == [UnsupportedFeatureError, UnsupportedFeatureError]
    assert "nested" in problems[0].message
    assert "without a field" in problems[1].message
    assert problems[1].span is not None
    assert problems[1].span.col == len('FROM logs | WHERE KQL("a: {b: c}") OR KQL("x:1 or ') + 1


def test_kql_needs_one_constant_string() -> None:
    cat = StaticCatalog({"a": p.Column("a", T.KEYWORD)})
    with pytest.raises(QuerySemanticError, match="constant string"):
        compile_query("FROM logs | WHERE KQL(a)", cat)


# -- lowering ----------------------------------------------------------------------------------

CATALOG = {
    "k": p.Column("k", T.KEYWORD, True),
    "n": p.Column("n", T.LONG),
    "t": p.Column("t", T.TEXT),
    "ip": p.Column("ip", T.IP),
    "d": p.Column("d", T.DATETIME),
}


def lowered(text: str) -> p.Expr:
    plan = compile_query(f'FROM logs | WHERE KQL("""{text}""")', StaticCatalog(CATALOG))
    step = plan.steps[0]
    assert isinstance(step, p.Filter)
    return step.condition


def test_lowering_uses_mv_aware_functions_and_never_null() -> None:
    expr = lowered("k: a and k: b* and n > 5")
    assert isinstance(expr, p.Call) and expr.fn == "and"
    calls = {c.fn for c in _calls(expr)}
    assert {"mv_contains", "mv_any_like", "mv_max", "coalesce", "gt"} <= calls
    assert "eq" not in calls  # ES|QL's == is null on multivalues; KQL matches any value


def test_unknown_field_matches_nothing() -> None:
    assert lowered("nope: x") == p.Const(False, T.BOOLEAN)
    assert lowered("not nope: x") == p.Call("not", (p.Const(False, T.BOOLEAN),), T.BOOLEAN)


def test_empty_query_matches_everything() -> None:
    assert lowered("  ") == p.Const(True, T.BOOLEAN)


def test_values_are_read_as_the_field_type() -> None:
    expr = lowered("n: 42 and ip: 10.0.0.1")
    consts = [
        a for c in _calls(expr) if c.fn == "mv_contains" for a in c.args if isinstance(a, p.Const)
    ]
    assert [(c.value, c.type) for c in consts] == [(42, T.LONG), ("10.0.0.1", T.IP)]


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("t: hello", UnsupportedFeatureError, "text field [t]"),
        ("ip: 10.0.0.0/8", UnsupportedFeatureError, "CIDR"),
        ("n: abc", QuerySemanticError, "whole number"),
        ("n: 1*", QuerySemanticError, "wildcard"),
        ("ip: nonsense", QuerySemanticError, "cannot read [nonsense] as [ip]"),
    ],
)
def test_refusals_are_positioned_at_the_value(text: str, error: type, words: str) -> None:
    query = f'FROM logs | WHERE KQL("""{text}""")'
    with pytest.raises(error) as info:
        compile_query(query, StaticCatalog(CATALOG))
    assert words in info.value.message
    value_at = query.index(text) + text.index(":") + 2
    assert info.value.span is not None
    assert info.value.span.col == value_at + 1


def _calls(expr: p.Expr) -> list[p.Call]:
    if not isinstance(expr, p.Call):
        return []
    return [expr, *(c for a in expr.args for c in _calls(a))]


# -- semantics on both executors ---------------------------------------------------------------

DOCS: list[dict[str, object]] = [
    {
        "@timestamp": "2024-05-03T11:30:00Z",
        "process": {"name": "curl", "args": ["curl", "-c", "/tmp/x"]},
        "destination": {"port": [80, 8080]},
        "event": {"action": "exec"},
        "custom": {"tag": "Rule Type: Higher-Order Rule"},
    },
    {
        "@timestamp": "2024-05-02T10:00:00Z",
        "process": {"name": "Curl", "args": "*"},
        "destination": {"port": 443},
        "event": {"action": "fork"},
    },
    {
        "@timestamp": "2024-05-03T11:59:00Z",
        "process": {"name": "wget", "args": ["wget", "a?b"]},
        "event": {"action": "exec"},
        "custom": {"tag": ["x", "Rule Type: Higher-Order Rule"]},
    },
    {"@timestamp": "2024-05-03T09:00:00Z", "event": {"action": "exec"}},
]


def reference_rows(ds: Dataset) -> list[dict[str, object]]:
    """The documents as Elasticsearch reads them: typed leaves, multivalues in doc-values order."""
    rows: list[dict[str, object]] = []
    for number, doc in enumerate(DOCS, start=1):
        row: dict[str, object] = {"_id": f"d{number}"}
        for name, leaves in flatten(doc).items():
            col = ds.column(name)
            assert col is not None
            items = [convert_leaf(leaf, col.type) for leaf in leaves]
            if col.type is T.KEYWORD:
                items = list(dict.fromkeys(items))
            items.sort(key=lambda x, t=col.type: v.order_key(x, t))
            row[name] = v.from_list(items)
        rows.append(row)
    return rows


def matching(kql_text: str, backend: str) -> list[str]:
    """The documents KQL(kql_text) keeps, named by their @timestamp (day, hour, minute)."""
    ds = Dataset.from_documents(DOCS, index=INDEX)
    plan = compile_query(f'FROM {INDEX} | WHERE KQL("""{kql_text}""") | KEEP @timestamp', ds)
    if backend == "reference":
        result = ref.execute(plan, reference_rows(ds), NOW)
    else:
        result = executor(backend)(plan, ds, NOW)
    stamps = [row[0] for row in result.rows]
    return sorted(v.format_datetime(s)[8:16] for s in stamps if isinstance(s, datetime))


D1, D2, D3, D4 = "03T11:30", "02T10:00", "03T11:59", "03T09:00"

SEMANTICS = {
    "process.name: curl": [D1],
    'process.name: "curl"': [D1],
    "process.name: Curl": [D2],
    "process.name: (curl or wget)": [D1, D3],
    # A multivalued field matches when any value does (ES|QL's == would be null here).
    'process.args: "-c"': [D1],
    "process.args: /tmp/*": [D1],
    # Quoted, a star is a literal character; unquoted and alone it asks whether the field exists.
    'process.args: "*"': [D2],
    "process.args: *": [D1, D2, D3],
    # `?` is not a KQL wildcard.
    "process.args: a?b": [D3],
    "process.args: a*b": [D3],
    "process.args: ?*": [],
    # not of a missing field is true; an unknown field matches nothing.
    "not process.name: curl": [D2, D3, D4],
    "no.such.field: x": [],
    "not no.such.field: x": [D1, D2, D3, D4],
    'custom.tag: "Rule Type: Higher-Order Rule"': [D1, D3],
    'not custom.tag : "Rule Type: Higher-Order Rule" ': [D2, D4],
    # Range terms are tested on any value, each on its own.
    "destination.port >= 1024": [D1],
    "destination.port < 100": [D1],
    "destination.port >= 1024 and destination.port < 100": [D1],
    "destination.port: 443": [D2],
    "destination.port <= 443": [D1, D2],
    '@timestamp >= "2024-05-03T11:00:00Z"': [D1, D3],
    "@timestamp > now-1h": [D1, D3],
    "@timestamp < now/d": [D2],
    "@timestamp <= now/d": [D1, D2, D3, D4],
    "@timestamp > now-1d/d": [D1, D3, D4],
    "event.action:exec and not (process.name:curl or process.args:wget)": [D4],
    "EVENT.ACTION: exec": [],
    "event.*: fork": [D2],
}


@pytest.mark.parametrize("kql_text", sorted(SEMANTICS))
def test_semantics(kql_text: str, backend: str) -> None:
    assert matching(kql_text, backend) == sorted(SEMANTICS[kql_text])


def test_kql_combines_with_esql_conditions_and_stats() -> None:
    ds = Dataset.from_documents(DOCS, index=INDEX)
    query = (
        f'FROM {INDEX} | WHERE event.action == "exec" AND NOT KQL("process.name: wget") '
        '| STATS c = COUNT(*) WHERE KQL("process.args: *")'
    )
    plan = compile_query(query, ds)
    assert ref.execute(plan, reference_rows(ds), NOW).rows == [(1,)]
    assert duck.execute(plan, ds, NOW).rows == [(1,)]


# -- the rule corpus ---------------------------------------------------------------------------


def _corpus_kql() -> list[tuple[str, kql.Located]]:
    if not CORPUS.is_dir():
        return []
    from reconwatch.esql.analyze import _kql_text

    found: list[tuple[str, kql.Located]] = []
    for path in sorted(CORPUS.glob("*.toml")):
        with path.open("rb") as f:
            text = tomllib.load(f)["rule"]["query"]
        for cmd in parse(text).commands:
            for expr in ast.command_expressions(cmd):
                for node in ast.walk(expr):
                    if isinstance(node, ast.Call) and node.name == "kql":
                        where = _kql_text(node, text)
                        assert where is not None, path.name
                        found.append((path.name, where))
    return found


CORPUS_KQL = _corpus_kql()


@needs_corpus
def test_corpus_kql_strings_are_all_found() -> None:
    assert len(CORPUS_KQL) == 37
    assert len({name for name, _ in CORPUS_KQL}) == 27


@needs_corpus
@pytest.mark.parametrize(("name", "where"), CORPUS_KQL, ids=[n for n, _ in CORPUS_KQL])
def test_corpus_kql_parses_and_lowers(name: str, where: kql.Located) -> None:
    node = kql.parse(where)
    assert kql.unsupported_parts(node, where) == []
    fields = {
        n.field.text
        for n in kql.walk(node)
        if isinstance(n, kql.FieldMatch | kql.Range | kql.Exists)
    }
    columns = {f: p.Column(f, T.KEYWORD, True) for f in fields}
    expr = kql.lower(node, where, columns, ast.NO_SPAN)
    assert expr.type is T.BOOLEAN
    assert {r for c in _calls(expr) for r in c.args if isinstance(r, p.Ref)}


@needs_corpus
def test_no_corpus_rule_is_refused_for_kql() -> None:
    refused = []
    for path in sorted(CORPUS.glob("*.toml")):
        with path.open("rb") as f:
            text = tomllib.load(f)["rule"]["query"]
        refused += [
            (path.name, e.message)
            for e in support_report(parse(text))
            if "kql" in e.message.lower()
        ]
    assert refused == []
