"""DuckDB's own NDJSON reading gives what the Python reader gives; bad files fall back and report."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from reconwatch.ingest import Dataset
from reconwatch.ingest.fast import spellings
from reconwatch.query import run_query

NOW = datetime(2024, 1, 2, tzinfo=UTC)
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def _write(path: Path, lines: list[object]) -> Path:
    text = [x if isinstance(x, str) else json.dumps(x) for x in lines]
    path.write_text("\n".join(text) + "\n")
    return path


def test_spellings_cover_nested_and_dotted_keys() -> None:
    assert sorted(spellings("a.b.c")) == sorted(
        [("a.b.c",), ("a", "b.c"), ("a.b", "c"), ("a", "b", "c")]
    )


def test_fast_path_types_multivalues_and_strings_that_look_like_arrays(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "good.ndjson",
        [
            {"@timestamp": "2024-01-01T00:00:00Z", "destination": {"ip": "10.0.0.1"}, "k": "[a"},
            {
                "@timestamp": 1704067200000,
                "destination.ip": "::ffff:10.0.0.2",
                "k": ["b", "a", "b"],
            },
        ],
    )
    ds = Dataset.from_files([path])
    rows = run_query("from logs-* | keep @timestamp, destination.ip, k", ds, now=NOW).rows
    assert rows == [(T0, "10.0.0.1", "[a"), (T0, "10.0.0.2", ["a", "b"])]
    assert ds.report.errors == [] and ds.report.events == 2


def test_bad_lines_are_reported_and_good_ones_processed(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "bad.ndjson",
        [
            {"destination": {"ip": "10.0.0.1", "port": 80}},
            "{bad json",
            [1, 2],
            {"destination": {"ip": "10.0.0.3", "port": "abc"}},
            {"destination.ip": "10.0.0.2"},
        ],
    )
    ds = Dataset.from_files([path])
    rows = run_query("from logs-* | stats d = count_distinct(destination.ip)", ds, now=NOW).rows
    assert rows == [(2,)]
    assert [e.line for e in ds.report.errors] == [2, 3, 4]
    assert ds.report.events == 2


def test_fields_beyond_the_sample_are_found(tmp_path: Path) -> None:
    docs: list[object] = [{"k": "a", "event": {"type": "start"}} for _ in range(1100)]
    docs.append({"k": ["z", "y"], "event": {"type": ["start", "end"]}, "late": 5})
    path = _write(tmp_path / "many.ndjson", docs)
    ds = Dataset.from_files([path])
    text = 'from logs-* | where event.type == "start" | stats c = count(*), v = values(k)'
    assert run_query(text, ds, now=NOW).rows == [(1100, "a")]
    late = run_query("from logs-* | where late == 5 | keep k, event.type", ds, now=NOW).rows
    assert late == [(["y", "z"], ["end", "start"])]


def test_text_read_leaf_meets_arrays_floats_and_bracket_strings_late(tmp_path: Path) -> None:
    docs: list[object] = [{"k": "x", "destination": {"ip": "10.0.0.1"}} for _ in range(1100)]
    docs += [{"k": "[not an array"}, {"k": ["b", "a"]}, {"k": 1.5}, {"destination.ip": "::1"}]
    ds = Dataset.from_files([_write(tmp_path / "late.ndjson", docs)])
    text = "from logs-* | stats v = values(k), ips = count_distinct(destination.ip)"
    assert run_query(text, ds, now=NOW).rows == [(["1.5", "[not an array", "a", "b", "x"], 2)]
    assert ds.report.errors == []


def test_good_file_read_by_duckdb_and_bad_file_by_python_in_one_query(tmp_path: Path) -> None:
    good = _write(
        tmp_path / "good.ndjson",
        [
            {"@timestamp": f"2024-01-01T00:00:0{i}Z", "host": {"ip": [f"10.0.0.{i}", "::1"]}}
            for i in range(3)
        ],
    )
    bad = _write(
        tmp_path / "bad.ndjson",
        [{"@timestamp": "2024-01-01T00:00:09Z", "host": {"ip": "10.9.9.9"}}, "{oops"],
    )
    ds = Dataset.from_files([good, bad])
    rows = run_query("from logs-* | sort @timestamp | keep host.ip", ds, now=NOW).rows
    assert rows == [(["::1", f"10.0.0.{i}"],) for i in range(3)] + [("10.9.9.9",)]
    assert ds.report.lines() == [
        f"{bad}:2: not JSON: JSON is malformed: object keys must be strings (byte 1)"
    ]
    assert ds.report.events == 4


def test_every_spelling_of_a_field_after_the_sample(tmp_path: Path) -> None:
    docs: list[object] = [{"host": {"name": "a", "os": {"type": "linux"}}} for _ in range(1100)]
    docs += [
        {"host": {"name": "a", "os.type": "mac"}, "host.name": "b"},
        {"host.os": {"type": "w"}},
    ]
    ds = Dataset.from_files([_write(tmp_path / "dots.ndjson", docs)])
    text = "from logs-* | stats n = values(host.name), c = count(*) by t = host.os.type | sort t"
    rows = run_query(text, ds, now=NOW).rows
    assert rows == [("a", 1100, "linux"), (["a", "b"], 1, "mac"), (None, 1, "w")]


def test_unread_fields_past_the_sample_are_not_validated(tmp_path: Path) -> None:
    """docs/performance.md's exact contract of the fast path: a bad value in a field the query
    reads is refused wherever it is; one in a field it does not read is refused within the
    first 1,000 events (the sample) but kept, unreported, after them (count(*) counts it)."""
    now = datetime(2025, 1, 2, tzinfo=UTC)

    def events(bad_line: int) -> Path:
        path = tmp_path / f"bad-at-{bad_line}.ndjson"
        lines = []
        for line in range(1, 1101):
            event: dict[str, object] = {"@timestamp": "2025-01-01T00:00:00Z", "process.pid": 1}
            if line == bad_line:
                event["source.ip"] = "garbage"
            lines.append(json.dumps(event))
        path.write_text("\n".join(lines) + "\n")
        return path

    def count(path: Path, query: str) -> tuple[object, list[str]]:
        ds = Dataset.from_files([path])
        return run_query(query, ds, now=now).rows[0][0], ds.report.lines()

    unread = "from logs-* | stats c = count(*)"
    read = "from logs-* | stats c = count(*), s = count(source.ip)"
    assert count(events(5), unread) == (1099, [f"{tmp_path}/bad-at-5.ndjson:5: {BAD_IP}"])
    assert count(events(1050), read) == (1099, [f"{tmp_path}/bad-at-1050.ndjson:1050: {BAD_IP}"])
    assert count(events(1050), unread) == (1100, [])  # the documented gap
    # The Python path (documents here) checks every field of every event.
    docs = [json.loads(line) for line in events(1050).read_text().splitlines()]
    ds = Dataset.from_documents(docs)
    assert run_query(unread, ds, now=now).rows == [(1099,)]


BAD_IP = "field [source.ip] of type [ip]: 'garbage' is not an IP string literal."
