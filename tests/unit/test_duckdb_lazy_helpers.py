"""The rw_* helpers registered as statements first call them give the results, warnings and retries of a connection that has them all."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from reconwatch.backends.duckdb import udf
from reconwatch.backends.duckdb.execute import connect, execute
from reconwatch.ingest import Dataset
from reconwatch.ingest.dataset import SAMPLE_LINES
from reconwatch.plan.catalog import Result
from reconwatch.plan.scan import RetryScan
from reconwatch.query import compile_on

NOW = datetime(2024, 1, 2, tzinfo=UTC)
QUERIES = [
    # The reader's SQL calls rw_ip_canon (an IPv6 address), the query rw_cidr and rw_date_format.
    (
        'from logs-* | eval in10 = cidr_match(destination.ip, "10.0.0.0/8"),'
        ' y = date_format("yyyy", @timestamp) | stats n = count(*) by in10, y, destination.ip'
        " | sort destination.ip"
    ),
    # Warnings come back through rw_warn.
    "from logs-* | eval p = to_integer(host.name) | keep p | limit 3",
    # No helper at all.
    "from logs-* | stats n = count(*) by host.name | sort host.name",
]


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "e.ndjson"
    lines = []
    for i in range(SAMPLE_LINES + 200):
        ip = "::1" if i % 7 == 0 else f"10.0.{i % 3}.{i % 250}"
        doc = {"@timestamp": 1704067200000 + i, "host": {"name": f"h{i % 4}"}, "destination.ip": ip}
        lines.append(json.dumps(doc))
    # Past the sample: a second value (a retry marks the field multivalued) and a bad line.
    lines.append(json.dumps({"@timestamp": 1704067200000, "destination.ip": ["10.0.0.1", "::2"]}))
    lines.append("{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(query: str, path: Path, *, eager: bool) -> tuple[Result, list[str]]:
    dataset = Dataset.from_files([path])
    for _ in range(5):
        plan = compile_on(query, dataset)
        con = connect() if eager else None
        try:
            return execute(plan, dataset, NOW, con), dataset.report.lines()
        except RetryScan:
            continue
        finally:
            if con is not None:
                con.close()
    raise AssertionError("did not settle")


@pytest.mark.parametrize("query", QUERIES)
def test_lazy_helpers_give_what_all_helpers_give(query: str, events: Path) -> None:
    lazy = _run(query, events, eager=False)
    eager = _run(query, events, eager=True)
    assert lazy == eager
    assert lazy[0].rows


def test_a_helper_is_registered_once_asked_for() -> None:
    con = connect(helpers=False)
    with pytest.raises(duckdb.CatalogException) as caught:
        con.execute("SELECT rw_ip_canon('::ffff:10.0.0.1')")
    assert udf.missing_function(caught.value) == "rw_ip_canon"
    udf.register(con, ["rw_ip_canon"])
    assert con.execute("SELECT rw_ip_canon('::ffff:10.0.0.1')").fetchall() == [("10.0.0.1",)]
    with pytest.raises(duckdb.CatalogException) as other:
        con.execute("SELECT no_such_function(1)")
    assert udf.missing_function(other.value) is None
