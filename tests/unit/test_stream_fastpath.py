"""The stream's micro-batch fast path against its general path: same alerts, triggers, snapshots and metrics on messy input."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from reconwatch.backends.stream.executor import RealertPolicy, StreamExecutor, StreamMatch
from reconwatch.backends.stream.fastpath import compiled_scan_enabled
from reconwatch.backends.stream.lines import split_lines
from reconwatch.engine.watch import EcsCatalog
from reconwatch.esql.analyze import compile_query
from reconwatch.plan import values as v

T0 = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)
NOT_BUILT = "the compiled scan was not built (no C compiler at install) or is turned off"

SCAN = """
    from logs-endpoint.events.network-*
    | where @timestamp > now() - 2 minutes and event.action == "connection_attempted"
        and event.type == "start"
    | stats n = count(), ips = count_distinct(destination.ip), agents = count_distinct(agent.id),
            hosts = values(host.name), ids = values(agent.id)
      by process.executable
    | where agents == 1 and ips > 5
    | sort n asc"""

# A residual WHERE (not only equalities), two BY columns, IP min/values, a `<` count term, the
# values of a long read nowhere else.
TWO_KEYS = """
    from logs-endpoint.events.network-*
    | where @timestamp >= now() - 90 seconds and host.name != "h2"
    | stats c = count(), lo = min(destination.ip), hi = max(agent.id),
            ips = values(destination.ip), d = count_distinct(destination.ip),
            ports = values(destination.port)
      by process.executable, agent.id
    | where c >= 3 and d < 6"""

# The port-scanning shape: a long column (in the WHERE, counted, min), IP and executable
# exclusions answered per term, two BY columns.
PORTS = """
    from logs-endpoint.events.network-*
    | where @timestamp > now() - 2 minutes and event.action == "connection_attempted"
        and destination.port < 1000 and not cidr_match(destination.ip, "10.0.0.0/30")
        and process.executable not like "/tmp/*"
    | stats n = count(), ports = count_distinct(destination.port), lo = min(destination.port),
            ids = values(agent.id)
      by process.executable, destination.ip
    | where ports > 3"""

EXES = ["/usr/bin/nmap", "/usr/bin/curl", "/tmp/x"]
# Every spelling a long meets: JSON integers (also out of a long's range), a string, a float,
# an exponent, a boolean, arrays of one and two values, null.
PORT_VALUES: list[object] = [
    *range(20, 30), *range(990, 1004), 0, -1, 2**63, -(2**63) - 1, 2**63 - 1,
    "80", 80.0, 1e2, 22.5, True, [443], [22, 80], [], None,
]  # fmt: skip
IPS = [f"10.0.0.{i}" for i in range(1, 13)] + ["::1", "fe80::1", "010.0.0.1"]


def _time(rng: random.Random, ms: int) -> object:
    ts = T0 + timedelta(milliseconds=ms)
    roll = rng.random()
    if roll < 0.02:
        return None  # no time at all
    if roll < 0.04:
        return ts.isoformat()  # +00:00 and microseconds: the general parser's spelling
    if roll < 0.06:
        return [v.format_datetime(ts)]  # a one-value array
    return v.format_datetime(ts)


def _line(rng: random.Random, ms: int) -> str:
    roll = rng.random()
    if roll < 0.01:
        return "{not json"
    if roll < 0.02:
        return "   "
    doc: dict[str, object] = {
        "event": {
            "action": rng.choice(["connection_attempted"] * 8 + ["dns", None]),
            "type": rng.choice([["start"], "start", "start", ["start", "end"], "end"]),
        },
        "destination": {"ip": rng.choice([*IPS, ["10.0.0.1"], None])},
        "agent": {"id": rng.choice(["a1", "a1", "a1", "a2", ["a1"]])},
        "host": {"name": rng.choice(["h1", "h2", "h1"]), "os": {"type": "linux"}},
    }
    time = _time(rng, ms)
    if time is not None:
        doc["@timestamp"] = time
    exe: object = rng.choice([*EXES, EXES[0], EXES[0], None, EXES[:2]])
    if rng.random() < 0.02:
        doc["process.executable"] = exe  # the dotted spelling
    elif exe is not None:
        doc["process"] = {"executable": exe, "pid": 7}
    if rng.random() < 0.02:
        doc["destination"] = {"ip": 12}  # a number where a string is expected
    else:  # drawn without the generator, so the other plans' streams stay as they were
        port = PORT_VALUES[(ms * 7919 + len(str(doc["destination"]))) % len(PORT_VALUES)]
        doc["destination"]["port"] = port  # type: ignore[index]
    return json.dumps(doc)


def _stream(seed: int, count: int) -> list[str]:
    """Mostly forward time (bursts in one millisecond too), some out-of-order, some far late."""
    rng = random.Random(seed)
    ms = 0
    out = []
    for _ in range(count):
        step = rng.choice([0, 0, 1, 50, 400, 2_000, 9_000])
        ms += step
        shift = 0
        roll = rng.random()
        if roll < 0.08:
            shift = -rng.randint(1, 20_000)  # out of order, inside the window
        elif roll < 0.1:
            shift = -rng.randint(100_000, 400_000)  # outside the window or too late
        out.append(_line(rng, ms + shift))
    return out


def _matches(fired: list[StreamMatch]) -> list[tuple[object, ...]]:
    return [(sorted(m.row.items(), key=repr), m.end, m.trigger_ms, m.key, m.repeat) for m in fired]


def _same_alerts(got: list[StreamMatch], want: list[StreamMatch]) -> None:
    """The same alerts in the same order of instants; groups leaving the window at the very same
    millisecond may fire in another order (the general path follows its heap's insertion order)."""
    assert [m.end for m in got] == [m.end for m in want]
    assert sorted(_matches(got), key=repr) == sorted(_matches(want), key=repr)


def _run(
    text: str,
    lines: list[str],
    chunks: list[int],
    policy: RealertPolicy,
    lateness: int | None,
    scan: str = "python",
) -> None:
    plan = compile_query(text, EcsCatalog())
    fast = StreamExecutor(plan, policy=policy, lateness_ms=lateness)
    general = StreamExecutor(plan, policy=policy, lateness_ms=lateness, fast=False)
    assert fast.fast is not None and general.fast is None
    if scan == "python":
        fast.fast.use_python_scan()
    else:
        assert fast.fast.native
    position = 0
    for size in chunks:
        chunk = lines[position : position + size]
        position += size
        errors_fast: list[tuple[int, str]] = []
        errors_general: list[tuple[int, str]] = []
        given: Sequence[bytes | str] = chunk
        if scan == "in-place":  # as `reconwatch watch` reads: lines scanned in its buffer
            data = b"".join(line.encode() + b"\n" for line in chunk)
            given = split_lines(bytearray(data), len(data))
        got = fast.push_lines(given, errors_fast)
        want = general.push_lines(chunk, errors_general)
        _same_alerts(got, want)
        assert [i for i, _ in errors_fast] == [i for i, _ in errors_general]
        assert fast.end == general.end
        assert sorted(map(repr, fast.snapshot().rows)) == sorted(map(repr, general.snapshot().rows))
        assert fast.refresh_metrics().as_dict() == general.refresh_metrics().as_dict()
    stats = fast.fast.stats
    assert stats["fast_events"] > stats["general_events"] > 0
    assert stats["bulk_groups"] > 0 and stats["replayed_groups"] > 0


POLICIES = {
    "default": (RealertPolicy(), None),
    "rearm-growth": (RealertPolicy(rearm_after_ms=30_000, growth_factor=1.5), None),
    "short-lateness": (RealertPolicy(rearm_after_ms=5_000), 3_000),
    # watch's default (engine.watch.default_policy): re-armed as soon as it stops matching.
    "rearm-at-once": (RealertPolicy(rearm_after_ms=0), None),
}


COMPILED = pytest.mark.skipif(not compiled_scan_enabled(), reason=NOT_BUILT)
SCANS = [
    "python",
    pytest.param("compiled", marks=COMPILED),
    pytest.param("in-place", marks=COMPILED),
]


@pytest.mark.parametrize("text", [SCAN, TWO_KEYS, PORTS], ids=["scan", "two-keys", "ports"])
@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scan", SCANS)
def test_fast_path_equals_general_path(text: str, policy: str, seed: int, scan: str) -> None:
    lines = _stream(seed, 3_000)
    rng = random.Random(seed)
    chunks = []
    while sum(chunks) < len(lines):
        chunks.append(rng.choice([1, 7, 64, 500, 5_000]))
    _run(text, lines, chunks, *POLICIES[policy], scan=scan)


def test_alert_is_attributed_to_the_crossing_event_inside_a_batch() -> None:
    lines = []
    for i in range(40):
        ts = v.format_datetime(T0 + timedelta(seconds=i))
        doc = {
            "@timestamp": ts,
            "event": {"action": "connection_attempted", "type": ["start"]},
            "process": {"executable": "/usr/bin/nmap"},
            "destination": {"ip": f"10.1.0.{i % 20}"},
            "agent": {"id": "a1"},
            "host": {"name": "h1"},
        }
        lines.append(json.dumps(doc))
    ex = StreamExecutor(compile_query(SCAN, EcsCatalog()))
    fired = ex.push_lines(lines)
    assert [(m.trigger_ms, m.row["ips"]) for m in fired] == [
        (v.datetime_to_millis(T0 + timedelta(seconds=5)), 6)
    ]
    assert ex.fast is not None and ex.fast.stats["general_events"] == 0


def test_a_crossing_inside_a_large_batch_replays_only_a_slice_around_it() -> None:
    lines = []
    for i in range(6_000):
        ts = v.format_datetime(T0 + timedelta(milliseconds=37 * i))
        ip = f"10.2.{i // 250}.{i % 250}" if i % 300 == 0 else "10.9.9.9"
        agent = "a2" if i == 1_500 else "a1"  # one more agent: matches stop, then start again
        doc = {
            "@timestamp": ts,
            "event": {"action": "connection_attempted", "type": "start"},
            "process": {"executable": "/usr/bin/nmap"},
            "destination": {"ip": ip},
            "agent": {"id": agent},
            "host": {"name": "h1"},
        }
        lines.append(json.dumps(doc))
    plan = compile_query(SCAN, EcsCatalog())
    policy = RealertPolicy(rearm_after_ms=1_000)
    fast = StreamExecutor(plan, policy=policy)
    general = StreamExecutor(plan, policy=policy, fast=False)
    got, want = fast.push_lines(lines), general.push_lines(lines)
    assert _matches(got) == _matches(want)
    assert [m.repeat for m in want] == [0, 0]  # crossed, stopped (a second agent), re-armed
    assert fast.refresh_metrics().as_dict() == general.refresh_metrics().as_dict()
    assert fast.fast is not None
    assert fast.fast.stats["split_groups"] > 0
    assert fast.fast.stats["replayed_groups"] < 6_000 // 64


def test_plans_the_fast_path_cannot_run_use_the_general_path() -> None:
    text = """from logs-endpoint.events.network-*
        | where @timestamp > now() - 2 minutes
        | eval port = destination.port + 1
        | stats s = sum(port) by process.executable"""
    assert StreamExecutor(compile_query(text, EcsCatalog())).fast is None


def test_times_filled_ahead_match_the_parser_across_a_year_boundary() -> None:
    from reconwatch.backends.stream.cells import iso_millis

    ex = StreamExecutor(compile_query(SCAN, EcsCatalog()))
    assert ex.fast is not None
    start = datetime(2024, 12, 31, 23, 58, 59, tzinfo=UTC)
    texts: list[object] = [
        v.format_datetime(start + timedelta(milliseconds=997 * i)) for i in range(400)
    ]
    first = ex.fast._times(texts[:1])  # fills the minutes after the first one
    assert first == [iso_millis(str(texts[0]))]
    assert ex.fast._times(texts) == [iso_millis(str(t)) for t in texts]
    assert ex.fast._times(["2025-01-01T00:00:61.000Z"]) is None  # not a time: general path
