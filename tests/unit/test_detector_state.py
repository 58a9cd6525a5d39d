"""Native detectors' saved state: round trips that change nothing, unusable files that start fresh, and detect/watch --state carrying baselines from one run to the next."""

from __future__ import annotations

import dataclasses
import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from reconwatch.cli.main import main
from reconwatch.engine.native.contact import Contact, contact_of
from reconwatch.engine.native.detector import Detector, Finding, make_detector
from reconwatch.engine.native.state import (
    STATE_VERSION,
    StateError,
    StateFile,
    dump_detector,
    load_detector,
)
from reconwatch.plan.documents import flatten
from reconwatch.rules.builtin import load_builtin
from reconwatch.rules.model import Rule
from reconwatch.simulate import Simulation

START = datetime(2026, 1, 1, tzinfo=UTC)


def _rule(name: str, **params: object) -> Rule:
    """A built-in native rule with some parameters changed (small bounds reach the sketches)."""
    rule = load_builtin(name)
    spec = rule.detector
    assert spec is not None
    return dataclasses.replace(rule, detector=type(spec)(spec.kind, {**spec.params, **params}))


@functools.cache
def _simulated() -> tuple[Contact, ...]:
    sim = Simulation(hosts=4, hours=2, start=START, scans=("targeted", "subnet", "slow"),
                     lookalikes=("prometheus", "ansible"), seed=3, outcomes=True)  # fmt: skip
    out = [c for e in sim.stream() if (c := contact_of(flatten(e))) is not None]
    out.sort(key=lambda c: c.time_ms)
    return tuple(out)


def _contacts() -> list[Contact]:
    return list(_simulated())


def _push(detector: Detector, contacts: list[Contact]) -> list[Finding]:
    return [f for c in contacts for f in detector.push(c)]


def _small_baseline() -> Rule:
    return _rule("recon-baseline", learning_period=timedelta(minutes=40), exact_peers=8,
                 bloom_capacity=512, max_pending=16, max_groups=12, threshold=20)  # fmt: skip


RULES = [
    pytest.param(lambda: _rule("recon-trw", max_peers=64, max_groups=12), id="trw"),
    pytest.param(_small_baseline, id="baseline-bloom-hll"),
]


@pytest.mark.parametrize("make", RULES)
def test_a_saved_and_loaded_detector_goes_on_exactly_as_the_original(make: object) -> None:
    rule: Rule = make()  # type: ignore[operator]
    contacts = _contacts()
    half = len(contacts) // 2
    original = make_detector(rule)
    first = _push(original, contacts[:half])
    blob = dump_detector(rule, original)
    loaded = load_detector(rule, blob)
    assert dump_detector(rule, loaded) == blob  # nothing lost, nothing reordered
    rest = _push(original, contacts[half:])
    again = _push(loaded, contacts[half:])
    assert [(f.time_ms, f.key, f.fields, f.evidence) for f in again] == [
        (f.time_ms, f.key, f.fields, f.evidence) for f in rest
    ]
    assert first or rest  # the data makes the detector decide something
    assert loaded.groups == original.groups


def test_the_bounded_sketches_are_what_is_saved() -> None:
    rule = _rule("recon-baseline", learning_period=timedelta(minutes=40), exact_peers=8,
                 bloom_capacity=512, max_pending=16)  # fmt: skip
    det = make_detector(rule)
    _push(det, _contacts())
    loaded = load_detector(rule, dump_detector(rule, det))
    groups = loaded.group_map.items.values()  # type: ignore[attr-defined]
    assert any(g.peers.approximate for g in groups)  # a Bloom filter came back
    assert any(g.new_total is not None for g in groups)  # and a HyperLogLog
    assert len(dump_detector(rule, det)) < 200_000  # compact: bits and registers, not sets


def test_unusable_blobs_are_one_line_state_errors() -> None:
    trw, baseline = load_builtin("recon-trw"), load_builtin("recon-baseline")
    blob = dump_detector(trw, make_detector(trw))
    raw = msgspec.msgpack.decode(blob)
    cases = {
        b"": "corrupt or truncated",
        b"\x93garbage": "corrupt or truncated",
        blob[: len(blob) // 2]: "corrupt or truncated",
        msgspec.msgpack.encode({**raw, "version": STATE_VERSION + 1}): "another version",
        msgspec.msgpack.encode({**raw, "format": "x"}): "not a reconwatch detector state",
        msgspec.msgpack.encode({**raw, "body": b"\x01"}): "corrupt detector state",
    }
    for data, why in cases.items():
        with pytest.raises(StateError, match=why) as err:
            load_detector(trw, data)
        assert "\n" not in str(err.value)
    with pytest.raises(StateError, match="a trw detector's state, the rule is baseline"):
        load_detector(baseline, blob)
    with pytest.raises(StateError, match=r"other parameters \(max_peers\)"):
        load_detector(_rule("recon-trw", max_peers=8), blob)


def test_a_sketch_of_another_size_is_refused_not_used() -> None:
    small = _rule("recon-baseline", learning_period=timedelta(minutes=1), exact_peers=2,
                  bloom_capacity=64)  # fmt: skip
    det = make_detector(small)
    for i in range(5):
        det.push(Contact(i, "h", "h", "/x", "x", "", f"10.0.0.{i}", 22, "tcp", False, None, None))
    raw = msgspec.msgpack.decode(dump_detector(small, det))
    raw["body"][2][0][5][3] = b"\x00"  # the Bloom filter's bits cut short
    with pytest.raises(StateError, match="Bloom filter of another size"):
        load_detector(small, msgspec.msgpack.encode(raw))


def test_state_file_keeps_other_rules_and_starts_fresh_on_a_bad_file(tmp_path: Path) -> None:
    trw, baseline = load_builtin("recon-trw"), load_builtin("recon-baseline")
    path = tmp_path / "state.bin"
    missing = StateFile(path)
    assert missing.read() == [] and missing.detectors([trw]) == ({}, [])
    det = make_detector(trw)
    _push(det, _contacts())
    StateFile(path).write([trw], {trw.rule_id: det})
    # A run of the baseline rule only keeps the TRW rule's state.
    other = StateFile(path)
    assert other.read() == []
    other.write([baseline], {baseline.rule_id: make_detector(baseline)})
    back = StateFile(path)
    assert back.read() == []
    loaded, notices = back.detectors([trw, baseline])
    assert notices == [] and set(loaded) == {trw.rule_id, baseline.rule_id}
    assert loaded[trw.rule_id].groups == det.groups
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]  # no temporary file left
    for data, why in [
        (b"not msgpack at all", "corrupt or truncated"),
        (path.read_bytes()[:-9], "corrupt or truncated"),
        (msgspec.msgpack.encode({"format": "reconwatch-state-file", "version": 0}), "version 0"),
        (msgspec.msgpack.encode({"format": "other", "version": 1}), "not a reconwatch state"),
    ]:
        path.write_bytes(data)
        bad = StateFile(path)
        (line,) = bad.read()
        assert why in line and line.endswith("starting fresh") and "\n" not in line
        assert bad.detectors([trw]) == ({}, [])


def _event(at: datetime, ip: str, exe: str = "/usr/bin/python3") -> dict[str, object]:
    return {
        "@timestamp": at.isoformat().replace("+00:00", "Z"),
        "event": {"action": "connection_attempted", "category": ["network"]},
        "host": {"name": "app-1", "id": "app-1"},
        "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1], "entity_id": "p1"},
        "destination": {"ip": ip, "port": 443},
        "network": {"transport": "tcp"},
    }


def _write(path: Path, events: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def _baseline_days(tmp_path: Path) -> tuple[Path, Path]:
    """Day 1: a process reaching its 20 usual peers every hour for 13 hours. Day 2 (an hour
    later): the same peers, then 40 new addresses in a minute."""
    day1 = [
        _event(START + timedelta(hours=h, minutes=i), f"10.1.0.{i + 1}")
        for h in range(13)
        for i in range(20)
    ]
    later = START + timedelta(hours=14)
    day2 = [_event(later + timedelta(seconds=i), f"10.1.0.{i + 1}") for i in range(20)]
    day2 += [_event(later + timedelta(minutes=5, seconds=i), f"10.2.0.{i + 1}") for i in range(40)]
    _write(tmp_path / "day1.ndjson", day1)
    _write(tmp_path / "day2.ndjson", day2)
    return tmp_path / "day1.ndjson", tmp_path / "day2.ndjson"


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as done:
        main(args)
    return int(done.value.code or 0)


def _alerts(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_detect_state_carries_the_baseline_into_the_next_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day1, day2 = _baseline_days(tmp_path)
    state, out = tmp_path / "state.bin", tmp_path / "a.ndjson"
    span = ["--from", "2026-01-01T14:05:00Z", "--to", "2026-01-01T14:10:00Z"]
    # Without a state, day 2 alone is the learning period: no alert.
    assert _run(["detect", "-r", "recon-baseline", str(day2), *span, "-o", str(out)]) == 0
    assert _alerts(out) == []
    assert _run(["detect", "-r", "recon-baseline", str(day1), "--state", str(state),
                 "--from", "2026-01-01T12:00:00Z", "--to", "2026-01-01T13:00:00Z"]) == 0  # fmt: skip
    assert state.exists()
    assert _run(["detect", "-r", "recon-baseline", str(day2), *span, "--state", str(state),
                 "-o", str(out)]) == 0  # fmt: skip
    (alert,) = _alerts(out)
    assert alert["reconwatch.baseline.new_destination_count"] == 30
    assert alert["reconwatch.baseline.peer_count"] == 20
    # A corrupt state: one warning line, a fresh start, the run still succeeds.
    state.write_bytes(b"\x00\x01 corrupt")
    capsys.readouterr()
    assert _run(["detect", "-r", "recon-baseline", str(day2), *span, "--state", str(state),
                 "-o", str(out)]) == 0  # fmt: skip
    warning = [line for line in capsys.readouterr().err.splitlines() if "state" in line]
    assert warning == [f"warning: state {state}: corrupt or truncated: starting fresh"]
    assert _alerts(out) == []
    assert StateFile(state).read() == []  # and a good state was saved in its place


def test_watch_state_carries_the_baseline_into_the_next_run(tmp_path: Path) -> None:
    day1, day2 = _baseline_days(tmp_path)
    state, out = tmp_path / "state.bin", tmp_path / "a.ndjson"
    args = ["watch", "-r", "recon-baseline", "-f", "ndjson", "--state", str(state)]
    assert _run([*args, str(day1), "-o", str(tmp_path / "none.ndjson")]) == 0
    assert _alerts(tmp_path / "none.ndjson") == []
    assert _run([*args, str(day2), "-o", str(out)]) == 0
    (alert,) = _alerts(out)
    assert alert["reconwatch.baseline.peer_count"] == 20
    assert alert["reconwatch.detection.path"] == "native"


def test_state_without_a_native_rule_is_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day1, _ = _baseline_days(tmp_path)
    state = tmp_path / "state.bin"
    state.write_bytes(b"keep me")
    code = _run(["detect", "-r", "subnet-scanning-seed", str(day1), "--state", str(state),
                 "--from", "2026-01-01T12:00:00Z", "--to", "2026-01-01T13:00:00Z"])  # fmt: skip
    assert code == 0 and state.read_bytes() == b"keep me"
    assert "no native detector rule runs" in capsys.readouterr().err
