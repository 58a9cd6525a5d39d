"""Wide and deep queries: thousands of AND/OR terms and expressions nested up to the depth limit
run on every stage (parser, renderer, analyser, the three executors, rules check and detect);
deeper ones are refused with the limit and a position, never a RecursionError."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import run_cli
from reconwatch.backends import duckdb as duck
from reconwatch.backends import reference as ref
from reconwatch.backends.stream.executor import StreamExecutor
from reconwatch.errors import QuerySyntaxError
from reconwatch.esql.analyze import compile_query
from reconwatch.esql.parser import MAX_EXPRESSION_DEPTH, parse
from reconwatch.esql.render import render
from reconwatch.ingest import Dataset
from reconwatch.plan.catalog import StaticCatalog
from reconwatch.rules.builtin import builtin_text

NOW = datetime(2025, 7, 16, 10, tzinfo=UTC)
DEEP = MAX_EXPRESSION_DEPTH - 2  # room for the EVAL's own levels

ROW_QUERIES = {
    "and-500": (
        "ROW a = 5 | WHERE " + " AND ".join(f"a > {-n}" for n in range(500)) + " | KEEP a",
        [(5,)],
    ),
    "or-3000": (
        "ROW a = 5 | WHERE " + " OR ".join(f"a == {n + 10}" for n in range(3000)) + " OR a == 5",
        [(5,)],
    ),
    "nested-calls": ("ROW a = -3 | EVAL b = " + "abs(" * DEEP + "a" + ")" * DEEP, [(-3, 3)]),
    "long-sum": ("ROW a = 1 | EVAL b = a" + " + a" * DEEP, [(1, DEEP + 1)]),
    "not-chain": ("ROW a = true | EVAL b = " + "NOT " * DEEP + "a", [(True, DEEP % 2 == 0)]),
    "kql-or-3000": (
        'ROW a = "k5" | WHERE KQL("""'
        + " or ".join(f"a: k{n + 10}" for n in range(3000))
        + ' or a: k5""")',
        [("k5",)],
    ),
}


@pytest.mark.parametrize("name", sorted(ROW_QUERIES))
def test_wide_and_deep_row_queries_run_on_both_executors(name: str) -> None:
    text, rows = ROW_QUERIES[name]
    query = parse(text)
    assert parse(render(query)) == query
    plan = compile_query(text, StaticCatalog({}))
    assert ref.execute(plan, [], NOW).rows == rows
    assert duck.execute(plan, None, NOW).rows == rows


@pytest.mark.parametrize(
    "text",
    [
        "ROW a = 1 | EVAL b = " + " + ".join(["1"] * 250),
        "ROW a = 1 | EVAL b = " + "(" * 5000 + "a" + ")" * 5000,
        "ROW a = 1 | EVAL b = " + "abs(" * 3000 + "a" + ")" * 3000,
        "ROW a = 1 | WHERE " + " AND ".join(["(a == 1 OR a == 2"] * 200) + ")" * 200,
        'ROW a = 1 | WHERE KQL("""' + "(" * 3000 + "a: 1" + ")" * 3000 + '""")',
        'ROW a = 1 | WHERE KQL("""' + "not " * 3000 + "a: 1" + '""")',
    ],
    ids=["sum-250", "parens-5000", "calls-3000", "nested-chains", "kql-parens", "kql-not"],
)
def test_too_deep_is_a_positioned_syntax_error(text: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        compile_query(text, StaticCatalog({}))
    assert "nested deeper than the limit" in info.value.message
    assert info.value.span is not None and info.value.span.line == 1


T0 = datetime(2025, 7, 16, 9, 30, tzinfo=UTC)


def _events() -> list[dict[str, object]]:
    return [
        {
            "@timestamp": (T0 + timedelta(seconds=n)).isoformat().replace("+00:00", "Z"),
            "host": {"name": f"h{n % 3}"},
            "destination": {"port": n},
        }
        for n in range(30)
    ]


def test_stream_executor_runs_a_3000_term_or() -> None:
    ors = " OR ".join(f"destination.port == {n + 1000}" for n in range(3000))
    text = (
        "FROM logs-* | WHERE @timestamp > now() - 1 hour AND "
        f"({ors} OR destination.port < 10) | STATS n = count() BY host.name | SORT host.name"
    )
    docs = _events()
    plan = compile_query(text, Dataset.from_documents(docs))
    stream = StreamExecutor(plan)
    stream.push_lines([json.dumps(d) for d in docs])
    assert sorted(stream.snapshot().rows) == [(3, "h1"), (3, "h2"), (4, "h0")]
    batch = duck.execute(plan, Dataset.from_documents(docs), NOW)
    assert sorted(batch.rows) == [(3, "h1"), (3, "h2"), (4, "h0")]


def _rule_with(tmp_path: Path, condition: str) -> Path:
    text = builtin_text("port-scanning")
    marker = 'process.executable like "/snap/*" or'
    assert marker in text
    path = tmp_path / "wide.toml"
    path.write_text(text.replace(marker, marker + "\n" + condition + " or"))
    return path


def test_rules_check_and_detect_a_rule_with_3000_or_terms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ors = " or\n".join(f'      process.executable like "/opt/x{n}/*"' for n in range(3000))
    rule = _rule_with(tmp_path, ors)
    code, out, err = run_cli(["rules", "check", str(rule)], capsys)
    assert code == 0, out + err
    assert "1 runnable" in out
    code, out, err = run_cli(["detect", "--demo", "-r", str(rule), "-f", "ndjson"], capsys)
    assert code == 0, err
    assert "Traceback" not in err and "1 alert(s)" in err


def test_rules_check_refuses_a_too_deep_rule_with_its_position(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rule = _rule_with(tmp_path, "      destination.port == 1" + " + 1" * 300)
    code, out, err = run_cli(["rules", "check", str(rule)], capsys)
    assert code == 2
    assert "rule.query: line 20:867 (file line 116" in out
    assert "expression nested deeper than the limit of 100 levels" in out
    assert "Traceback" not in out + err
    code, out, err = run_cli(["detect", "--demo", "-r", str(rule)], capsys)
    assert code == 2
    assert ":867: expression nested deeper than the limit of 100 levels" in err
    assert "Traceback" not in out + err


def test_or_ed_equalities_of_one_field_become_one_in_list() -> None:
    """As Elasticsearch's optimizer does: `port == 1 OR port == 2 ...` (integer constants, a long
    field) is one IN over the field, so 3,000 values are one list, not a tree of comparisons
    DuckDB binds slowly; rows are unchanged on both executors and the other disjunct stays."""
    from reconwatch.plan import nodes as p

    ors = " OR ".join(f"destination.port == {n + 15}" for n in range(3000))
    text = f"FROM logs-* | WHERE {ors} OR destination.port < 10 | STATS n = count() BY host.name"
    docs = _events()
    source = Dataset.from_documents(docs)
    plan = compile_query(text, source)
    (where,) = [s for s in plan.steps if isinstance(s, p.Filter)]
    calls = [where.condition, *where.condition.args]  # type: ignore[attr-defined]
    lists = [c for c in calls if isinstance(c, p.Call) and c.fn == "in"]
    assert [len(c.args) for c in lists] == [3001]
    assert all(isinstance(a, p.Const) and a.type.value == "long" for a in lists[0].args[1:])
    kept = [n for n in range(30) if n < 10 or n >= 15]  # the ports _events() holds that match
    expected = sorted((sum(1 for n in kept if n % 3 == h), f"h{h}") for h in range(3))
    assert sorted(ref.execute_scan(plan, source, NOW).rows) == expected
    assert sorted(duck.execute(plan, source, NOW).rows) == expected
