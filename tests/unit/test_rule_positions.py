"""A rule's query error points into the rule's own query in detect and watch, whatever the run inserts."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconwatch.engine.detect import DatasetBackend, Schedule, detect
from reconwatch.engine.watch import RuleWatch
from reconwatch.errors import QueryError
from reconwatch.ingest import Dataset
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin
from reconwatch.rules.exceptions import load_exceptions

RUN_AT = datetime(2025, 7, 16, 10, tzinfo=UTC)
# The bad name is on line 3, column 25 of the rule's own query.
BAD = (
    "from logs-endpoint.events.network-*\n"
    '| where event.action == "connection_attempted"\n'
    "| stats n = count(*) by no.such.field\n"
    "| where n > 1"
)
DOC = {
    "@timestamp": "2025-07-16T09:59:00Z",
    "event": {"action": "connection_attempted"},
    "host": {"name": "h"},
}


@pytest.fixture
def exceptions(tmp_path: Path) -> Path:
    path = tmp_path / "ex.ndjson"
    item = {
        "entries": [{"field": "host.name", "operator": "included", "type": "match", "value": "x"}]
    }
    path.write_text(json.dumps(item) + "\n")
    return path


def _position(exc: QueryError) -> tuple[int, int]:
    assert exc.span is not None
    return exc.span.line, exc.span.col


def test_detect_and_watch_report_the_position_in_the_rule_s_own_query(exceptions: Path) -> None:
    rule = dataclasses.replace(load_builtin(DEFAULT_RULE), query=BAD)
    backend = DatasetBackend(Dataset.from_documents([DOC]))
    # The run inserts a time range and an exception filter after FROM, and a LIMIT.
    report = detect([rule], backend, Schedule(at=RUN_AT), exceptions=[load_exceptions(exceptions)])
    [failure] = report.failures
    ran = failure.cause
    assert isinstance(ran, QueryError)
    with pytest.raises(QueryError) as watched:
        RuleWatch.create(rule)
    assert _position(ran) == _position(watched.value) == (3, 25)
    assert "no.such.field" in ran.one_line()
    assert ran.one_line() == watched.value.one_line()
    assert ran.caret().splitlines() == [
        "| stats n = count(*) by no.such.field",
        "                        ^^^^^^^^^^^^^",
    ]
