"""The simulator: deterministic, Defend-shaped, planted scans where they are said to be."""

from __future__ import annotations

import gzip
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconwatch.simulate import Simulation, write_events

START = datetime(2025, 7, 16, 9, tzinfo=UTC)


def _nmap(events: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in events if e["process"]["executable"] == "/usr/bin/nmap"]  # type: ignore[index]


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.ndjson.gz", tmp_path / "b.ndjson.gz"
    for p in (a, b):
        write_events(
            Simulation(hosts=5, hours=0.5, start=START, scans=("subnet",), seed=3).events(), p
        )
    assert a.read_bytes() == b.read_bytes()
    assert gzip.decompress(a.read_bytes()).count(b"\n") > 600


def test_subnet_scan_shape_and_defend_fields() -> None:
    sim = Simulation(hosts=6, hours=1, start=START, scans=("subnet",), seed=1)
    events = sim.events()
    scan = _nmap(events)
    assert len({e["destination"]["ip"] for e in scan}) == 300  # type: ignore[index]
    assert len({e["agent"]["id"] for e in scan}) == 1  # type: ignore[index]
    e = scan[0]
    assert e["event"]["action"] == "connection_attempted"  # type: ignore[index]
    assert e["event"]["type"] == ["start"]  # type: ignore[index]
    assert e["host"]["os"]["type"] == "linux"  # type: ignore[index]
    assert e["event"]["ingested"] >= e["@timestamp"]  # type: ignore[index, operator]
    assert sim.planted[0].kind == "subnet"
    stamps = [str(x["@timestamp"]) for x in events]
    assert stamps == sorted(stamps)


def test_other_kinds() -> None:
    events = Simulation(
        hosts=6, hours=3, start=START, scans=("port", "distributed", "ipv6"), seed=2
    ).events()
    scan = _nmap(events)
    per_ip = Counter(e["destination"]["ip"] for e in scan)  # type: ignore[index]
    assert max(per_ip.values()) == 1000
    assert any(":" in str(ip) for ip in per_ip)
    # Each planted scan on a host of its own (a small fleet wraps around): 2 to 4 agents.
    assert 2 <= len({e["agent"]["id"] for e in scan}) <= 4  # type: ignore[index]


def test_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown scan kind"):
        Simulation(hosts=5, hours=1, start=START, scans=("bogus",))


def test_stream_makes_one_chunk_of_time_at_a_time() -> None:
    """`simulate --hosts 1000 --hours 12` held every event in memory (4.3 GB): the stream makes
    the first event after one 10-minute chunk of traffic (plus the planted scan), not 12 hours."""
    sim = Simulation(hosts=300, hours=12, start=START, scans=("subnet",), seed=4)
    stream = sim.stream()
    next(stream)
    made = sim.factory.sequence
    # ~72 events per host and hour: 12 h of 300 hosts is ~260k events, one chunk ~3.6k.
    assert 600 < made < 12_000


def test_stream_is_sorted_deterministic_and_keeps_the_planted_scan() -> None:
    def run() -> list[dict[str, object]]:
        return list(
            Simulation(hosts=5, hours=2.5, start=START, scans=("subnet", "port"), seed=9).stream()
        )

    events = run()
    stamps = [str(e["@timestamp"]) for e in events]
    assert stamps == sorted(stamps)
    assert events == run()
    assert len({e["destination"]["ip"] for e in _nmap(events)}) == 301  # type: ignore[index]
    assert stamps[-1] < "2025-07-16T11:30:00"
