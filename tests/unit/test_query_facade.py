"""The engine facade: warnings as Elasticsearch's response headers, EXPLAIN limited to the columns used."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconwatch.backends.duckdb.execute import execute
from reconwatch.ingest import Dataset
from reconwatch.query import (
    WARNING_AGENT,
    _unread_catalog_columns,
    _without_columns,
    compile_on,
    explain,
    run_query,
    warning_header,
)

NOW = datetime(2024, 1, 2, tzinfo=UTC)
_FAILED = (
    "Line 1:27: evaluation of [to_ip(x)] failed, treating result as null. "
    "Only first 20 failures recorded."
)
DOCS = [
    {"@timestamp": "2024-01-01T00:00:00Z", "host": {"name": "a"}, "destination": {"port": 22}},
    {"@timestamp": "2024-01-01T00:00:01Z", "host": {"name": "b"}, "destination": {"port": 80}},
    {"@timestamp": "2024-01-01T00:00:02Z", "host": {"name": "b"}, "process": {"name": "x"}},
]


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        (_FAILED, _FAILED),
        # Quotes and backslashes escaped; `%`, control characters and anything past U+00FF
        # percent-encoded as UTF-8; Latin-1 letters kept.
        ('a "b" \\ c', 'a \\"b\\" \\\\ c'),
        ("50% é €\n", "50%25 é %E2%82%AC%0A"),
    ],
)
def test_warning_header_quotes_the_text_as_elasticsearch(text: str, quoted: str) -> None:
    assert warning_header(text) == f'299 {WARNING_AGENT} "{quoted}"'
    assert WARNING_AGENT.startswith("Elasticsearch-") and " " not in WARNING_AGENT


def test_explain_shows_only_the_columns_the_query_uses() -> None:
    ds = Dataset.from_documents(DOCS)
    text = explain("from logs-* | where destination.port > 0 | stats c = count(*) by host.name", ds)
    plan, sql = text.split("-- duckdb sql")
    assert "fields=destination.port:long, host.name:keyword" in plan
    assert "process.name" not in text and "agent.id" not in text
    assert "more column(s) of the catalog" in plan
    assert 'SELECT "destination.port", "host.name" FROM' in sql


def test_explain_keeps_every_column_a_query_returns() -> None:
    ds = Dataset.from_documents(DOCS)
    text = explain("from logs-* | limit 1", ds)
    assert "process.name" in text.split("-- duckdb sql")[1]
    assert "more column(s)" not in text


@pytest.mark.parametrize(
    "query",
    [
        'from logs-* | eval process.name = concat(host.name, "!") | keep process.name',
        "from logs-* | rename host.name as process.name | keep process.name",
        'from logs-* | dissect host.name "%{process.name}" | keep process.name',
        "from logs-* | where process.name is null | stats c = count(*) by host.name",
    ],
)
def test_explained_sql_gives_the_query_result(query: str) -> None:
    """The plan explained (catalog columns no step uses left out) returns what the query returns."""
    ds = Dataset.from_documents(DOCS)
    expected = run_query(query, ds, now=NOW)
    assert "agent.id" not in explain(query, ds, now=NOW)
    plan = compile_on(query, ds)
    pruned = _without_columns(plan, _unread_catalog_columns(plan))
    assert len(pruned.source.columns) < len(plan.source.columns)
    assert execute(pruned, ds, NOW).rows == expected.rows
