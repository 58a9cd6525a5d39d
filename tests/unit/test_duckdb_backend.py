"""DuckDB executor semantics: multivalues, nulls, IPs, LIKE, STATS, SORT, dates, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconwatch.errors import UnsupportedFeatureError
from reconwatch.ingest import Dataset
from reconwatch.query import explain, run_query

NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def q(text: str, docs: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return run_query(text, Dataset.from_documents(docs), now=NOW).rows


def test_multivalue_comparison_is_null_so_row_leaves_where() -> None:
    docs = [{"t": "start"}, {"t": ["start", "end"]}, {"t": ["start"]}, {"t": None}]
    assert q('from logs-* | where t == "start" | stats c = count()', docs) == [(2,)]


def test_three_valued_logic() -> None:
    docs = [{"a": 1}, {"a": None}]
    assert q("from logs-* | where a == 1 or a > 5 | stats c = count()", docs) == [(1,)]
    assert q("from logs-* | where not (a == 1) | stats c = count()", docs) == [(0,)]
    assert q("from logs-* | where a is null | stats c = count()", docs) == [(1,)]


def test_multivalued_by_key_puts_row_in_every_group() -> None:
    docs = [{"k": ["a", "b"], "v": 1}, {"k": "a", "v": 2}, {"v": 3}]
    got = q("from logs-* | stats s = sum(v), c = count(k) by k | sort k", docs)
    assert got == [(3, 3, "a"), (1, 2, "b"), (3, 0, None)]


def test_count_values_vs_rows_and_distinct_values() -> None:
    docs = [{"x": [1, 2]}, {"x": 2}, {}]
    got = q(
        "from logs-* | stats c = count(x), r = count(), d = count_distinct(x), v = values(x)", docs
    )
    assert got == [(3, 3, 2, [1, 2])]


def test_count_distinct_exact_at_forty_thousand() -> None:
    docs = [{"ip": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", "h": "x"} for i in range(40_000)]
    got = q("from logs-* | stats d = count_distinct(ip) by h", docs)
    assert got == [(40_000, "x")]


def test_ip_ordering_and_mapped_equality() -> None:
    docs = [{"destination.ip": ip} for ip in ("fe80::1", "127.0.0.1", "::1", "::ffff:10.0.0.1")]
    got = q("from logs-* | sort destination.ip | keep destination.ip", docs)
    assert [r[0] for r in got] == ["::1", "10.0.0.1", "127.0.0.1", "fe80::1"]
    assert q('from logs-* | where destination.ip == "10.0.0.1" | stats c = count()', docs) == [(1,)]
    got = q(
        'from logs-* | where cidr_match(destination.ip, "127.0.0.0/8", "fe80::/10") | stats c = count()',
        docs,
    )
    assert got == [(2,)]


def test_like_is_whole_string_case_sensitive_with_escapes() -> None:
    docs = [{"p": "/usr/bin/nmap"}, {"p": "/USR/bin/x"}, {"p": "a%b"}, {"p": "C:\\foo"}]
    assert q('from logs-* | where p like "/usr/*" | keep p', docs) == [("/usr/bin/nmap",)]
    assert q('from logs-* | where p like "a%b" | keep p', docs) == [("a%b",)]
    assert q('from logs-* | where p like "C:\\\\\\\\*" | keep p', docs) == [("C:\\foo",)]
    assert q('from logs-* | where p rlike "/usr/bin/n.*" | keep p', docs) == [("/usr/bin/nmap",)]
    assert q('from logs-* | where p == "/usr/bin" | keep p', docs) == []


def test_sort_nulls_and_multivalues() -> None:
    docs = [{"n": [1, 9], "i": "a"}, {"n": 5, "i": "b"}, {"i": "c"}]
    assert [r[0] for r in q("from logs-* | sort n | keep i", docs)] == ["a", "b", "c"]
    assert [r[0] for r in q("from logs-* | sort n desc | keep i", docs)] == ["c", "a", "b"]


def test_date_math_trunc_and_now() -> None:
    docs = [{"@timestamp": "2024-01-01T11:30:00.123Z"}, {"@timestamp": "2023-12-31T10:00:00Z"}]
    got = q(
        "from logs-* | where @timestamp > now() - 1 hour | eval d = date_trunc(1 hour, @timestamp) | keep d",
        docs,
    )
    assert got == [(datetime(2024, 1, 1, 11, tzinfo=UTC),)]
    got = q('from logs-* | eval m = date_diff("minute", @timestamp, now()) | sort m | keep m', docs)
    assert got == [(29,), (26 * 60,)]


def test_mv_functions_and_conversions() -> None:
    docs = [{"x": ["b", "a", "c"], "n": "12", "s": "a,b"}]
    got = q(
        'from logs-* | eval c = mv_count(x), f = mv_first(x), mn = mv_min(x), j = mv_concat(x, "-"),'
        ' sl = mv_slice(x, 1, 2), i = to_integer(n) + 1, sp = split(s, ","), u = to_upper(mv_first(x))'
        " | keep c, f, mn, j, sl, i, sp, u",
        docs,
    )
    assert got == [(3, "a", "a", "a-b-c", ["b", "c"], 13, ["a", "b"], "A")]
    assert q("from logs-* | eval l = length(x) | keep l", docs) == [(None,)]


def test_scalar_functions_and_case_coalesce() -> None:
    docs = [{"a": "Hello", "n": 3.14159}, {"n": 2}]
    got = q(
        'from logs-* | eval c = case(a == "Hello", "yes", "no"), k = coalesce(a, "none"),'
        ' r = round(n, 2), t = concat(a, "!"), st = starts_with(a, "He") | keep c, k, r, t, st',
        docs,
    )
    assert got == [("yes", "Hello", 3.14, "Hello!", True), ("no", "none", 2.0, None, None)]


def test_seed_rule_shape_with_metadata_and_mv_expand() -> None:
    base = {"host.os.type": "linux", "event.type": "start", "event.action": "connection_attempted"}
    docs = [
        {
            **base,
            "process.executable": "/tmp/scan",
            "destination.ip": f"10.0.0.{i}",
            "agent.id": "a",
        }
        for i in range(5)
    ]
    docs.append({**base, "process.executable": "/usr/bin/prometheus", "destination.ip": "10.0.0.1"})
    text = (
        "from logs-endpoint.events.network-* metadata _id, _index | mv_expand event.action"
        ' | where host.os.type == "linux" and event.type == "start"'
        ' and not process.executable in ("/usr/bin/prometheus")'
        " | stats n = count(), d = count_distinct(destination.ip), ids = count_distinct(_id) by process.executable"
    )
    assert q(text, docs) == [(5, 5, 5, "/tmp/scan")]


def test_explain_shows_plan_and_sql() -> None:
    text = explain("from logs-* | where a == 1 | keep a", Dataset.from_documents([{"a": 1}]))
    assert "-- duckdb sql" in text and "WITH s0 AS" in text


def test_unsupported_feature_refused_by_name() -> None:
    with pytest.raises(UnsupportedFeatureError, match="DATE_TRUNC"):
        q("from logs-* | eval d = date_trunc(2 days, @timestamp)", [{"@timestamp": "2024-01-01"}])


def _filter_sql(query: str, ds: Dataset) -> str:
    from reconwatch.backends.duckdb.execute import compile_for
    from reconwatch.esql.analyze import compile_query

    sql = compile_for(compile_query(query, ds), ds, NOW).sql
    return next(line for line in sql.splitlines() if " WHERE " in line and "rw_source" not in line)


def test_a_chain_warning_only_on_constants_is_pushed_into_the_reader() -> None:
    """`now() - 1 hours` can warn (a date out of range) but the same way for every row, and
    DuckDB folds it while planning: the seed rule's WHERE stays a plain filter DuckDB pushes
    into the reader. A chain with an operand that warns row by row is evaluated whole."""
    from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

    docs: list[object] = [{"user": {"name": ["a", "b"]}, "host": {"name": "h"}}]
    ds = Dataset.from_documents(docs)
    assert "coalesce(" not in _filter_sql(load_builtin(DEFAULT_RULE).query, ds)
    row_wise = 'from logs-* | where host.name == "x" and user.name == "a" | keep host.name'
    assert "WHERE coalesce(" in _filter_sql(row_wise, ds)
    # The same warnings either way: a constant's once, even when no row reaches it.
    for query, warns in [
        ('from logs-* | where host.name == "x" and @timestamp > now() - 20000 years', True),
        (row_wise, True),
        ('from logs-* | where host.name == "x" or @timestamp > now() - 1 hour', False),
    ]:
        want = run_query(query, ds, now=NOW, backend="reference")
        got = run_query(query, Dataset.from_documents(docs), now=NOW)
        assert (got.rows, got.warnings) == (want.rows, want.warnings)
        assert bool(got.warnings) == warns
