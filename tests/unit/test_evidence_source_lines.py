"""Evidence over plain files: a thin pinned read, the sample completed from its source lines."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconwatch.engine.detect import DatasetBackend, Schedule, detect
from reconwatch.engine.evidence import EvidenceFinder
from reconwatch.esql.parser import parse
from reconwatch.esql.render import render
from reconwatch.ingest import Dataset
from reconwatch.rules.builtin import DEFAULT_RULE, load_builtin

RUN_AT = datetime(2025, 7, 16, 10, 0, tzinfo=UTC)


def _scan_lines() -> list[str]:
    """nmap sweeping 300 addresses between benign traffic, in time order."""
    start = RUN_AT - timedelta(minutes=40)
    lines = []
    for i in range(600):
        scan = i % 2 == 0
        at = (start + timedelta(seconds=i)).isoformat().replace("+00:00", "Z")
        exe = "/tmp/.x/nmap" if scan else "/usr/sbin/chronyd"
        lines.append(
            json.dumps(
                {
                    "@timestamp": at,
                    "event": {"action": "connection_attempted", "type": ["start"]},
                    "host": {"name": "web-01", "os": {"type": "linux"}},
                    "agent": {"id": "a6f1c0de-0000-4000-8000-000000000001"},
                    "user": {"name": "www-data" if scan else "chrony"},
                    "source": {"ip": "10.9.9.9", "port": 40000 + i},
                    "process": {"executable": exe, "name": exe.rsplit("/", 1)[1], "pid": 31337},
                    "destination": {"ip": _target(i), "port": 22 if scan else 123},
                    "network": {"transport": "tcp" if scan else "udp", "direction": "egress"},
                }
            )
        )
    return lines


def _target(i: int) -> str:
    return f"10.9.{i // 256}.{i % 256}" if i % 2 == 0 else f"10.9.200.{i % 3}"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    text = "\n".join(_scan_lines()) + "\n"
    plain = tmp_path / "events.ndjson"
    plain.write_text(text)
    packed = tmp_path / "events.ndjson.gz"
    with gzip.open(packed, "wt") as fh:
        fh.write(text)
    return plain, packed


def _evidence(path: Path) -> dict[str, object]:
    backend = DatasetBackend(Dataset.from_files([path]))
    report = detect([load_builtin(DEFAULT_RULE)], backend, Schedule(at=RUN_AT))
    assert len(report.alerts) == 1
    evidence = report.alerts[0]["reconwatch.evidence"]
    assert isinstance(evidence, dict)
    return evidence


def test_plain_file_pins_only_what_the_rule_reads_and_the_summaries(
    files: tuple[Path, Path],
) -> None:
    plain, packed = files
    rule = load_builtin(DEFAULT_RULE)
    for path, thin in ((plain, True), (packed, False)):
        backend = DatasetBackend(Dataset.from_files([path]))
        finder = EvidenceFinder(rule, backend, parse(rule.query), _fields(backend, rule.query))
        query = finder.pinned_query([])
        assert query is not None
        kept = render(query).rsplit("KEEP", 1)[1]
        # Objects the rule does not read are left to the source lines over a plain file.
        for name in ("user.name", "source.ip", "network.transport"):
            assert (name in kept) is not thin, (path.name, name)
        for name in ("destination.port", "process.name", "host.name", "@timestamp"):
            assert name in kept
        assert (finder.files == [plain]) is thin


def test_sample_from_source_lines_equals_the_wide_read(files: tuple[Path, Path]) -> None:
    plain, packed = files
    thin, wide = _evidence(plain), _evidence(packed)
    assert {k: v for k, v in thin.items() if k != "sample"} == {
        k: v for k, v in wide.items() if k != "sample"
    }
    thin_sample, wide_sample = thin["sample"], wide["sample"]
    assert isinstance(thin_sample, list) and isinstance(wide_sample, list)
    assert len(thin_sample) == 5
    for got, want in zip(thin_sample, wide_sample, strict=True):
        assert got.pop("log.file.path") == str(plain)
        offset = got.pop("log.offset")
        assert got == want
        assert want["user.name"] == "www-data" and want["network.transport"] == "tcp"
        with plain.open("rb") as fh:  # the offset is the event's own line
            fh.seek(offset)
            line = json.loads(fh.readline())
        assert line["@timestamp"].startswith(want["@timestamp"][:19])
        assert line["destination"]["ip"] == want["destination.ip"]


def _fields(backend: DatasetBackend, query: str) -> dict[str, object]:
    from reconwatch.engine.backend import source_fields

    parsed = parse(query)
    return dict(source_fields(backend, replace(parsed, commands=parsed.commands[:1])))
