"""The input-format registry: formats recognised by content, forced by name, extended by one
entry, and a file no format reads reported loudly by name (never read as zero events)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconwatch.errors import UsageError
from reconwatch.ingest import Dataset, formats
from reconwatch.ingest.formats import read_events
from reconwatch.ingest.report import IngestReport
from reconwatch.query import run_query

NOW = datetime(2025, 7, 16, 10, tzinfo=UTC)
AUDIT_LINE = (
    "type=SYSCALL msg=audit(1752657600.100:10): arch=c000003e syscall=42 success=no exit=-115 "
    "a0=3 a1=7ffd a2=10 a3=0 items=1 ppid=1 pid=4242 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 "
    'egid=0 sgid=0 fsgid=0 tty=pts0 ses=1 comm="nmap" exe="/usr/bin/nmap" key=(null)\n'
)


def _ndjson(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _parquet(path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": ["x"]}), path)
    return path


def test_todays_formats_are_recognised_by_content_not_name(tmp_path: Path) -> None:
    ndjson = _ndjson(tmp_path / "events.log", [{"a": 1}])  # the suffix says nothing
    gz = tmp_path / "events.bin"
    gz.write_bytes(gzip.compress(b'{"a": 1}\n'))
    array = tmp_path / "events.txt"
    array.write_text('[{"a": 1}]')
    audit = tmp_path / "audit"
    audit.write_text(AUDIT_LINE)
    audit_gz = tmp_path / "audit.1.gz"
    audit_gz.write_bytes(gzip.compress(AUDIT_LINE.encode()))
    parquet = _parquet(tmp_path / "events.data")
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"\n\n")
    damaged = tmp_path / "damaged.ndjson"
    damaged.write_bytes(b'\x00garbage line\n{"a": 1}\n')
    got = {
        p.name: formats.sniff(p).name
        for p in (ndjson, gz, array, audit, audit_gz, parquet, empty, damaged)
    }
    assert got == {
        "events.log": "ndjson",
        "events.bin": "ndjson",
        "events.txt": "json",
        "audit": "auditd",
        "audit.1.gz": "auditd",
        "events.data": "parquet",
        "empty.ndjson": "ndjson",
        "damaged.ndjson": "ndjson",
    }
    names = formats.names()
    assert names[:2] == ("parquet", "auditd") and names[-2:] == ("json", "ndjson")
    assert formats.get("ndjson").duckdb and not formats.get("json").duckdb


@pytest.mark.parametrize(
    ("content", "looks"),
    [
        (b"#separator \\x09\n#set_separator\t,\n#fields\tts\tuid\n", "a Zeek log"),
        (b"\x28\xb5\x2f\xfd" + b"\x00" * 20, "zstd-compressed"),
        (b"ts,src,dst\n1,2,3\n", "text that is not JSON (first line 'ts,src,dst')"),
    ],
)
def test_unrecognised_file_is_reported_by_name(tmp_path: Path, content: bytes, looks: str) -> None:
    path = tmp_path / "capture"
    path.write_bytes(content)
    with pytest.raises(formats.UnrecognisedFormatError) as caught:
        formats.sniff(path)
    text = caught.value.one_line()
    assert text.startswith(f"unrecognised format: {path} looks like ") and looks in text
    assert "--input-format" in text
    report = IngestReport()
    assert list(read_events(path, report)) == []
    assert report.lines() == [text]


def test_a_dataset_reads_the_good_files_and_names_the_unrecognised_one(tmp_path: Path) -> None:
    good = _ndjson(tmp_path / "good.ndjson", [{"a": "x"}, {"a": "y"}])
    zst = tmp_path / "sweep.ndjson.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 60)
    ds = Dataset.from_files([good, zst])
    rows = run_query("FROM x | KEEP a | SORT a", ds, now=NOW).rows
    assert rows == [("x",), ("y",)]
    assert [e.path for e in ds.scan().errors] == [str(zst)]
    assert "looks like zstd-compressed data" in ds.report.lines()[0]


def test_forced_format_and_unknown_names(tmp_path: Path) -> None:
    path = tmp_path / "events"
    path.write_text('{"a": "x"}\n')
    ds = Dataset.from_files([path], input_format="ndjson")
    assert run_query("FROM x | KEEP a", ds, now=NOW).rows == [("x",)]
    with pytest.raises(UsageError, match=r"--input-format 'evtx': choose one of parquet, "):
        Dataset.from_files([path], input_format="evtx")
    # Forced as an audit log, JSON lines are bad records, reported, not events.
    ds = Dataset.from_files([path], input_format="auditd")
    assert ds.scan().events == 0 and ds.report.skipped == 1


def _read_pipe_log(path: Path, report: IngestReport) -> Iterator[tuple[int, object]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            parts = raw.rstrip(b"\n").split(b"|")
            if len(parts) != 2:
                report.add("expected two |-separated fields", str(path), number)
                continue
            yield number, {"a": parts[0].decode(), "b": parts[1].decode()}


def test_a_new_format_is_one_registry_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registered before ndjson, sniffed by content, read by `query` like any other input."""
    formats.names()  # the built-in formats first
    monkeypatch.setattr(formats, "_REGISTRY", dict(formats._REGISTRY))
    formats.register(
        formats.InputFormat(
            "pipes",
            "a|b lines",
            lambda head: head.first_line().startswith(b"pipes:"),
            _read_pipe_log,
        ),
        before="json",
    )
    assert formats.names()[-3:] == ("pipes", "json", "ndjson")
    path = tmp_path / "x.log"
    path.write_text("pipes:|header\nx|1\nbroken\n")
    ds = Dataset.from_files([path])
    rows = run_query("FROM x | KEEP a, b", ds, now=NOW).rows
    assert rows == [("pipes:", "header"), ("x", "1")]
    assert ds.report.lines() == [f"{path}:3: expected two |-separated fields"]
    with pytest.raises(ValueError, match="already registered"):
        formats.register(formats.get("pipes"))
