"""INLINE STATS on both executors against hand-computed results, and its refusal by the stream."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SHARED
from reconwatch.backends import duckdb as duck
from reconwatch.backends import executor
from reconwatch.backends import reference as ref
from reconwatch.backends.stream.split import split_plan
from reconwatch.errors import QuerySemanticError, UnsupportedFeatureError
from reconwatch.esql.analyze import compile_query
from reconwatch.ingest import Dataset
from reconwatch.plan import nodes as p
from reconwatch.plan import values as v
from reconwatch.plan.catalog import Result, StaticCatalog
from reconwatch.plan.documents import convert_leaf, flatten
from reconwatch.types import DataType as T

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
MV_FAILURE = "single-value function encountered multi-value"
INDEX = "logs-endpoint.events.network-default"

# Four events: host "a" twice (one with two destination IPs), host "b", and one without a host.
DOCS: list[dict[str, object]] = [
    {
        "@timestamp": "2025-01-15T11:00:00Z",
        "host": {"name": "a", "id": "h1"},
        "destination": {"port": 22, "ip": ["10.0.0.1", "10.0.0.2"]},
    },
    {
        "@timestamp": "2025-01-15T11:00:01Z",
        "host": {"name": "a", "id": "h2"},
        "destination": {"port": 80, "ip": "10.0.0.1"},
    },
    {"@timestamp": "2025-01-15T11:00:02Z", "host": {"name": "b"}, "destination": {"port": 443}},
    {"@timestamp": "2025-01-15T11:00:03Z", "destination": {"port": 8080, "ip": "10.0.0.3"}},
]
# Every query starts here, so rows come in document order and only these columns exist.
HEAD = f"FROM {INDEX} | SORT @timestamp | KEEP host.name, host.id, destination.port, destination.ip"


def reference_rows() -> list[dict[str, object]]:
    """DOCS as flattened rows (multivalues already in doc-values order)."""
    out: list[dict[str, object]] = []
    for doc in DOCS:
        row: dict[str, object] = {"@timestamp": datetime.fromisoformat(str(doc["@timestamp"]))}
        for parent in ("host", "destination"):
            fields = doc.get(parent, {})
            assert isinstance(fields, dict)
            row.update((f"{parent}.{key}", value) for key, value in fields.items())
        out.append(row)
    return out


def run(backend: str, query: str) -> Result:
    dataset = Dataset.from_documents(DOCS, index=INDEX)
    plan = compile_query(query, dataset)
    if backend == "reference":
        return ref.execute(plan, reference_rows(), NOW)
    return executor(backend)(plan, dataset, NOW)


def names(result: Result) -> list[str]:
    return [c.name for c in result.columns]


# query tail -> (output column names, rows), computed by hand from DOCS.
CASES: dict[str, tuple[str, list[str], list[tuple[object, ...]]]] = {
    # The BY column moves to the end; a null key is a group of its own.
    "by_field": (
        "| INLINE STATS c = COUNT(*), p = MAX(destination.port), d = COUNT_DISTINCT(host.id) BY host.name",
        ["host.id", "destination.port", "destination.ip", "c", "p", "d", "host.name"],
        [
            ("h1", 22, ["10.0.0.1", "10.0.0.2"], 2, 80, 2, "a"),
            ("h2", 80, "10.0.0.1", 2, 80, 2, "a"),
            (None, 443, None, 1, 443, 0, "b"),
            (None, 8080, "10.0.0.3", 1, 8080, 0, None),
        ],
    ),
    # Without BY every row gets the global aggregate, appended after the input columns.
    "global_with_filter": (
        "| INLINE STATS s = SUM(destination.port) WHERE destination.port > 50, n = COUNT(host.id)",
        ["host.name", "host.id", "destination.port", "destination.ip", "s", "n"],
        [
            ("a", "h1", 22, ["10.0.0.1", "10.0.0.2"], 8603, 2),
            ("a", "h2", 80, "10.0.0.1", 8603, 2),
            ("b", None, 443, None, 8603, 2),
            (None, None, 8080, "10.0.0.3", 8603, 2),
        ],
    ),
    # A multivalued key: the row joins the group of each value (10.0.0.1: ports 22 and 80;
    # 10.0.0.2: port 22) and gets their results one after the other, the BY column its own value.
    # Expressions over aggregates are computed per group first.
    "multivalued_key": (
        (
            "| INLINE STATS c = COUNT(*), v = VALUES(destination.port), "
            "m = ROUND(AVG(destination.port), 1) BY destination.ip | KEEP c, v, m, destination.ip"
        ),
        ["c", "v", "m", "destination.ip"],
        [
            ([2, 1], [22, 80, 22], [51.0, 22.0], ["10.0.0.1", "10.0.0.2"]),
            (2, [22, 80], 51.0, "10.0.0.1"),
            (1, 443, 443.0, None),
            (1, 8080, 8080.0, "10.0.0.3"),
        ],
    ),
    # Two keys, one multivalued: the groups are combinations; equal results stay repeated.
    "two_keys": (
        "| INLINE STATS c = COUNT(*) BY host.name, destination.ip | KEEP c",
        ["c"],
        [([2, 1],), (2,), (1,), (1,)],
    ),
    # A grouping expression named like an input column replaces it, with the row's value.
    "grouping_expression_overrides": (
        "| INLINE STATS c = COUNT(*) BY host.name = TO_UPPER(host.name) | KEEP c, host.name",
        ["c", "host.name"],
        [(2, "A"), (2, "A"), (1, "B"), (1, None)],
    ),
    # An aggregate named like an input column replaces it and moves after the kept columns.
    "aggregate_overrides_column": (
        "| INLINE STATS destination.port = MIN(destination.port) BY host.name",
        ["host.id", "destination.ip", "destination.port", "host.name"],
        [
            ("h1", ["10.0.0.1", "10.0.0.2"], 22, "a"),
            ("h2", "10.0.0.1", 22, "a"),
            (None, None, 443, "b"),
            (None, "10.0.0.3", 8080, None),
        ],
    ),
    # The rule shape: prevalence per destination, then a threshold, then STATS over the rows.
    "then_where_and_stats": (
        (
            "| INLINE STATS ids = COUNT_DISTINCT(host.id) BY host.name "
            "| WHERE ids < 2 | STATS n = COUNT(*), p = MAX(destination.port)"
        ),
        ["n", "p"],
        [(2, 8080)],
    ),
    # A grouping that copies another is one key, and the copy keeps the row's value too.
    "copied_grouping": (
        "| EVAL ip2 = destination.ip | INLINE STATS c = COUNT(*) BY destination.ip, ip2 | KEEP c, ip2",
        ["c", "ip2"],
        [([2, 1], ["10.0.0.1", "10.0.0.2"]), (2, "10.0.0.1"), (1, None), (1, "10.0.0.3")],
    ),
    # Collect values over every row, then test each row against them (the GenAI-descendant rule).
    "values_then_intersection": (
        (
            '| INLINE STATS ips = VALUES(destination.ip) WHERE host.name == "a" '
            "| EVAL hit = MV_INTERSECTION(ips, destination.ip) | KEEP host.name, hit"
        ),
        ["host.name", "hit"],
        [("a", ["10.0.0.1", "10.0.0.2"]), ("a", "10.0.0.1"), ("b", None), (None, None)],
    ),
    # Two INLINE STATS in a row; the second groups by the first's result.
    "twice": (
        "| INLINE STATS c = COUNT(*) BY host.name | INLINE STATS k = COUNT(*) BY c | KEEP k, c",
        ["k", "c"],
        [(2, 2), (2, 2), (2, 1), (2, 1)],
    ),
    "no_rows": (
        "| WHERE destination.port > 10000 | INLINE STATS c = COUNT(*)",
        ["host.name", "host.id", "destination.port", "destination.ip", "c"],
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_inline_stats_rows(backend: str, name: str) -> None:
    tail, columns, rows = CASES[name]
    result = run(backend, f"{HEAD} {tail}")
    assert names(result) == columns
    assert result.rows == rows
    assert result.warnings == []


def test_row_order_is_kept_without_sort(backend: str) -> None:
    query = "ROW x = [3, 1, 2, 1] | MV_EXPAND x | INLINE STATS c = COUNT(*) BY x"
    assert run(backend, query).rows == [(1, 3), (2, 1), (1, 2), (2, 1)]


def test_multivalued_key_in_a_row_and_a_grouping_over_it(backend: str) -> None:
    # Each distinct value is a group: the row is alone in both, so the results repeat, and the
    # BY column keeps the row's own value.
    query = "ROW a = 1, b = [3, 2, 3] | INLINE STATS c = MAX(a), n = COUNT(*) BY b"
    result = run(backend, query)
    assert names(result) == ["a", "c", "n", "b"]
    assert result.rows == [(1, [1, 1], [1, 1], [3, 2, 3])]


def test_false_filter_gives_null_and_zero_count(backend: str) -> None:
    query = "ROW x = null, a = 1, b = [2, 3] | INLINE STATS c = MAX(a) WHERE x, n = COUNT(a) WHERE x BY b"
    result = run(backend, query)
    # Null results of every group drop out; zero counts stay, one per group.
    assert result.rows == [(None, 1, None, [0, 0], [2, 3])]


def test_name_collisions_keep_the_rightmost_and_warn(backend: str) -> None:
    query = 'ROW city = "Raleigh" | INLINE STATS city = COUNT(city) BY city'
    result = run(backend, query)
    assert names(result) == ["city"]
    assert result.rows == [("Raleigh",)]
    assert result.warnings == ["Line 1:37: Field 'city' shadowed by field at line 1:59"]


def test_analysis_types_and_multivalue_flags() -> None:
    dataset = Dataset.from_documents(DOCS, index=INDEX)
    plan = compile_query(f"{HEAD} | INLINE STATS c = COUNT(*) BY destination.ip", dataset)
    step = next(s for s in plan.steps if isinstance(s, p.InlineAggregate))
    cols = {c.name: c for c in step.columns}
    # A multivalued key may give a row several groups, so every output may be a multivalue.
    assert cols["c"].multivalued and cols["destination.ip"].multivalued
    plan = compile_query(f"{HEAD} | INLINE STATS c = COUNT(*) BY host.name", dataset)
    step = next(s for s in plan.steps if isinstance(s, p.InlineAggregate))
    assert not {c.name: c for c in step.columns}["c"].multivalued
    assert not plan.is_aggregating


def test_aggregate_outside_an_aggregate_position_is_refused() -> None:
    catalog = StaticCatalog({})
    with pytest.raises(QuerySemanticError, match="must appear in the STATS BY clause"):
        compile_query("ROW a = 1, b = 2 | INLINE STATS c = MAX(a) + b", catalog)


def test_stream_refuses_inline_stats_by_name() -> None:
    dataset = Dataset.from_documents(DOCS, index=INDEX)
    plan = compile_query(
        f"FROM {INDEX} | INLINE STATS c = COUNT(*) BY host.name | WHERE c > 1", dataset
    )
    with pytest.raises(UnsupportedFeatureError, match="INLINE STATS"):
        split_plan(plan)


# ---------------------------------------------------------------------------------------------
# Upstream rules that use INLINE STATS, unmodified, on small hand-made alert sets.

CORPUS = SHARED / "rules" / "esql-corpus"


def corpus_query(name: str) -> str:
    path = CORPUS / f"{name}.toml"
    if not path.is_file():
        pytest.skip(f"shared ES|QL rule corpus not found at {CORPUS}")
    return str(tomllib.loads(path.read_text())["rule"]["query"])


def run_docs(backend: str, query: str, docs: list[dict[str, object]], index: str) -> Result:
    dataset = Dataset.from_documents(docs, index=index)
    plan = compile_query(query, dataset)
    if backend == "reference":
        rows = [{**flat_row(doc), "_index": index, "_id": f"d{i}"} for i, doc in enumerate(docs)]
        return ref.execute(plan, rows, NOW)
    return executor(backend)(plan, dataset, NOW)


def flat_row(doc: dict[str, object], prefix: str = "") -> dict[str, object]:
    """A nested document as dotted keys (lists are multivalues, left in doc-values order)."""
    row: dict[str, object] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            row.update(flat_row(value, f"{prefix}{key}."))
        else:
            row[f"{prefix}{key}"] = value
    return row


def behavior_alert(host: str, rule: str) -> dict[str, object]:
    return {
        "@timestamp": "2025-01-15T11:00:00Z",
        "data_stream": {"dataset": "endpoint.alerts"},
        "event": {"code": "behavior"},
        "host": {"id": host},
        "rule": {"name": rule},
        "process": {"executable": f"/usr/bin/{rule}"},
        # Fields outside ECS that the rule reads are mapped only when some document has them.
        "dll": {"path": "/lib/x.so", "hash": {"sha256": "ab"}},
    }


def test_rule_same_host_prevalence(backend: str) -> None:
    query = corpus_query(
        "rules__cross-platform__multiple_elastic_defend_behavior_rules_same_host_prevalence"
    )
    # r1 and r2 fire on h1 only, r3 on h2 only, r4 on both hosts (so it is ignored).
    docs = [
        behavior_alert("h1", "r1"),
        behavior_alert("h1", "r2"),
        behavior_alert("h1", "r4"),
        behavior_alert("h2", "r3"),
        behavior_alert("h2", "r4"),
    ]
    result = run_docs(backend, query, docs, "logs-endpoint.alerts-default")
    row = dict(zip(names(result), result.rows[0], strict=True))
    assert len(result.rows) == 1
    assert row["host.id"] == "h1"
    assert row["Esql.rule_name_count_distinct"] == 2
    assert row["Esql.rule_name_values"] == ["r1", "r2"]


def process_event(
    ancestry: list[str], parent: str, entity: str, **extra: object
) -> dict[str, object]:
    doc: dict[str, object] = {
        "@timestamp": "2025-01-15T11:00:00Z",
        "data_stream": {"dataset": "endpoint.events.process"},
        "process": {
            "Ext": {"ancestry": ancestry},
            "parent": {"name": parent, "entity_id": entity},
        },
    }
    doc.update(extra)
    return doc


def test_rule_genai_utility_descendant(backend: str) -> None:
    query = corpus_query(
        "rules__cross-platform__initial_access_elastic_defend_alert_genai_utility_descendant"
    )
    alert = {"dataset": "endpoint.alerts"}
    docs = [
        # A GenAI tool (entity E1) spawns something: E1 joins the global list.
        process_event(["P0"], "claude", "E1"),
        # Alerts: one descends from E1, one does not, one is excluded by its rule name.
        process_event(["E1", "P9"], "bash", "P9", data_stream=alert, rule={"name": "Bad"}),
        process_event(["P7", "P8"], "bash", "P8", data_stream=alert, rule={"name": "Bad"}),
        process_event(
            ["E1"], "bash", "P5", data_stream=alert, rule={"name": "Persistence via GenAI Tool"}
        ),
    ]
    result = run_docs(backend, query, docs, "logs-endpoint.alerts-default")
    cols = names(result)
    assert len(result.rows) == 1
    row = dict(zip(cols, result.rows[0], strict=True))
    assert row["Esql.genai_ancestor_ids"] == "E1"
    assert row["all_genai_entity_ids"] == "E1"
    assert row["process.parent.entity_id"] == "P9"


# ---------------------------------------------------------------------------------------------
# Differential: random documents and INLINE STATS queries, DuckDB against the reference.

AGGS = (
    "COUNT(*)",
    "COUNT(destination.port)",
    "COUNT_DISTINCT(destination.ip)",
    "VALUES(host.name)",
    "MAX(destination.port)",
    "MIN(destination.ip)",
    "SUM(destination.port)",
    "ROUND(AVG(destination.port), 2)",
    "COUNT(*) + MAX(destination.port)",
)
FILTERS = ("", " WHERE destination.port > 100", ' WHERE host.name == "a"')
KEYS = ("host.name", "destination.ip", "destination.port", "k = TO_UPPER(host.name)")
AFTER = ("", " | WHERE a0 IS NOT NULL", " | STATS n = COUNT(*) BY a0 | SORT a0 | LIMIT 50")

_maybe = st.none() | st.just("absent")
_ips = st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", "192.168.1.9"])
_ports = st.sampled_from([22, 80, 443, 8080])


def _field(values: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return _maybe | values | st.lists(values, min_size=2, max_size=3)


_docs = st.lists(
    st.fixed_dictionaries(
        {
            "host.name": _maybe | st.sampled_from(["a", "b", "A"]),
            "destination.ip": _field(_ips),
            "destination.port": _field(_ports),
        }
    ),
    max_size=8,
)
_queries = st.tuples(
    st.lists(st.tuples(st.sampled_from(AGGS), st.sampled_from(FILTERS)), min_size=1, max_size=3),
    st.lists(st.sampled_from(KEYS), max_size=2, unique=True),
    st.sampled_from(AFTER),
)


def _documents(drawn: list[dict[str, object]]) -> list[dict[str, object]]:
    docs: list[dict[str, object]] = []
    for i, fields in enumerate(drawn):
        doc: dict[str, object] = {"@timestamp": f"2025-01-15T11:00:{i:02d}Z"}
        doc.update((k, v) for k, v in fields.items() if v != "absent")
        docs.append(doc)
    # Every field mapped even when no drawn document has it.
    docs.append(
        {
            "@timestamp": "2025-01-15T10:00:00Z",
            "host.name": "z",
            "destination.ip": "::1",
            "destination.port": 1,
        }
    )
    return docs


def _doc_values(doc: dict[str, object], dataset: Dataset) -> dict[str, object]:
    """A document as Elasticsearch reads it: typed leaves, multivalues sorted (keyword and ip
    values de-duplicated)."""
    row: dict[str, object] = {}
    for name, leaves in flatten(doc).items():
        col = dataset.column(name)
        assert col is not None
        items = [convert_leaf(leaf, col.type) for leaf in leaves]
        if col.type in (T.KEYWORD, T.IP):
            items = list(dict.fromkeys(items))
        items.sort(key=lambda x, t=col.type: v.order_key(x, t))
        row[name] = v.from_list(items)
    return row


def _norm(value: object) -> object:
    if isinstance(value, list):
        return [_norm(x) for x in value]
    return round(value, 6) if isinstance(value, float) else value


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=_docs, parts=_queries)
def test_duckdb_equals_reference(
    drawn: list[dict[str, object]], parts: tuple[list[tuple[str, str]], list[str], str]
) -> None:
    aggs, keys, after = parts
    fields = ", ".join(f"a{i} = {agg}{filt}" for i, (agg, filt) in enumerate(aggs))
    by = f" BY {', '.join(keys)}" if keys else ""
    query = (
        f"FROM {INDEX} | SORT @timestamp | KEEP host.name, destination.ip, destination.port "
        f"| INLINE STATS {fields}{by}{after}"
    )
    docs = _documents(drawn)
    dataset = Dataset.from_documents(docs, index=INDEX)
    plan = compile_query(query, dataset)
    expected = ref.execute(plan, [_doc_values(d, dataset) for d in docs], NOW)
    got = duck.execute(plan, dataset, NOW)
    assert names(got) == names(expected)
    assert [_norm(list(r)) for r in got.rows] == [_norm(list(r)) for r in expected.rows], query
    assert sorted(got.warnings) == sorted(expected.warnings), query


@pytest.mark.parametrize("command", ["STATS", "INLINE STATS"])
def test_values_skips_nulls(backend: str, command: str) -> None:
    # DuckDB's list() keeps a NULL as an element: VALUES must not, nor be an empty list.
    query = (
        'ROW y = [1, 2, 3] | MV_EXPAND y | EVAL x = CASE(y == 1, null, "a"), z = null::keyword '
        f"| {command} v = VALUES(x), w = VALUES(z) | EVAL c = MV_COUNT(v), n = w IS NULL | KEEP c, n"
    )
    rows = run(backend, query).rows
    assert set(rows) == {(1, True)}


def test_unread_aggregate_is_not_evaluated(backend: str) -> None:
    # As Elasticsearch prunes it: b's filter fails on the multivalue only when b is read.
    query = "ROW p = [22, 443] | INLINE STATS a = COUNT(*), b = COUNT(*) WHERE p > 100"
    unread = run(backend, f"{query} | KEEP a")
    assert unread.rows == [(1,)] and unread.warnings == []
    read = run(backend, f"{query} | KEEP b")
    assert read.rows == [(0,)]
    failed = "evaluation of [p > 100] failed, treating result as null."
    assert read.warnings == [
        f"Line 1:67: {failed} Only first 20 failures recorded.",
        f"Line 1:67: java.lang.IllegalArgumentException: {MV_FAILURE}",
    ]
