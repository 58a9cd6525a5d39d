"""The analyser: names, positions, suggestions, types, output order, STATS lowering, rule plan shapes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, SHARED
from reconwatch.errors import QuerySemanticError, UnsupportedFeatureError
from reconwatch.esql import ast
from reconwatch.esql.analyze import analyze, compile_query, support_report
from reconwatch.esql.parser import parse
from reconwatch.plan import nodes as p
from reconwatch.plan.catalog import StaticCatalog
from reconwatch.types import DataType as T

BUILTIN_RULES = ROOT / "src" / "reconwatch" / "data" / "rules"

FIELDS = {
    "@timestamp": T.DATETIME,
    "host.os.type": T.KEYWORD,
    "host.name": T.KEYWORD,
    "event.type": T.KEYWORD,
    "event.action": T.KEYWORD,
    "process.executable": T.KEYWORD,
    "process.name": T.KEYWORD,
    "destination.ip": T.IP,
    "source.ip": T.IP,
    "destination.port": T.LONG,
    "agent.id": T.KEYWORD,
    "network.direction": T.KEYWORD,
    "data_stream.dataset": T.KEYWORD,
    "data_stream.namespace": T.KEYWORD,
    "emp_no": T.INTEGER,
    "salary": T.INTEGER,
    "last_name": T.KEYWORD,
    "first_name": T.KEYWORD,
    "gender": T.KEYWORD,
    "languages": T.INTEGER,
    "height": T.DOUBLE,
}
MULTIVALUED = {"event.type", "event.action"}
CATALOG = StaticCatalog({n: p.Column(n, t, n in MULTIVALUED) for n, t in FIELDS.items()})

SEED = """from logs-endpoint.events.network-*
| keep @timestamp, host.os.type, event.type, event.action, process.executable, destination.ip, agent.id, host.name
| where @timestamp > now() - 1 hours and host.os.type == "linux" and event.type == "start" and event.action == "connection_attempted"
| stats Esql.event_count = count(), Esql.destination_ip_count_distinct = count_distinct(destination.ip), Esql.agent_id_count_distinct = count_distinct(agent.id), Esql.host_name_values = values(host.name), Esql.agent_id_values = values(agent.id) by process.executable
| where Esql.agent_id_count_distinct == 1 and Esql.destination_ip_count_distinct > 250
| sort Esql.event_count asc
| limit 100"""


def plan_of(text: str) -> p.Plan:
    return compile_query(text, CATALOG)


def names(text: str) -> list[str]:
    return [c.name for c in plan_of(text).columns]


def semantic_error(text: str) -> QuerySemanticError:
    with pytest.raises(QuerySemanticError) as info:
        plan_of(text)
    return info.value


# ---------------------------------------------------------------------------------------------
# Names and positions


def test_unknown_column_has_position_and_suggestion() -> None:
    err = semantic_error("from x | keep @timestamp, destinaton.ip")
    assert str(err) == "line 1:27: Unknown column [destinaton.ip], did you mean [destination.ip]?"
    assert err.caret().splitlines()[1].startswith(" " * 26 + "^")


def test_unknown_column_in_expression_on_later_line() -> None:
    err = semantic_error('from x\n| where hots.name == "a"')
    assert str(err) == "line 2:9: Unknown column [hots.name], did you mean [host.name]?"


def test_unknown_column_without_close_name_has_no_suggestion() -> None:
    assert str(semantic_error("from x | where zzz > 1")) == "line 1:16: Unknown column [zzz]"


def test_unknown_function_and_unsupported_function() -> None:
    assert str(semantic_error("from x | eval y = foo(1)")) == "line 1:19: Unknown function [foo]"
    with pytest.raises(UnsupportedFeatureError) as info:
        plan_of('from x | where qstr("a: b")')
    assert info.value.feature == "function [qstr]"
    assert str(info.value).startswith("line 1:16: ")


def test_aggregate_outside_stats_is_refused() -> None:
    err = semantic_error("from x | eval c = count(*)")
    assert "aggregate function [count(*)] not allowed outside STATS command" in str(err)


def test_support_report_lists_every_unsupported_feature() -> None:
    query = parse('from x | where qstr("a") | enrich p on host.name | eval d = st_x(y)')
    features = [e.feature for e in support_report(query) if isinstance(e, UnsupportedFeatureError)]
    assert features == ["function [qstr]", "command [ENRICH]", "function [st_x]"]


def test_hand_built_ast_without_spans_is_analysed() -> None:
    query = ast.Query(
        (
            ast.From(("x",)),
            ast.Eval((ast.Assign(None, ast.Call("to_lower", (ast.Field("host.name"),))),)),
        )
    )
    plan = analyze(query, CATALOG)
    assert plan.columns[-1].name == "to_lower(host.name)"


# ---------------------------------------------------------------------------------------------
# Types


def test_function_argument_type_error_wording() -> None:
    err = semantic_error("from x | eval y = to_lower(destination.port)")
    assert str(err) == (
        "line 1:19: first argument of [to_lower(destination.port)] must be [keyword or text], "
        "found value [destination.port] type [long]"
    )


# Elasticsearch's type tables: these positions, lengths and counts are `integer` only, so a
# long there (destination.port, a COUNT, TO_LONG(...)) is a type error at analysis, as there.
INT_ONLY_ARGUMENTS = [
    ("substring(k, n)", "second", "n"),
    ("substring(k, 1, n)", "third", "n"),
    ("left(k, n)", "second", "n"),
    ("right(k, n)", "second", "n"),
    ('locate(k, "a", n)', "third", "n"),
    ("repeat(k, n)", "second", "n"),
    ("space(n)", "first", "n"),
    ("ip_prefix(ip, n, 64)", "second", "n"),
    ("mv_slice(k, 0, n)", "third", "n"),
    ("substring(k, 3000000000)", "second", "3000000000"),
]


@pytest.mark.parametrize(("call", "ordinal", "arg"), INT_ONLY_ARGUMENTS)
def test_int_only_arguments_refuse_a_long(call: str, ordinal: str, arg: str) -> None:
    query = f'row k = "abc", n = to_long(1), ip = to_ip("1.2.3.4") | eval y = {call}'
    err = semantic_error(query)
    assert str(err).endswith(
        f"{ordinal} argument of [{call}] must be [integer], found value [{arg}] type [long]"
    )


def test_top_limit_refuses_a_long() -> None:
    err = semantic_error("from x | stats t = top(destination.port, 3000000000)")
    assert "second argument of [top(destination.port, 3000000000)] must be [integer]" in str(err)


def test_round_and_scalb_take_a_long_but_scalb_no_unsigned_long() -> None:
    plan = compile_query(
        "row x = 2.5, n = to_long(1) | eval r = round(x, n), s = scalb(x, n), u = round(x, to_ul(1))",
        StaticCatalog({}),
    )
    assert [c.type for c in plan.columns[-3:]] == [T.DOUBLE, T.DOUBLE, T.DOUBLE]
    err = semantic_error("row x = 2.5 | eval s = scalb(x, to_ul(1))")
    assert str(err).endswith(
        "second argument of [scalb(x, to_ul(1))] must be [whole number except unsigned_long or "
        "counter types], found value [to_ul(1)] type [unsigned_long]"
    )


def test_comparison_type_error_wording() -> None:
    err = semantic_error('from x | where destination.port == "a"')
    assert "is [numeric] so second argument must also be [numeric] but was [keyword]" in str(err)


def test_where_condition_must_be_boolean() -> None:
    err = semantic_error("from x | where destination.port + 1")
    assert "Condition expression needs to be boolean, found [LONG]" in str(err)


def test_string_literals_cast_to_datetime_and_ip() -> None:
    plan = plan_of(
        'from x | where @timestamp > "2024-01-01" and destination.ip == "::ffff:10.0.0.1"'
    )
    cond = plan.steps[0]
    assert isinstance(cond, p.Filter) and isinstance(cond.condition, p.Call)
    left, right = cond.condition.args
    assert isinstance(left, p.Call) and isinstance(right, p.Call)
    assert isinstance(left.args[1], p.Const) and left.args[1].type is T.DATETIME
    assert isinstance(right.args[1], p.Const) and right.args[1].value == "10.0.0.1"


def test_bad_string_cast_is_a_semantic_error() -> None:
    err = semantic_error('from x | where destination.ip == "not an ip"')
    assert "Cannot convert string [not an ip] to [IP]" in str(err)


def test_date_math_types() -> None:
    plan = plan_of("from x | eval t = now() - 1 hour, u = @timestamp + 2 days")
    ev = plan.steps[0]
    assert isinstance(ev, p.Eval)
    assert [e.type for _, e in ev.assignments] == [T.DATETIME, T.DATETIME]
    err = semantic_error("from x | eval t = @timestamp + @timestamp")
    assert "[+] has arguments with incompatible types [datetime] and [datetime]" in str(err)


def test_arity_errors() -> None:
    assert "expects exactly one argument" in str(semantic_error("from x | eval y = to_lower()"))
    assert "expects at least" in str(semantic_error("from x | eval y = cidr_match(source.ip)"))


def test_multivalued_flags_propagate() -> None:
    plan = plan_of(
        'from x | eval a = event.type, b = split(host.name, "."), c = to_upper(host.name) '
        "| mv_expand event.action"
    )
    cols = {c.name: c for c in plan.columns}
    assert cols["a"].multivalued and cols["b"].multivalued and not cols["c"].multivalued
    assert not cols["event.action"].multivalued


# ---------------------------------------------------------------------------------------------
# Output column names and order


def test_keep_order_duplicates_and_wildcards() -> None:
    assert names("from x | keep last_name, emp_no, last_name") == ["emp_no", "last_name"]
    assert names(
        "from x | keep last*name, emp_no, last*name, first_name, last*, gender, last*"
    ) == ["emp_no", "first_name", "gender", "last_name"]
    # A lone * is every column not matched by another pattern, at its own position.
    assert names("from x | keep emp_no, * , salary")[:1] == ["emp_no"]
    assert names("from x | keep emp_no, *, salary")[-1] == "salary"


def test_keep_wildcard_matching_nothing() -> None:
    assert "No matches found for pattern [nope*]" in str(semantic_error("from x | keep nope*"))


def test_bare_from_columns_sorted_and_metadata_last() -> None:
    cols = names("from x metadata _index, _id")
    assert cols[:2] == ["@timestamp", "agent.id"]
    assert cols[-2:] == ["_index", "_id"]


def test_eval_replacing_moves_column_to_end() -> None:
    assert names("from x | keep emp_no, salary, gender | eval emp_no = emp_no + 1") == [
        "salary",
        "gender",
        "emp_no",
    ]


def test_unnamed_expressions_are_named_by_source_text() -> None:
    assert names("from x | stats couNt(*), AVG(salary)  by  languages") == [
        "couNt(*)",
        "AVG(salary)",
        "languages",
    ]
    assert names("from x | keep salary | eval salary   +  1") == ["salary", "salary   +  1"]


def test_stats_name_collisions() -> None:
    assert names("from x | stats x = count(*), x = max(salary)") == ["x"]
    assert names("from x | stats languages = count(*) by languages") == ["languages"]


def test_rename_and_drop() -> None:
    assert names("from x | keep emp_no, salary | rename emp_no as id") == ["id", "salary"]
    assert names("from x | keep emp_no, salary, gender | drop sal*") == ["emp_no", "gender"]
    assert names("from x | keep emp_no, salary | rename emp_no as salary") == ["salary"]


# ---------------------------------------------------------------------------------------------
# Plan shapes


def test_stats_lowering_of_scalar_over_aggregates() -> None:
    plan = plan_of("from x | stats r = round(avg(salary), 1), c = count(*) by gender")
    kinds = [type(s).__name__ for s in plan.steps]
    assert kinds == ["Aggregate", "Eval", "Project", "Limit"]
    agg = plan.steps[0]
    assert isinstance(agg, p.Aggregate)
    assert [a.fn for _, a in agg.aggregates] == ["avg", "count"]
    assert [c.name for c in plan.columns] == ["r", "c", "gender"]


def test_per_aggregate_where_becomes_filter() -> None:
    plan = plan_of("from x | stats c = count(*) where salary > 10, d = count(*)")
    agg = plan.steps[0]
    assert isinstance(agg, p.Aggregate)
    assert agg.aggregates[0][1].filter is not None and agg.aggregates[1][1].filter is None


def test_non_aggregate_in_stats_is_refused() -> None:
    err = semantic_error("from x | stats salary by gender")
    assert "column [salary] must appear in the STATS BY clause" in str(err)
    err = semantic_error("from x | stats m = max(salary) + languages by gender")
    assert "column [languages] must appear in the STATS BY clause" in str(err)


def test_sort_null_defaults_and_limits() -> None:
    plan = plan_of("from x | sort salary desc, emp_no | limit 20000")
    sort = plan.steps[0]
    assert isinstance(sort, p.Sort)
    assert [(k.descending, k.nulls_first) for k in sort.keys] == [(True, True), (False, False)]
    assert isinstance(plan.steps[-1], p.Limit) and plan.steps[-1].count == 10_000
    implicit = plan_of("from x | keep emp_no").steps[-1]
    assert isinstance(implicit, p.Limit) and implicit.count == 1000


def test_seed_rule_plan_shape() -> None:
    plan = plan_of(SEED)
    assert [type(s).__name__ for s in plan.steps] == [
        "Project",
        "Filter",
        "Aggregate",
        "Filter",
        "Sort",
        "Limit",
    ]
    assert [c.name for c in plan.columns] == [
        "Esql.event_count",
        "Esql.destination_ip_count_distinct",
        "Esql.agent_id_count_distinct",
        "Esql.host_name_values",
        "Esql.agent_id_values",
        "process.executable",
    ]
    assert isinstance(plan.source, p.Source)
    assert {c.name for c in plan.source.fields} == {
        "@timestamp",
        "host.os.type",
        "event.type",
        "event.action",
        "process.executable",
        "destination.ip",
        "agent.id",
        "host.name",
    }
    types = {c.name: (c.type, c.multivalued) for c in plan.columns}
    assert types["Esql.event_count"] == (T.LONG, False)
    assert types["Esql.host_name_values"] == (T.KEYWORD, True)


@pytest.mark.parametrize("path", sorted(BUILTIN_RULES.glob("*.toml")), ids=lambda q: q.stem)
def test_builtin_rule_plans(path: Path) -> None:
    query = tomllib.loads(path.read_text())["rule"]["query"]
    plan = plan_of(query)
    cols = [c.name for c in plan.columns]
    assert "process.executable" in cols
    assert any(c.startswith("Esql.") for c in cols)
    if "metadata" in query:
        # METADATA _id, _index, _version: kept, then dropped by STATS, so never loaded.
        assert isinstance(plan.source, p.Source) and plan.source.metadata == ()
        # KEEP after STATS: the ECS fields first, then Esql.* in their STATS order.
        assert cols[:3] == ["agent.id", "host.name", "process.executable"]
        assert cols[cols.index("Esql.event_count") :][:2] == [
            "Esql.event_count",
            cols[cols.index("Esql.event_count") + 1],
        ]


@pytest.mark.parametrize(
    ("query", "loaded"),
    [
        ("FROM logs-* METADATA _id, _index | KEEP _id, host.name", ("_id",)),
        ('FROM logs-* METADATA _id, _index | WHERE _index LIKE "x*" | KEEP host.name', ("_index",)),
        ("FROM logs-* METADATA _id | RENAME _id AS x | KEEP x", ("_id",)),
        ("FROM logs-* METADATA _id, _version | STATS n = COUNT(*) BY _version", ("_version",)),
        ("FROM logs-* METADATA _id, _index | KEEP _id, host.name | DROP _id", ()),
        ("FROM logs-* METADATA _id | STATS n = COUNT(*) BY host.name", ()),
    ],
)
def test_only_metadata_the_query_reads_is_loaded(query: str, loaded: tuple[str, ...]) -> None:
    plan = plan_of(query)
    assert isinstance(plan.source, p.Source) and plan.source.metadata == loaded
    # Still columns of the source either way (an unread one is null, never loaded).
    assert {"_id"} <= {c.name for c in plan.source.columns}


def test_upstream_corpus_rules_analyse_or_refuse_by_name() -> None:
    corpus = SHARED / "rules" / "esql-corpus"
    if not corpus.is_dir():
        pytest.skip(f"shared rule corpus not available at {corpus}")
    refused = analysed = 0
    for path in sorted(corpus.glob("*.toml")):
        query = parse(tomllib.loads(path.read_text())["rule"]["query"])
        problems = support_report(query)
        if problems:
            refused += 1
            assert all(isinstance(e, UnsupportedFeatureError) for e in problems)
            continue
        analysed += 1
    assert refused + analysed == len(list(corpus.glob("*.toml")))
    assert analysed >= 140


def test_stats_shadowing_warnings() -> None:
    plan = plan_of("from x | stats h = avg(height), h = min(height) by languages")
    assert plan.warnings == ("Line 1:16: Field 'h' shadowed by field at line 1:33",)
    plan = plan_of("from x | stats languages = count(*) by languages")
    assert plan.warnings == ("Line 1:16: Field 'languages' shadowed by field at line 1:40",)


def test_grouping_names_inside_aggregates_mean_the_grouping() -> None:
    plan = plan_of("from x | stats m = max(l) where l > 1 by l = languages + 1")
    agg = plan.steps[0]
    assert isinstance(agg, p.Aggregate)
    call = agg.aggregates[0][1]
    assert isinstance(call.args[0], p.Call) and call.args[0].fn == "add"
    assert isinstance(call.filter, p.Call) and isinstance(call.filter.args[0], p.Call)


def test_expressions_over_group_keys_need_no_aggregate() -> None:
    plan = plan_of("from x | stats e = length(f) + 1, count(*) by f = first_name")
    assert [c.name for c in plan.columns] == ["e", "count(*)", "f"]


def test_grouping_by_a_column_and_its_alias_is_one_key() -> None:
    # Elasticsearch resolves zzz to y's attribute: y = [1, 2, 3] expands once (3 groups, not 9).
    plan = plan_of(
        "ROW x = 1, y = [1, 2, 3] | EVAL z = y | RENAME z AS zzz | STATS c = COUNT() BY y, x, zzz"
    )
    agg = next(s for s in plan.steps if isinstance(s, p.Aggregate))
    assert [n for n, _ in agg.groups] == ["y", "x"]
    assert [c.name for c in plan.columns] == ["c", "y", "x", "zzz"]


@pytest.mark.parametrize("between", ["EVAL y = y + 1", "MV_EXPAND y", "EVAL y = 5 | EVAL y = z"])
def test_grouping_copy_identity_ends_when_the_values_change(between: str) -> None:
    plan = plan_of(f"ROW x = 1, y = [1, 2, 3] | EVAL z = y | {between} | STATS c = COUNT() BY y, z")
    agg = next(s for s in plan.steps if isinstance(s, p.Aggregate))
    expected = ["y", "z"] if between != "EVAL y = 5 | EVAL y = z" else ["y"]
    assert [n for n, _ in agg.groups] == expected


def test_aggregate_options_must_be_constants() -> None:
    assert "must be a constant" in str(semantic_error("from x | stats t = top(salary, emp_no)"))
    assert "Invalid order value" in str(semantic_error('from x | stats t = top(salary, 3, "up")'))
    assert "Limit must be greater than 0" in str(
        semantic_error("from x | stats t = top(salary, 0)")
    )


def test_shared_reconnaissance_rules_analyse_against_ecs() -> None:
    rules = SHARED / "rules"
    if not rules.is_dir():
        pytest.skip(f"shared rules not available at {rules}")
    from reconwatch.ecs.schema import ecs_type

    analysed = 0
    for path in sorted(rules.glob("*.toml")):
        rule = tomllib.loads(path.read_text())["rule"]
        if rule.get("language") != "esql":
            continue
        query = parse(rule["query"])
        names = {n.name for cmd in query.commands for n in _fields(cmd)}
        catalog = StaticCatalog(
            {n: p.Column(n, t) for n in names if (t := ecs_type(n)) is not None}
        )
        plan = analyze(query, catalog)
        assert plan.columns, path.name
        analysed += 1
    assert analysed >= 6


def _fields(node: object) -> list[ast.Field]:
    if isinstance(node, ast.Field):
        return [node]
    if isinstance(node, ast.Keep | ast.Drop):
        return [ast.Field(n) for n in node.patterns if "*" not in n]
    if isinstance(node, ast.MvExpand):
        return [ast.Field(node.field)]
    found: list[ast.Field] = []
    for name in getattr(node, "__dataclass_fields__", {}):
        value = getattr(node, name)
        for item in value if isinstance(value, tuple) else (value,):
            for inner in item if isinstance(item, tuple) else (item,):
                found.extend(_fields(inner))
    return found


def test_aggregate_options_fold_integer_arithmetic() -> None:
    # Elasticsearch folds the precision expression before checking that it is a constant.
    plan = plan_of(
        "FROM x | STATS m = COUNT_DISTINCT(salary, 9876 * 3 + (-9876 * 2)), t = TOP(salary, 1 + 1)"
    )
    agg = next(s for s in plan.steps if isinstance(s, p.Aggregate))
    options = [a.args[1] for _, a in agg.aggregates]
    assert options == [p.Const(9876, T.INTEGER), p.Const(2, T.INTEGER)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from i | stats c = count(*) by `host.name`", ["c", "host.name"]),
        ('from i | stats c = count(*) by `host.name` | where host.name == "a"', ["c", "host.name"]),
        (
            "from i | inline stats c = count(*) by `host.name` | keep c, host.name",
            ["c", "host.name"],
        ),
        ("from i | keep `host.name` | eval `host.name`", ["host.name"]),
        # Any other expression is named by its text, quotes included (as Elasticsearch does).
        ("from i | stats count(`destination.port`)", ["count(`destination.port`)"]),
        ("from i | keep salary | eval `salary` + 1", ["salary", "`salary` + 1"]),
    ],
)
def test_a_back_quoted_column_is_named_without_its_quotes(text: str, expected: list[str]) -> None:
    assert names(text) == expected
