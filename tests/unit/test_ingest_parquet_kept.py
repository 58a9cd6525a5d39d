"""Parquet rows DuckDB read and converted, kept between queries for a rule's many runs (parquet.KeptReads)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import run_cli
from reconwatch.ingest import Dataset, parquet
from reconwatch.query import run_query

NOW = datetime(2025, 7, 16, 12, 0, tzinfo=UTC)
T0 = datetime(2025, 7, 16, 10, 0, tzinfo=UTC)


@pytest.fixture
def kept(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The statements whose rows a query read from the kept rows (read now or before)."""
    seen: list[str] = []
    real = parquet.KeptReads.relation

    def spy(self: parquet.KeptReads, con: Any, sql: str, rows: Any) -> str | None:
        name = real(self, con, sql, rows)
        if name is not None:
            seen.append(sql)
        return name

    monkeypatch.setattr(parquet.KeptReads, "relation", spy)
    yield seen


def _naive(at: datetime) -> datetime:
    return at.replace(tzinfo=None)


def _write(path: Path, rows: list[tuple[datetime, str, str, int, list[str]]]) -> Path:
    stamps, hosts, ips, ports, host_ips = zip(*rows, strict=True)
    table = pa.table(
        {
            "@timestamp": pa.array([_naive(t) for t in stamps], pa.timestamp("ms")),
            "host.name": pa.array(hosts, pa.string()),
            "destination.ip": pa.array(ips, pa.string()),
            "destination.port": pa.array(ports, pa.int64()),
            "host.ip": pa.array(host_ips, pa.list_(pa.string())),
        }
    )
    pq.write_table(table, path)
    return path


def _rows(host: str, n: int, shift: int = 0) -> list[tuple[datetime, str, str, int, list[str]]]:
    # Times on the queries' bounds and a millisecond either side; IPv6 host addresses, so the
    # read sorts them (doc-values order) through Python's address key.
    out = []
    for i in range(n):
        at = T0 + timedelta(minutes=5 * (i // 3), milliseconds=(i % 3 - 1) * 1)
        ips = ["fe80::1", f"10.0.{i % 4}.{shift + 5}", "::ffff:10.0.0.9"]
        out.append((at, host, f"10.1.{i % 5}.{shift + i % 7}", 22 + i % 3, ips))
    return out


QUERIES = [
    # Bounds on a row's time, each side: the time filter reaches the kept rows as the file.
    (
        'from logs-* | where @timestamp >= "2025-07-16T10:10:00.000Z" '
        'and @timestamp < "2025-07-16T10:20:00.000Z" | keep @timestamp, host.name, host.ip'
    ),
    (
        'from logs-* | where @timestamp > "2025-07-16T10:09:59.999Z" '
        'and @timestamp <= "2025-07-16T10:20:00.001Z" '
        "| stats c = count(*) by host.name | sort host.name"
    ),
    (
        "from logs-* | stats d = count_distinct(destination.ip), p = values(destination.port) "
        "by host.name | sort host.name"
    ),
    (
        "from logs-* | where destination.port == 23 | keep destination.ip, @timestamp "
        "| sort @timestamp, destination.ip"
    ),
]


def _results(paths: list[Path], keep: bool) -> list[object]:
    """Each query's columns, rows and warnings, twice over (the second time from what the first
    kept, when kept), on one dataset."""
    ds = Dataset.from_files(paths)
    if keep:
        ds.keep_parquet_reads()
    out: list[object] = []
    for query in [*QUERIES, *QUERIES]:
        result = run_query(query, ds, now=NOW)
        out.append(([(c.name, c.type) for c in result.columns], result.rows, result.warnings))
    out.append(ds.report.lines())
    return out


def test_kept_rows_answer_every_query_as_the_files_do(tmp_path: Path, kept: list[str]) -> None:
    paths = [
        _write(tmp_path / "data_0.parquet", _rows("web-01", 30)),
        _write(tmp_path / "data_1.parquet", _rows("db-01", 21, shift=1)),
    ]
    want = _results(paths, keep=False)
    assert kept == []
    got = _results(paths, keep=True)
    assert got == want
    # Each column set read once, then kept: the second round read no file.
    assert len(kept) == 2 * len(QUERIES) and len(set(kept)) <= len(QUERIES)
    assert all(sql in kept[: len(QUERIES)] for sql in kept[len(QUERIES) :])
    assert all(rows for _, rows, _ in want[:-1])  # type: ignore[misc]


def test_kept_rows_belong_to_their_dataset_and_its_files(tmp_path: Path, kept: list[str]) -> None:
    # Two datasets over a file of the same path, rewritten between them; two inputs in one
    # process: each query answers from its own dataset's files.
    path = tmp_path / "data_0.parquet"
    other = _write(tmp_path / "data_1.parquet", _rows("db-01", 12, shift=2))
    _write(path, _rows("web-01", 9))
    first = _results([path], keep=True)
    assert first == _results([path], keep=False)
    _write(path, _rows("app-01", 15, shift=3))
    second = _results([path], keep=True)
    assert second == _results([path], keep=False) and second != first
    assert _results([other], keep=True) == _results([other], keep=False)
    assert _results([other, path], keep=True) == _results([other, path], keep=False)
    assert kept  # the kept rows answered


def test_past_the_bounds_the_files_are_read_again(
    tmp_path: Path, kept: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [_write(tmp_path / "data_0.parquet", _rows("web-01", 30))]
    want = _results(paths, keep=False)
    monkeypatch.setattr(parquet, "KEPT_ROWS", 29)  # the file holds 30
    assert _results(paths, keep=True) == want
    assert kept == []
    # Room for one column set at a time: the least recently used goes, the others stay right.
    monkeypatch.setattr(parquet, "KEPT_ROWS", 30)
    monkeypatch.setattr(parquet, "KEPT_BYTES", 2_500)
    assert _results(paths, keep=True) == want
    assert kept


# -- detect over many runs: byte for byte as the row reader and as a read per run ---------------------


def _rule(path: Path, name: str, query: str, rule_id: str) -> Path:
    path.write_text(
        f"""
[metadata]
creation_date = "2025/07/16"
updated_date = "2025/07/16"

[rule]
author = ["reconwatch tests"]
description = "{name}"
from = "now-6m"
interval = "5m"
language = "esql"
name = "{name}"
risk_score = 21
rule_id = "{rule_id}"
severity = "low"
type = "esql"
query = '''{query}'''
"""
    )
    return path


def _event(at: datetime, host: str, ip: str, port: int) -> str:
    return json.dumps(
        {
            "@timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": {"action": "connection_attempted", "type": ["start"]},
            "host": {"name": host, "os": {"type": "linux"}, "ip": ["fe80::1", "10.0.0.5"]},
            "agent": {"id": f"agent-{host}"},
            "process": {"executable": "/usr/bin/nc", "name": "nc", "pid": 4242},
            "destination": {"ip": ip, "port": port},
            "network": {"transport": "tcp"},
        }
    )


def test_many_runs_detect_as_the_row_reader_and_as_a_read_per_run(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kept: list[str],
) -> None:
    # Runs every 5 minutes looking back 6: events on the windows' edges (a run's time and its
    # window's start, and a millisecond either side) decide which runs alert.
    lines = []
    for k in range(10):
        edge = T0 + timedelta(minutes=5 * k + (1 if k % 2 else 0))
        for j, ms in enumerate((-1, 0, 1)):
            for n in range(k % 4 + 1):
                lines.append(
                    _event(
                        edge + timedelta(milliseconds=ms),
                        f"h{k % 3}",
                        f"10.2.{k}.{j * 9 + n}",
                        22 + n,
                    )
                )
    ndjson = tmp_path / "events.ndjson"
    ndjson.write_text("\n".join(lines) + "\n")
    out = tmp_path / "exported"
    code, _, err = run_cli(["export", str(ndjson), "--parquet", str(out)], capsys)
    assert code == 0, err
    many = _rule(
        tmp_path / "many.toml",
        "many destinations",
        'from logs-* | where event.action == "connection_attempted" '
        "| stats c = count(*), d = count_distinct(destination.ip) by host.name "
        "| where d >= 5 | keep host.name, c, d",
        "0b6f6a52-5c33-4a43-9d3e-7e8f2f8d2a01",
    )
    ssh = _rule(
        tmp_path / "ssh.toml",
        "ssh attempts",
        "from logs-* | where destination.port == 22 | stats n = count(*), "
        "ips = values(host.ip), last = max(@timestamp) by destination.port | where n >= 3 "
        "| keep destination.port, n, ips, last",
        "0b6f6a52-5c33-4a43-9d3e-7e8f2f8d2a02",
    )
    args = [
        "detect", str(out), "--rule", str(many), "--rule", str(ssh), "-f", "ndjson",
        "--from", "2025-07-16T10:00:00Z", "--to", "2025-07-16T10:55:00Z",
    ]  # fmt: skip
    code, got, err = run_cli(args, capsys)
    assert code == 0, err
    assert kept, "the runs read the kept rows"
    assert got.count("\n") > 15 and "many destinations" in got and "ssh attempts" in got
    # A read of the files per run, as before.
    with monkeypatch.context() as m:
        m.setattr(Dataset, "keep_parquet_reads", lambda self: None)
        code, per_run, err2 = run_cli(args, capsys)
    assert code == 0, err2
    assert got == per_run and err == err2
    # The validating row reader.
    monkeypatch.setenv("RECONWATCH_PARQUET", "0")
    code, rows, err0 = run_cli(args, capsys)
    assert code == 0, err0
    assert got == rows and err == err0
