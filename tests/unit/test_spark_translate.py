"""Spark SQL translation of the plan: which steps translate (and why not), and the translated
steps' rows and warnings against the reference interpreter on single-valued documents, where
translation applies; Parquet that `reconwatch export` wrote read by Spark's own reader."""

from __future__ import annotations

import json
import logging
import random
from datetime import timedelta
from pathlib import Path

import pytest
from test_differential import INDEX, MAPPING_DOC, NOW, POOLS, QUERIES
from test_spark_executor import assert_spark_same

from reconwatch.backends.spark import session
from reconwatch.backends.spark.translate import decide, describe, hex_key
from reconwatch.esql.analyze import compile_query
from reconwatch.evaluate.pipeline import prune_evals
from reconwatch.ingest import Dataset
from reconwatch.ingest.export import export_parquet
from reconwatch.plan import values as v
from reconwatch.query import explain

# Queries the shipped rules' shapes use, each with the number of leading steps that translate.
TRANSLATED: dict[str, tuple[str, int]] = {
    "seed-window": (
        (
            "from logs-endpoint.events.network-* | keep @timestamp, host.os.type, event.type, "
            "event.action, process.executable, destination.ip, agent.id, host.name | where "
            '@timestamp > now() - 1 hours and host.os.type == "linux" and event.type == "start" '
            "| stats c = count(), d = count_distinct(destination.ip), a = count_distinct(agent.id), "
            "h = values(host.name), i = values(destination.ip), f = min(@timestamp), "
            "l = max(@timestamp), m = max(host.name) by process.executable | sort c asc | limit 100"
        ),
        3,
    ),
    "cidr-in-like": (
        (
            "from logs-endpoint.events.network-* | mv_expand event.action | where "
            'event.action in ("connection_attempted", "disconnect_received", null) and not ('
            'cidr_match(destination.ip, "127.0.0.0/8", "::1", "FE80::/10", "::ffff:10.0.0.0/104") '
            'or process.name like ("py*", "j?va") or process.executable like "/opt/*") '
            "| stats n = count(*), p = count_distinct(destination.port), s = sum(destination.port), "
            "q = values(destination.port) by destination.ip, host.name"
        ),
        3,
    ),
    "case-eval": (
        (
            "from logs-endpoint.events.network-* | eval z = case(event.action == "
            '"connection_attempted", destination.ip, null), y = case(host.name == "h1", 1, 0) '
            "| stats n = count(z), cd = count_distinct(z), sy = sum(y), w = count(*) where "
            "destination.port >= 443 by agent.id"
        ),
        2,
    ),
    "sort-limit": (
        (
            "from logs-endpoint.events.network-* | where destination.port is not null | sort "
            "host.name desc nulls last, destination.port | limit 9 | keep host.name, "
            "destination.port, @timestamp"
        ),
        3,
    ),
    "limit-then-eval": (
        (
            'from logs-endpoint.events.network-* | where user.name != "root" | limit 5 '
            "| eval u = to_upper(user.name)"
        ),
        2,
    ),
    "where-null": (
        (
            'from logs-endpoint.events.network-* | where null or host.name == "h1" | stats '
            "c = count(*), n = count(host.name) where null by agent.id"
        ),
        2,
    ),
    "translated-then-interpreted": (
        (
            'from logs-endpoint.events.network-* | where host.os.type == "linux" | eval '
            "u = to_upper(user.name) | stats c = count() by u, host.name"
        ),
        1,
    ),
}


def _single_valued(count: int, seed: int) -> list[dict[str, object]]:
    """Documents with at most one value per field (some written as one-element lists)."""
    rnd = random.Random(seed)
    docs: list[dict[str, object]] = []
    for _ in range(count):
        when = NOW + timedelta(minutes=rnd.randrange(-90, 5))
        doc: dict[str, object] = {"@timestamp": v.format_datetime(when)}
        for name, pool in POOLS.items():
            shape = rnd.randrange(6)
            if shape == 0:
                continue
            doc[name] = [rnd.choice(pool)] if shape == 1 else rnd.choice(pool)
        docs.append(doc)
    return docs


def _decided(query: str, docs: list[dict[str, object]], lists_single: bool = True) -> int:
    plan = compile_query(query, Dataset.from_documents([MAPPING_DOC, *docs], index=INDEX))
    return decide(plan, prune_evals(plan), NOW, lists_single).count


@pytest.mark.parametrize("name", sorted(TRANSLATED))
def test_translated_queries_agree_with_the_interpreter(name: str) -> None:
    query, steps = TRANSLATED[name]
    docs = _single_valued(40, seed=len(name))
    assert _decided(query, docs) == steps
    assert_spark_same(query, docs)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_rule_shaped_queries_agree_on_single_values(name: str) -> None:
    assert_spark_same(QUERIES[name], _single_valued(30, seed=len(name)))


def test_several_values_in_a_row_send_the_steps_to_the_interpreter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    query = TRANSLATED["seed-window"][0]
    docs = _single_valued(20, seed=1)
    docs[3]["event.type"] = ["start", "end"]  # warns in the WHERE: Spark SQL cannot
    assert _decided(query, docs, lists_single=False) < _decided(query, docs)
    with caplog.at_level(logging.DEBUG, logger="reconwatch.spark"):
        assert_spark_same(query, docs)
    assert "several values" in caplog.text


def test_an_integer_sum_past_the_long_range_is_the_interpreters_null_and_warning() -> None:
    docs: list[dict[str, object]] = [
        {"host": {"name": "h1"}, "custom": {"n": n}}
        for n in (v.LONG_MAX, 5, -10, v.LONG_MAX, v.LONG_MIN)
    ] + [{"host": {"name": "h2"}, "custom": {"n": n}} for n in (v.LONG_MAX, -1, 1)]
    query = "from logs-endpoint.events.network-* | stats s = sum(custom.n) by host.name"
    assert _decided(query, docs) == 1
    assert_spark_same(query, docs)


def test_explain_says_where_each_step_runs(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text('{"@timestamp": "2025-07-16T11:00:00Z", "host": {"name": "h"}}\n')
    ds = Dataset.from_files([path])
    text = explain(
        'from logs-* | where host.name like "h*" | stats c = count(), r = avg(destination.port) '
        "by host.name | sort c",
        ds,
        now=NOW,
        engine="spark",
    )
    spark = text.split("-- spark\n", 1)[1]
    assert "step 1 Filter: Spark SQL" in spark
    assert "step 2 Aggregate: the interpreter" in spark
    assert "aggregate [avg] of type [double] is not translated" in spark
    assert "-- spark" not in explain("from logs-* | limit 1", ds, now=NOW)


def test_rlike_and_unknown_functions_are_not_translated_and_say_why() -> None:
    docs = _single_valued(5, seed=2)
    plan = compile_query(
        'from logs-endpoint.events.network-* | where host.name rlike "h.*"',
        Dataset.from_documents([MAPPING_DOC, *docs], index=INDEX),
    )
    decision = decide(plan, prune_evals(plan), NOW, True)
    assert decision.count == 0
    assert decision.reason is not None and "RLIKE" in decision.reason
    assert any("RLIKE" in line for line in describe(plan, prune_evals(plan), NOW))


@pytest.mark.parametrize(
    "ip",
    [
        "10.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "::",
        "::1",
        "1::",
        "fe80::a",
        "2001:db8::1:0:0:1",
        "1:2:3:4:5:6:7:8",
        "ff00::",
    ],
)
def test_the_hex_key_is_the_sixteen_bytes_elasticsearch_orders_by(ip: str) -> None:
    from pyspark.sql import functions as F

    spark = session.session()
    got = spark.range(1).select(hex_key(F, F.lit(ip)).alias("k")).collect()[0]["k"]
    assert got == v.ip_bytes(ip).hex()


def test_exported_parquet_is_read_by_sparks_own_reader(tmp_path: Path) -> None:
    docs = _single_valued(30, seed=4)
    src = tmp_path / "events.ndjson"
    src.write_text("".join(json.dumps({**d, "data_stream": {"dataset": "x"}}) + "\n" for d in docs))
    export_parquet(Dataset.from_files([src]), tmp_path / "out")
    files = sorted(str(p) for p in (tmp_path / "out").rglob("*.parquet"))
    ds = Dataset.from_files(files)
    col = ds.column("host.name")
    assert col is not None
    frame = ds.spark_frame(session.session(), [col], list(range(len(files))), None)
    assert frame is not None
    names = [r["c0"] for r in frame.orderBy("__ord").collect()]
    assert names == [r.get("host.name") for r in Dataset.from_files([src]).rows(["host.name"], [0])]
    # Parquet another program wrote is read by the registry's reader, as before.
    import duckdb

    other = tmp_path / "other.parquet"
    duckdb.connect().execute(f"COPY (SELECT 'h' AS \"host.name\") TO '{other}' (FORMAT parquet)")
    foreign = Dataset.from_files([str(other)])
    col = foreign.column("host.name")
    assert col is not None
    assert foreign.spark_frame(session.session(), [col], [0], None) is None


def test_an_exports_footers_are_its_catalog(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = _single_valued(30, seed=6)
    docs[2]["event.type"] = ["start", "end"]
    src = tmp_path / "events.ndjson"
    src.write_text("".join(json.dumps(d) + "\n" for d in docs))
    original = Dataset.from_files([src])
    export_parquet(original, tmp_path / "out")
    files = sorted(str(p) for p in (tmp_path / "out").rglob("*.parquet"))
    import reconwatch.ingest.dataset as dataset_module

    def unread(*args: object, **kwargs: object) -> object:
        raise AssertionError("an exported event was read to learn the fields")

    monkeypatch.setattr(dataset_module, "read_events", unread)
    exported = Dataset.from_files(files)
    assert exported.present_fields() == original.present_fields()
    assert exported.report.events == len(docs)
