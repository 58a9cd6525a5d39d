"""DuckDB's reader checks the fields a WHERE reads for every event, the others where it matters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from reconwatch.backends.duckdb.execute import filtered_fields
from reconwatch.esql.analyze import compile_query
from reconwatch.ingest import Dataset
from reconwatch.query import run_query

NOW = datetime(2024, 1, 2, tzinfo=UTC)
# More events than the sample, so what follows them is met by DuckDB's reader alone.
PLAIN = [
    {"@timestamp": "2024-01-01T00:00:00Z", "host": {"name": f"h{i}", "os": {"type": "linux"}}}
    for i in range(1100)
]


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_a_filtered_field_is_checked_in_events_the_filter_drops(tmp_path: Path) -> None:
    late = {"@timestamp": "2024-01-01T00:00:00Z", "host": {"name": "m", "os": {"type": ["a", "b"]}}}
    ds = Dataset.from_files([_write(tmp_path / "e.ndjson", [*PLAIN, late])])
    result = run_query('from logs-* | where host.os.type == "mac" | stats n = count()', ds, now=NOW)
    assert result.rows == [(0,)]
    # Elasticsearch warns about the multivalue it compared: the field was read as one.
    assert any("single-value function encountered multi-value" in w for w in result.warnings)


def test_an_unfiltered_field_is_read_exactly_where_the_filter_keeps_events(tmp_path: Path) -> None:
    late = {
        "@timestamp": "2024-01-01T00:00:00Z",
        "host": {"name": ["x", "w"], "os": {"type": "mac"}},
    }
    ds = Dataset.from_files([_write(tmp_path / "e.ndjson", [*PLAIN, late])])
    rows = run_query('from logs-* | where host.os.type == "mac" | keep host.name', ds, now=NOW).rows
    assert rows == [(["w", "x"],)]


def test_a_date_the_pattern_passes_but_no_calendar_has_is_a_bad_event(tmp_path: Path) -> None:
    bad = {"@timestamp": "2024-13-45T00:00:00Z", "host": {"name": "z", "os": {"type": "linux"}}}
    ds = Dataset.from_files([_write(tmp_path / "e.ndjson", [*PLAIN, bad])])
    rows = run_query(
        "from logs-* | where @timestamp > now() - 2 days | stats n = count()", ds, now=NOW
    ).rows
    assert rows == [(1100,)]
    assert len(ds.report.errors) == 1 and ds.report.errors[0].line == 1101


def test_filtered_fields_follow_renames_evals_and_stats_keys(tmp_path: Path) -> None:
    ds = Dataset.from_files([_write(tmp_path / "e.ndjson", PLAIN[:2])])
    query = (
        "from logs-* | rename host.name as h | eval o = to_upper(host.os.type) "
        '| where o == "LINUX" | stats n = count() by h, @timestamp | where h != "x" and n > 1'
    )
    assert filtered_fields(compile_query(query, ds)) == {"host.os.type", "host.name"}
    assert filtered_fields(compile_query("from logs-* | keep host.name", ds)) == set()


def test_an_impossible_date_under_a_warning_where_chain_is_reported(tmp_path: Path) -> None:
    # A WHERE whose AND/OR chain can warn runs inside coalesce(...) after the read, not in the
    # reader; the event with February 30th in the filtered field must still be a bad event,
    # reported at its line, and not counted, whichever side of the chain reads the date.
    events = [{**e, "event": {"created": "2024-01-01T00:00:00Z"}} for e in PLAIN]
    bad = {**PLAIN[0], "event": {"created": "2024-02-30T00:00:00Z"}}
    path = _write(tmp_path / "e.ndjson", [*events, bad])
    queries = [
        (
            'from logs-* | where (event.created > "2023-01-01" and host.os.type == "linux") '
            "or to_integer(host.name) > 1 | stats n = count()"
        ),
        (
            'from logs-* | where to_integer(host.name) > 1 or (host.os.type == "linux" '
            'and event.created > "2023-01-01") | stats n = count()'
        ),
    ]
    for query in queries:
        ds = Dataset.from_files([path])
        result = run_query(query, ds, now=NOW)
        assert result.rows == [(1100,)]
        assert [e.line for e in ds.report.errors] == [1101]
        assert "2024-02-30" in ds.report.errors[0].one_line()
