"""`reconwatch query` as a user runs it: formats, exit codes, caret errors, bad events on stderr."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reconwatch import __version__

DOCS = [
    {
        "@timestamp": "2024-01-01T00:00:00Z",
        "host": {"name": "a"},
        "destination": {"ip": "10.0.0.1"},
    },
    {"@timestamp": 1704067200000, "host.name": "b", "destination.ip": ["::ffff:10.0.0.2", "::1"]},
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from reconwatch.cli.main import main; main()", "query", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.ndjson"
    lines = [json.dumps(d) for d in DOCS]
    lines.insert(1, "{not json")
    path.write_text("\n".join(lines) + "\n")
    return path


QUERY = "from logs-* | keep @timestamp, host.name, destination.ip | sort host.name"


def test_ndjson_when_piped_and_bad_events_reported(events: Path) -> None:
    res = run(QUERY, str(events))
    assert res.returncode == 0
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert rows[0] == {
        "@timestamp": "2024-01-01T00:00:00.000Z",
        "host.name": "a",
        "destination.ip": "10.0.0.1",
    }
    assert rows[1]["destination.ip"] == ["::1", "10.0.0.2"]
    assert f"{events}:2: not JSON" in res.stderr
    assert "1 bad event(s) skipped, 2 processed" in res.stderr


def test_csv_and_json_formats(events: Path) -> None:
    res = run(QUERY, str(events), "--format", "csv")
    assert res.stdout.splitlines()[0] == "@timestamp,host.name,destination.ip"
    res = run(QUERY, str(events), "--format", "json")
    assert [r["host.name"] for r in json.loads(res.stdout)] == ["a", "b"]


def test_bad_query_exit_2_with_caret(events: Path) -> None:
    res = run("from logs-* | where hostx == 1", str(events))
    assert res.returncode == 2
    assert "line 1:21:" in res.stderr
    assert "^^^^^" in res.stderr
    assert "Traceback" not in res.stderr


def test_now_option_and_explain(events: Path) -> None:
    res = run(
        "from logs-* | where @timestamp > now() - 1 day | stats c = count()",
        str(events),
        "--now",
        "2024-01-01T12:00:00Z",
    )
    assert json.loads(res.stdout) == {"c": 2}
    res = run(QUERY, str(events), "--explain")
    assert res.returncode == 0 and "WITH s0 AS" in res.stdout


def test_explain_is_limited_to_the_fields_used(events: Path) -> None:
    res = run("from logs-* | stats c = count(*) by host.name", str(events), "--explain")
    assert res.returncode == 0
    assert "fields=host.name:keyword" in res.stdout
    assert "destination.ip" not in res.stdout and "agent.id" not in res.stdout


def test_back_quoted_by_key_is_named_without_quotes(events: Path) -> None:
    res = run(
        'from logs-* | stats c = count(*) by `host.name` | where host.name == "b"', str(events)
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"c": 1, "host.name": "b"}


def test_evaluation_warnings_on_stderr_as_elasticsearch_headers(events: Path) -> None:
    res = run("from logs-* | eval n = to_integer(host.name) | keep n | sort n", str(events))
    assert res.returncode == 0
    assert [json.loads(line) for line in res.stdout.splitlines()] == [{"n": None}, {"n": None}]
    warnings = [line for line in res.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings[0] == (
        f'Warning: 299 Elasticsearch-reconwatch-{__version__} "Line 1:24: evaluation of '
        '[to_integer(host.name)] failed, treating result as null. Only first 20 failures recorded."'
    )
    assert len(warnings) == 3
    assert all("Cannot parse number" in w for w in warnings[1:])


def test_a_skipped_event_is_not_counted(tmp_path: Path) -> None:
    """The user's case: a line nested 100k deep is reported as skipped and count(*) leaves it out."""
    path = tmp_path / "deep.ndjson"
    deep = '{"host": {"name": "a"}, "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path.write_text("\n".join([json.dumps(DOCS[0]), deep, json.dumps(DOCS[0])]) + "\n")
    res = run("from logs-* | stats c = count(*)", str(path))
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"c": 2}
    assert f"{path}:2: not JSON: nested deeper than 500 levels" in res.stderr
    assert "1 bad event(s) skipped, 2 processed" in res.stderr
