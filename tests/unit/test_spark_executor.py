"""The Spark executor against the reference interpreter: the same rows in the same order and the
same warnings in the same order, with the input cut into many small partitions so that every
query crosses partitions (and STATS a shuffle)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from test_differential import (
    INDEX,
    MAPPING_DOC,
    NOW,
    POOLS,
    QUERIES,
    REGRESSIONS,
    _row,
    documents,
    queries,
    reference_rows,
)

from reconwatch.backends import reference as ref
from reconwatch.backends.spark import execute as spark_execute
from reconwatch.backends.spark.stages import ROW, RowStage
from reconwatch.errors import QueryError, QueryLimitError
from reconwatch.esql.analyze import compile_query
from reconwatch.ingest import Dataset
from reconwatch.plan import limits


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Three rows per chunk: a dozen documents make four partitions."""
    monkeypatch.setattr(spark_execute, "CHUNK", 3)
    yield


def assert_spark_same(query: str, docs: list[dict[str, object]]) -> None:
    docs = [MAPPING_DOC, *docs]
    ds = Dataset.from_documents(docs, index=INDEX)
    plan = compile_query(query, ds)
    expected = ref.execute(plan, reference_rows(docs, ds), NOW)
    got = spark_execute.execute(plan, ds, NOW)
    context = f"\nquery: {query}\ndocs: {docs}"
    assert [c.name for c in got.columns] == [c.name for c in expected.columns]
    assert [_row(r) for r in got.rows] == [_row(r) for r in expected.rows], f"rows{context}"
    assert got.warnings == expected.warnings, f"warnings{context}"


def _fixed_documents(count: int, seed: int) -> list[dict[str, object]]:
    """Documents from the differential test's value pools, the same on every run."""
    rnd = random.Random(seed)
    docs: list[dict[str, object]] = []
    for _ in range(count):
        doc: dict[str, object] = {"@timestamp": "2025-07-16T11:30:00.000Z"}
        for name, pool in POOLS.items():
            shape = rnd.randrange(5)
            if shape == 0:
                continue
            if shape == 1:
                doc[name] = rnd.sample(pool, k=min(len(pool), rnd.randint(2, 3)))
            else:
                doc[name] = rnd.choice(pool)
        docs.append(doc)
    return docs


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_rule_shaped_queries_agree(name: str) -> None:
    assert_spark_same(QUERIES[name], _fixed_documents(14, seed=len(name)))


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regressions_agree(name: str) -> None:
    query, docs = REGRESSIONS[name]
    assert_spark_same(query, docs)


def test_warnings_keep_one_pass_order_across_partitions() -> None:
    """Failures in later partitions come after earlier ones; a site's first 20 distinct reasons
    are the first 20 of the input, not of whichever partition finished first."""
    docs: list[dict[str, object]] = [
        {"host": {"name": [f"h{i}", f"g{i}"]}, "destination": {"port": i}} for i in range(40)
    ]
    query = (
        'from logs-endpoint.events.network-* | eval up = to_lower(host.name) == "x", '
        "p = destination.port + 9223372036854775807 | stats c = count() by up, p | sort p"
    )
    assert_spark_same(query, docs)


def test_limit_after_filter_warns_only_for_rows_read() -> None:
    """A LIMIT stops a one-pass run early: rows after the last one taken never warn."""
    docs: list[dict[str, object]] = [
        {"destination": {"port": [i, i + 1] if i % 2 else i}} for i in range(30)
    ]
    query = (
        "from logs-endpoint.events.network-* | where destination.port > 3 | "
        "eval q = destination.port + 1 | keep q | limit 4"
    )
    assert_spark_same(query, docs)


@pytest.mark.parametrize(
    "query",
    [
        "from logs-endpoint.events.network-* | keep destination.port | limit 2",
        "row a = 1",
    ],
)
def test_a_stage_reads_its_partition_to_the_end(query: str) -> None:
    """PySpark reuses a Python worker only if the task read its input to the end: a LIMIT that
    stops early, or ROW (which reads none), must still drain it, or every such query pays for a
    new worker (a process start and reconwatch's imports)."""
    docs: list[dict[str, object]] = [{"destination": {"port": i}} for i in range(9)]
    ds = Dataset.from_documents([MAPPING_DOC, *docs], index=INDEX)
    plan = compile_query(query, ds)
    rest = plan.steps[-1:] if query.endswith("limit 2") else ()
    stage = RowStage(plan.source, tuple(plan.steps[: len(plan.steps) - len(rest)]), query, NOW,
                     limit=2 if rest else None)  # fmt: skip
    chunks = iter([[(i, {"destination.port": i})] for i in range(9)])
    out = list(stage.run(chunks))
    assert [r[0] for r in out] == [ROW] * (2 if rest else 1)
    assert next(chunks, None) is None


def test_groups_of_one_expanded_row_come_in_its_values_order() -> None:
    """An MV_EXPAND translated to Spark, then a STATS the interpreter runs (its key is
    multivalued): the expanded rows share their input order, and their groups must still come
    in the order of the values (found by the property test below; Spark's shuffle decided)."""
    assert_spark_same(
        "from logs-endpoint.events.network-* | mv_expand process.args"
        ' | stats a0 = count() where host.os.type == "linux" by host.os.type, process.args',
        [
            {},
            {
                "host": {"os": {"type": ["linux", "linux"]}},
                "process": {"args": ["-sT", "10.0.0.0/24", "-p", "22"]},
            },
        ],
    )


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=queries(), docs=st.lists(documents(), max_size=14))
def test_composed_queries_agree(query: str, docs: list[dict[str, object]]) -> None:
    try:
        compile_query(query, Dataset.from_documents([MAPPING_DOC, *docs], index=INDEX))
    except QueryError:
        reject()
    assert_spark_same(query, docs)


def test_a_query_past_its_time_budget_is_cancelled() -> None:
    docs = _fixed_documents(30, seed=3)
    ds = Dataset.from_documents([MAPPING_DOC, *docs], index=INDEX)
    plan = compile_query(QUERIES["stats-by-two-keys"], ds)
    with limits.limited(limits.QueryLimits(seconds=0.001)), pytest.raises(QueryLimitError):
        spark_execute.execute(plan, ds, NOW)
    assert spark_execute.execute(plan, ds, NOW).rows  # the next query has no budget left over


def test_the_drivers_steps_share_the_querys_budget() -> None:
    """The steps after the workers' STATS run on the driver within what is left of the budget
    (they had none): 10^10 rows made there stop at the budget. The clock moves a second per
    look, so the budget of 30 s is spent on the driver, not in the (real-time) job."""
    import itertools

    docs = _fixed_documents(30, seed=3)
    ds = Dataset.from_documents([MAPPING_DOC, *docs], index=INDEX)
    query = (
        "from logs-endpoint.events.network-* | stats c = count(*) "
        '| eval s = repeat("a,", 100000) | eval v = split(s, ","), w = v '
        "| mv_expand v | mv_expand w | stats n = count(*)"
    )
    plan = compile_query(query, ds)
    clock = itertools.count(0.0, 1.0)
    budget = limits.QueryLimits(seconds=30, clock=lambda: next(clock))
    with limits.limited(budget), pytest.raises(QueryLimitError, match="time budget of 30 s"):
        spark_execute.execute(plan, ds, NOW)
