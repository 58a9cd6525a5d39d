"""An event nested deeper than MAX_DEPTH is a bad line in every path: the Python reader, DuckDB's
reader (inside or past the sample), the stream's general path and its Python and compiled scans."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconwatch.backends.stream.executor import StreamExecutor
from reconwatch.backends.stream.fastpath import compiled_scan_enabled
from reconwatch.engine.watch import EcsCatalog
from reconwatch.esql.analyze import compile_query
from reconwatch.ingest import Dataset
from reconwatch.ingest.dataset import SAMPLE_LINES
from reconwatch.plan.documents import MAX_DEPTH, TooDeepError, check_depth, nesting_depth
from reconwatch.query import run_query

NOW = datetime(2024, 1, 1, 1, 0, tzinfo=UTC)
COUNT = "from logs-* | stats c = count(*) by host.name | sort host.name"


def nested(depth: int, host: str = "h0") -> str:
    """An event whose field `x` holds arrays nested so that the line is `depth` deep."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return f'{{"@timestamp": "2024-01-01T00:00:05Z", "host": {{"name": "{host}"}}, "x": {inner}}}'


def good(i: int, host: str = "h0") -> str:
    return json.dumps({"@timestamp": f"2024-01-01T00:00:{i % 60:02d}Z", "host": {"name": host}})


def test_nesting_depth_counts_brackets_outside_strings() -> None:
    assert nesting_depth(b'{"a": [1, {"b": []}]}') == 4
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": "\\"[["}') == 1
    assert nesting_depth(nested(MAX_DEPTH).encode()) == MAX_DEPTH
    check_depth(nested(MAX_DEPTH))
    check_depth(nested(MAX_DEPTH).encode())
    with pytest.raises(TooDeepError):
        check_depth(nested(MAX_DEPTH + 1).encode())
    with pytest.raises(TooDeepError):
        check_depth(nested(MAX_DEPTH + 1))
    # Many brackets, none deep: not refused.
    check_depth(json.dumps({"a": [[] for _ in range(2 * MAX_DEPTH)]}))


@pytest.mark.parametrize("deep", [MAX_DEPTH + 1, 100_000])
@pytest.mark.parametrize("before", [2, SAMPLE_LINES + 5])
def test_a_deep_event_is_skipped_and_not_counted_by_the_query(
    tmp_path: Path, deep: int, before: int
) -> None:
    """Inside the Python reader's sample or past it (read by DuckDB), the deep line is reported
    once and absent from the result; a line exactly MAX_DEPTH deep is an event everywhere."""
    path = tmp_path / "events.ndjson"
    lines = [good(i, f"h{i % 2}") for i in range(before)]
    lines += [nested(deep), nested(MAX_DEPTH, "h1"), good(1)]
    path.write_text("\n".join(lines) + "\n")
    ds = Dataset.from_files([path])
    rows = run_query(COUNT, ds, now=NOW).rows
    assert rows == [(before - before // 2 + 1, "h0"), (before // 2 + 1, "h1")]
    assert [e.line for e in ds.report.errors] == [before + 1]
    assert "nested deeper than" in ds.report.lines()[0]
    assert ds.report.events == before + 2


def test_a_deep_event_is_skipped_in_a_gzip_file_past_the_sample(tmp_path: Path) -> None:
    import gzip

    path = tmp_path / "events.ndjson.gz"
    lines = [good(i) for i in range(SAMPLE_LINES + 3)] + [nested(MAX_DEPTH + 1)]
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    ds = Dataset.from_files([path])
    assert run_query(COUNT, ds, now=NOW).rows == [(SAMPLE_LINES + 3, "h0")]
    assert ds.report.skipped == 1


@pytest.mark.parametrize("scan", ["general", "python", "compiled"])
def test_the_stream_skips_a_deep_event_on_every_path(scan: str) -> None:
    if scan == "compiled" and not compiled_scan_enabled():
        pytest.skip("the compiled scan was not built or is turned off")
    text = (
        "from logs-endpoint.events.network-* | where @timestamp > now() - 10 minutes "
        "| stats c = count() by host.name | where c >= 3"
    )
    ex = StreamExecutor(compile_query(text, EcsCatalog()), fast=scan != "general")
    if scan == "python":
        assert ex.fast is not None
        ex.fast.use_python_scan()
    lines = [good(1), good(2), nested(MAX_DEPTH + 1), nested(MAX_DEPTH + 300), good(3)]
    errors: list[tuple[int, str]] = []
    fired = ex.push_lines([line.encode() for line in lines], errors)
    assert [i for i, _ in errors] == [2, 3]
    assert all("nested deeper than" in reason for _, reason in errors)
    # Only the third good event makes three.
    assert [m.row["c"] for m in fired] == [3]


def test_the_python_scan_survives_a_bad_line_in_a_query_without_cells() -> None:
    """The generated loop's rows are tuples even with no column besides the group key (a bad
    line stopping the batch used to meet an int there)."""
    text = (
        "from logs-endpoint.events.network-* | where @timestamp > now() - 10 minutes "
        "| stats c = count() by host.name | where c >= 3"
    )
    ex = StreamExecutor(compile_query(text, EcsCatalog()))
    assert ex.fast is not None
    ex.fast.use_python_scan()
    errors: list[tuple[int, str]] = []
    fired = ex.push_lines([good(1), good(2), "{bad", good(3)], errors)
    assert [i for i, _ in errors] == [2]
    assert [m.row["c"] for m in fired] == [3]


def test_an_input_with_an_event_the_sample_refused_is_not_read_by_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever else DuckDB's reader would take that the Python reader refuses, an input whose
    sample met such an event stays with the Python reader (the depth check here finds nothing)."""
    from reconwatch.ingest import fast

    monkeypatch.setattr(fast, "deep_line_candidates", lambda *_args: [])
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join([good(1), nested(MAX_DEPTH + 1), good(2)]) + "\n")
    ds = Dataset.from_files([path])
    assert run_query(COUNT, ds, now=NOW).rows == [(2, "h0")]
    assert ds.report.skipped == 1
