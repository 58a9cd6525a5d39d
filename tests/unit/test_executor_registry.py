"""The executor registry: every executor runs a plan over the same scan sources and agrees."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconwatch.backends import EXECUTORS, executor
from reconwatch.engine.detect import DatasetBackend
from reconwatch.errors import UsageError
from reconwatch.esql.analyze import compile_query
from reconwatch.ingest import Dataset
from reconwatch.query import run_query

NOW = datetime(2025, 1, 15, 12, tzinfo=UTC)
INDEX = "logs-endpoint.events.network-default"
DOCS: list[dict[str, object]] = [
    {
        "@timestamp": "2025-01-15T11:00:00Z",
        "host": {"name": "a"},
        "destination": {"ip": ["10.0.0.2", "10.0.0.1", "10.0.0.2"], "port": 22},
        "custom": {"score": 1.5},
    },
    {"@timestamp": "2025-01-15T11:00:01Z", "host": {"name": "a"}, "destination": {"port": 80}},
    {"@timestamp": "2025-01-15T11:00:02Z", "host": {"name": "b"}, "destination": {"ip": "::1"}},
]
QUERIES = [
    f"FROM {INDEX} | SORT @timestamp | KEEP @timestamp, host.name, destination.ip, custom.score",
    f"FROM {INDEX} | STATS n = COUNT(*), ips = VALUES(destination.ip) BY host.name | SORT host.name",
    f"FROM {INDEX} METADATA _index | WHERE destination.port > 30 | KEEP _index, destination.port",
]


@pytest.fixture(params=sorted(EXECUTORS))
def backend(request: pytest.FixtureRequest) -> str:
    """Every registered executor, Spark included: the shared `backend` fixture leaves it out."""
    name: str = request.param
    return name


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    return path


@pytest.mark.parametrize("query", QUERIES)
def test_every_executor_answers_alike_over_a_file(backend: str, events: Path, query: str) -> None:
    want = run_query(query, Dataset.from_files([events]), now=NOW)
    got = run_query(query, Dataset.from_files([events]), now=NOW, backend=backend)
    assert got.columns == want.columns
    assert got.rows == want.rows
    assert len(got.rows) > 0


@pytest.mark.parametrize("query", QUERIES[:2])
def test_every_executor_answers_alike_over_documents(backend: str, query: str) -> None:
    dataset = Dataset.from_documents(DOCS, index=INDEX)
    want = executor("duckdb")(compile_query(query, dataset), dataset, NOW)
    got = executor(backend)(compile_query(query, dataset), dataset, NOW)
    assert (got.columns, got.rows) == (want.columns, want.rows)


def test_every_executor_reads_a_pinned_result(backend: str) -> None:
    pinned = DatasetBackend(Dataset.from_documents(DOCS, index=INDEX)).pin(
        f"FROM {INDEX} | KEEP @timestamp, host.name, destination.ip", now=NOW
    )
    try:
        query = "FROM pinned | STATS n = COUNT(*), ips = VALUES(destination.ip) BY host.name"
        plan = compile_query(f"{query} | SORT host.name", pinned)
        got = executor(backend)(plan, pinned, NOW)
    finally:
        pinned.close()
    assert got.rows == [(2, ["10.0.0.1", "10.0.0.2"], "a"), (1, "::1", "b")]


def test_an_unknown_executor_is_a_usage_error_naming_the_known_ones() -> None:
    with pytest.raises(
        UsageError, match="unknown executor \\[flink\\]; known: duckdb, reference, spark"
    ):
        executor("flink")
    assert sorted(EXECUTORS) == ["duckdb", "reference", "spark"]
