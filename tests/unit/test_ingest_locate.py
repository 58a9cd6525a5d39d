"""ingest.locate: known events' lines found in sorted, roughly sorted and unsorted NDJSON files."""

from __future__ import annotations

import gzip
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconwatch.ingest import locate as loc
from reconwatch.ingest.locate import Wanted, is_plain, locate
from reconwatch.types import DataType as T

START = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)
TYPES = {"destination.ip": T.IP, "process.executable": T.KEYWORD, "destination.port": T.LONG}


def _event(i: int, at: datetime, exe: str = "/usr/bin/nmap") -> dict[str, object]:
    return {
        "@timestamp": at.isoformat().replace("+00:00", "Z"),
        "process": {"executable": exe},
        "destination": {"ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", "port": 22},
        "user": {"name": f"user{i}"},
    }


def _wanted(event: dict[str, object]) -> Wanted:
    stamp = datetime.fromisoformat(str(event["@timestamp"]).replace("Z", "+00:00"))
    dest = event["destination"]
    proc = event["process"]
    assert isinstance(dest, dict) and isinstance(proc, dict)
    fields = {"destination.ip": dest["ip"], "process.executable": proc["executable"]}
    return Wanted(stamp, fields, TYPES)


def _write(path: Path, events: list[dict[str, object]], junk: bool = False) -> list[int]:
    """The events one per line (with junk lines between when asked); each event's offset."""
    offsets, out = [], bytearray()
    for n, event in enumerate(events):
        if junk and n % 7 == 3:
            out += b'{"broken": \n' if n % 2 else b"\n"
        offsets.append(len(out))
        out += json.dumps(event).encode() + b"\n"
    path.write_bytes(bytes(out))
    return offsets


def _line_at(path: Path, offset: int) -> dict[str, object]:
    with path.open("rb") as fh:
        fh.seek(offset)
        doc: dict[str, object] = json.loads(fh.readline())
        return doc


def test_sorted_file_found_by_binary_search_without_a_full_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [_event(i, START + timedelta(seconds=i)) for i in range(5000)]
    path = tmp_path / "e.ndjson"
    offsets = _write(path, events, junk=True)
    # The neighbourhood alone must find them: forbid the whole-file fallback.
    monkeypatch.setattr(loc, "_anywhere", lambda *a: pytest.fail("fell back to a full pass"))
    picks = [0, 1, 2500, 4998, 4999]
    found = locate([path], [_wanted(events[i]) for i in picks])
    assert [f.offset if f else None for f in found] == [offsets[i] for i in picks]
    first = found[2]
    assert first is not None and first.path == path
    assert first.value("user.name", T.KEYWORD) == "user2500"
    assert first.value("destination.port", T.LONG) == 22


def test_same_time_many_events_picks_the_one_with_the_values(tmp_path: Path) -> None:
    events = [_event(i, START) for i in range(300)]  # one timestamp for all: nmap's burst
    path = tmp_path / "e.ndjson"
    offsets = _write(path, events)
    found = locate([path], [_wanted(events[123])])
    assert found[0] is not None and found[0].offset == offsets[123]


def test_unsorted_file_falls_back_to_a_pass_over_the_file(tmp_path: Path) -> None:
    events = [_event(i, START + timedelta(seconds=i)) for i in range(20000)]
    rng = random.Random(5)
    rng.shuffle(events)
    path = tmp_path / "e.ndjson"
    offsets = _write(path, events)
    picks = [0, 9999, 19999]
    found = locate([path], [_wanted(events[i]) for i in picks])
    assert [f.offset if f else None for f in found] == [offsets[i] for i in picks]


def test_an_event_in_no_file_is_none_and_later_files_are_searched(tmp_path: Path) -> None:
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    _write(a, [_event(i, START + timedelta(seconds=i)) for i in range(50)])
    later = [_event(i, START + timedelta(hours=1, seconds=i)) for i in range(50, 100)]
    offsets = _write(b, later)
    absent = _wanted(_event(7, START + timedelta(seconds=8)))  # right time, wrong address
    found = locate([a, b], [absent, _wanted(later[10])])
    assert found[0] is None
    assert found[1] is not None and (found[1].path, found[1].offset) == (b, offsets[10])


def test_escaped_slashes_epoch_millis_and_multivalues(tmp_path: Path) -> None:
    at = START + timedelta(minutes=3)
    millis = int(at.timestamp() * 1000)
    lines = [
        json.dumps(_event(1, START)),
        # Valid JSON spelling "\/" and an epoch-millis time; an address among several.
        (
            f'{{"@timestamp": {millis}, "process": {{"executable": "\\/tmp\\/.x\\/nmap"}}, '
            '"destination": {"ip": ["10.0.0.9", "10.0.0.10"]}}'
        ),
    ]
    path = tmp_path / "e.ndjson"
    path.write_text("\n".join(lines) + "\n")
    want = Wanted(at, {"destination.ip": "10.0.0.10", "process.executable": "/tmp/.x/nmap"}, TYPES)
    found = locate([path], [want])
    assert found[0] is not None
    assert found[0].offset == len(lines[0]) + 1
    assert found[0].value("destination.ip", T.IP) == ["10.0.0.9", "10.0.0.10"]


def test_compressed_and_missing_files(tmp_path: Path) -> None:
    gz = tmp_path / "e.ndjson.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(json.dumps(_event(1, START)) + "\n")
    plain = tmp_path / "e.ndjson"
    _write(plain, [_event(1, START)])
    assert not is_plain(gz) and is_plain(plain) and not is_plain(tmp_path / "missing")
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"")
    found = locate([tmp_path / "missing", empty, plain], [_wanted(_event(1, START))])
    assert found[0] is not None and found[0].path == plain


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 400),
    jitter=st.integers(0, 30),
    seed=st.integers(0, 2**16),
    picks=st.lists(st.integers(0, 399), min_size=1, max_size=5),
)
def test_every_wanted_event_is_found_at_its_own_line(
    tmp_path: Path, n: int, jitter: int, seed: int, picks: list[int]
) -> None:
    """Times out of order by up to `jitter` seconds (arrival order), duplicates of a time."""
    rng = random.Random(seed)
    events = [
        _event(i, START + timedelta(seconds=i // 3 + rng.randint(-jitter, jitter)))
        for i in range(n)
    ]
    path = tmp_path / f"p{seed}-{n}.ndjson"
    offsets = _write(path, events, junk=bool(seed % 2))
    chosen = [p % n for p in picks]
    found = locate([path], [_wanted(events[i]) for i in chosen])
    for i, f in zip(chosen, found, strict=True):
        assert f is not None
        assert f.offset == offsets[i]
        assert _line_at(path, f.offset) == events[i]
