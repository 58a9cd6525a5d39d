"""The scan route (STATS over plain NDJSON by the stream's compiled scan) answers exactly as the
DuckDB executor does: rows, columns, warnings, errors and bad-event reports, or declines."""

from __future__ import annotations

import gc
import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconwatch import query as query_module
from reconwatch.backends.stream import batch, fastpath
from reconwatch.errors import ReconwatchError
from reconwatch.ingest import Dataset
from reconwatch.plan import limits
from reconwatch.query import run_query, scan_route

NOW = datetime(2025, 7, 15, 1, 0, tzinfo=UTC)
T0 = NOW - timedelta(minutes=90)

needs_scan = pytest.mark.skipif(
    not fastpath.compiled_scan_enabled(), reason="the compiled scan was not built"
)

SEED = """from logs-endpoint.events.network-*
| keep @timestamp, host.os.type, event.type, event.action, process.executable, destination.ip, agent.id, host.name
| where @timestamp > now() - 1 hours and host.os.type == "linux" and event.type == "start"
    and event.action == "connection_attempted"
| stats n = count(), ips = count_distinct(destination.ip), agents = count_distinct(agent.id),
    hosts = values(host.name), ids = values(agent.id)
  by process.executable
| where agents == 1 and ips > 1
| sort n asc, process.executable asc
| limit 100"""

QUERIES = [
    SEED,
    # No SORT: the groups in the executor's order (first seen, the null group first).
    """from logs-endpoint.events.network-*
    | where @timestamp >= now() - 1 hours and event.action == "connection_attempted"
    | stats n = count(*), lo = min(destination.ip), hi = max(destination.ip),
        ips = values(destination.ip), d = count_distinct(destination.ip) by process.executable""",
    # Two keys, a residual WHERE term, a long column.
    """from logs-endpoint.events.network-*
    | where @timestamp > now() - 30 minutes and host.name != "h2"
    | stats c = count(), ports = values(destination.port), top = max(destination.port)
      by agent.id, host.name""",
    # An address as the key; no BY; no time filter (bench_startup's shape).
    """from logs-endpoint.events.network-*
    | where @timestamp > now() - 2 hours | stats n = count() by destination.ip""",
    "from logs-endpoint.events.network-* | stats n = count(), d = count_distinct(agent.id)",
    """from logs-endpoint.events.network-* | where event.action == "connection_attempted"
    | stats attempts = count(*) by host.name | sort attempts desc, host.name asc | limit 5""",
    # Declined by shape (the executor answers): upper bound, EVAL, count of a column.
    """from logs-endpoint.events.network-* | where @timestamp > now() - 1 hours
    and @timestamp <= now() | stats n = count() by host.name""",
    "from logs-endpoint.events.network-* | eval x = host.name | stats n = count() by x",
    "from logs-endpoint.events.network-* | stats n = count(destination.ip) by host.name",
]

EXES = ["/usr/bin/nmap", "/usr/bin/curl", "/tmp/\u00e9x", '/tmp/q"uote']
GOOD_IPS = ["10.0.0.1", "10.0.0.2", "10.0.1.7", "192.168.1.1", "::1", "fe80::1", "::ffff:10.0.0.1"]
BAD_IPS: list[object] = ["999.1.1.1", "10.0.0.01", "not-an-ip", 7, ["10.0.0.1", "10.0.0.2"]]
BAD_TIMES: list[object] = [
    "2025-07-15T00:30:00Z",  # no milliseconds
    "2025-07-15T00:30:00.000+00:00",
    "2025-07-15T00:30:00.000500Z",
    "2025-13-45T00:00:00.000Z",
    1752539400000,
    None,
]


@st.composite
def events(draw: st.DrawFn, bad: bool) -> dict[str, Any]:
    minute = draw(st.integers(0, 89))
    ts: object = (T0 + timedelta(minutes=minute, milliseconds=draw(st.integers(0, 999)))).strftime(
        "%Y-%m-%dT%H:%M:%S.%f"
    )[:-3] + "Z"
    ip: object = draw(st.sampled_from(GOOD_IPS))
    exe: object = draw(st.sampled_from([*EXES, None]))
    etype: object = draw(st.sampled_from([["start"], "start", ["end"]]))
    port: object = draw(st.integers(1, 4))
    sport: object = draw(st.integers(1024, 65535))
    if bad:
        kind = draw(st.integers(0, 9))
        if kind == 0:
            ts = draw(st.sampled_from(BAD_TIMES))
        elif kind == 1:
            ip = draw(st.sampled_from(BAD_IPS))
        elif kind == 2:
            sport = draw(st.sampled_from(["abc", 80.5, "80", [80], 2**70, [1, 2], True]))
        elif kind == 3:
            exe = draw(st.sampled_from([[EXES[0]], EXES[:2], "x" * 2000, []]))
        elif kind == 4:
            etype = ["start", "end"]
        elif kind == 5:
            port = draw(st.sampled_from(["1", 1.5, 2**63]))
    doc: dict[str, Any] = {
        "@timestamp": ts,
        "host": {"name": draw(st.sampled_from(["h1", "h2", "h\u00fc"])), "os": {"type": "linux"}},
        "event": {"type": etype, "action": draw(st.sampled_from(["connection_attempted", "dns"]))},
        "destination": {"ip": ip, "port": port},
        "source": {"port": sport},
        "agent": {"id": draw(st.sampled_from(["a1", "a2"]))},
        "process": {"executable": exe},
    }
    if ts is None:
        del doc["@timestamp"]
    if exe is None and draw(st.booleans()):
        del doc["process"]
    if bad and draw(st.integers(0, 9)) == 0:
        doc["event.risk_score"] = draw(st.sampled_from([1.5, "high"]))
    return doc


def _line(draw: st.DrawFn, doc: dict[str, Any], bad: bool) -> bytes:
    line = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode()
    if not bad or draw(st.integers(0, 3)):
        return line
    return draw(
        st.sampled_from(
            [
                b'{"host": ',
                line + b" x",
                line + b"\r",
                b"",
                b"[1, 2]",
                line[:-1] + b', "agent": {"id": "a9"}}',  # a duplicate key
                line.replace(b'"host": {"name"', b'"host.name": "h3", "host": {"name"'),
                line.replace(b'"h1"', b'"h\xff1"'),
                line[:-1] + b', "zz": ' + b"[" * 600 + b"]" * 600 + b"}",
                line[:-1] + b', "zz": tru}',
            ]
        )
    )


@st.composite
def files(draw: st.DrawFn) -> tuple[list[list[bytes]], bool]:
    """One to three files of events, some with a bad line or value among good ones; and
    whether any was drawn bad."""
    out = []
    bad = False
    for _ in range(draw(st.integers(1, 3))):
        n = draw(st.integers(0, 40))
        bad_at = draw(st.sets(st.integers(0, max(0, n - 1)), max_size=2)) if n else set()
        bad = bad or bool(bad_at)
        out.append([_line(draw, draw(events(i in bad_at)), i in bad_at) for i in range(n)])
    return out, bad


def _write(tmp: Path, contents: list[list[bytes]], gz: bool = False) -> list[Path]:
    paths = []
    for k, lines in enumerate(contents):
        data = b"".join(line + b"\n" for line in lines)
        path = tmp / (f"f{k}.ndjson.gz" if gz and k == 0 else f"f{k}.ndjson")
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
        paths.append(path)
    return paths


def _outcome(
    query: str,
    paths: list[Path],
    scan: bool,
    monkeypatch: pytest.MonkeyPatch,
    now: datetime = NOW,
) -> Any:
    monkeypatch.setenv("RECONWATCH_SCAN", "1" if scan else "0")
    dataset = Dataset.from_files(paths)
    try:
        r = run_query(query, dataset, now=now)
        answer: Any = (r.columns, r.rows, r.warnings)
    except ReconwatchError as exc:
        answer = (type(exc).__name__, str(exc))
    report = dataset.report
    return answer, report.lines(), report.events, report.skipped


class Counting:
    """scan_route wrapped: how often it answered."""

    def __init__(self) -> None:
        self.answered = 0
        self.asked = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.asked += 1
        got = scan_route(*args, **kwargs)
        self.answered += got is not None
        return got


@needs_scan
@pytest.mark.slow
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(contents=files(), query=st.sampled_from(QUERIES), gz=st.booleans(), parallel=st.booleans())
def test_scan_route_answers_as_duckdb(
    contents: tuple[list[list[bytes]], bool],
    query: str,
    gz: bool,
    parallel: bool,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(query_module, "PARALLEL_BYTES", 1 if parallel else 1 << 40)
    lines, bad = contents
    paths = _write(tmp_path_factory.mktemp("scan"), lines, gz)
    counting = Counting()
    monkeypatch.setattr(query_module, "scan_route", counting)
    scanned = _outcome(query, paths, True, monkeypatch)
    expected = _outcome(query, paths, False, monkeypatch)
    assert scanned == expected
    if not bad and not gz and QUERIES.index(query) < 6:
        assert counting.answered == 1  # good lines only: the route answered


def _clean(n: int, exes: int = 3) -> Iterator[bytes]:
    for i in range(n):
        doc = {
            "@timestamp": (T0 + timedelta(seconds=20 * i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            + "Z",
            "host": {"name": f"h{i % 2}", "os": {"type": "linux"}},
            "event": {"type": ["start"], "action": "connection_attempted"},
            "destination": {"ip": f"10.0.{i // 250}.{i % 250}", "port": 443},
            "source": {"port": 40000 + i},
            "agent": {"id": f"a{i % 3 == 0}"},
            "process": {"executable": f"/bin/x{i % exes}", "pid": 100 + i},
        }
        yield json.dumps(doc).encode()


@needs_scan
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("query", QUERIES[:6])
def test_clean_files_take_the_route(
    query: str, parallel: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line good: the route answers (it is not declining everything), as DuckDB does;
    also with the second half of the lines scanned by a forked child."""
    if parallel:
        monkeypatch.setattr(query_module, "PARALLEL_BYTES", 1)
    paths = _write(tmp_path, [list(_clean(270)), list(_clean(30, 5))])
    counting = Counting()
    monkeypatch.setattr(query_module, "scan_route", counting)
    scanned = _outcome(query, paths, True, monkeypatch)
    assert counting.answered == 1
    assert scanned == _outcome(query, paths, False, monkeypatch)


FINDINGS = [
    ("unread source.port", b'"source": {"port": "abc"}'),
    ("an invalid address", b'"destination": {"ip": "999.1.1.1", "port": 1}'),
    ("a leading zero", b'"destination": {"ip": "10.0.0.01", "port": 1}'),
    ("no milliseconds", b'"@timestamp": "2025-07-15T00:59:00Z"'),
    ("an offset", b'"@timestamp": "2025-07-15T00:59:00.000+00:00"'),
    ("microseconds", b'"@timestamp": "2025-07-15T00:59:00.000500Z"'),
]


@needs_scan
@pytest.mark.slow
@pytest.mark.parametrize(
    ("where", "line", "parallel", "at"),
    [
        *((where, line, False, 1100) for where, line in FINDINGS),
        *((where, line, True, at) for where, line in FINDINGS[:2] for at in (300, 1100)),
    ],
)
def test_the_findings_decline_past_the_sample(
    where: str,
    line: bytes,
    parallel: bool,
    at: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The cases the scan took where DuckDB's reader rejects or reads otherwise (FINDINGS):
    the route declines, past the 1,000-line sample (where only the scan can meet them) and
    before it, in the half a forked child scans or in the parent's."""
    if parallel:
        monkeypatch.setattr(query_module, "PARALLEL_BYTES", 1)
    good = list(_clean(1200))
    doc = json.loads(good[at])
    key, _, value = line.partition(b": ")
    doc[json.loads(key)] = json.loads(value)
    good[at] = json.dumps(doc).encode()
    paths = _write(tmp_path, [good])
    counting = Counting()
    monkeypatch.setattr(query_module, "scan_route", counting)
    scanned = _outcome(SEED, paths, True, monkeypatch)
    assert counting.answered == 0, where
    assert scanned == _outcome(SEED, paths, False, monkeypatch)


def test_limits_and_the_switch_leave_it_to_duckdb(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _write(tmp_path, [list(_clean(50))])
    counting = Counting()
    monkeypatch.setattr(query_module, "scan_route", counting)
    with limits.limited(limits.QueryLimits(seconds=100.0)):
        run_query(SEED, Dataset.from_files(paths), now=NOW)
    monkeypatch.setenv("RECONWATCH_SCAN", "0")
    run_query(SEED, Dataset.from_files(paths), now=NOW)
    assert counting.answered == 0


@needs_scan
@pytest.mark.parametrize(
    "where",
    [
        # The address is filtered: the executor checks it in every event, also in one the
        # equality drops.
        'event.action == "dns" or destination.ip != "10.9.9.9"',
        'event.action == "connection_attempted" and destination.ip != "10.9.9.9"',
        # A function that may warn row by row: the executor converts every event's fields.
        'to_lower(event.action) == "connection_attempted"',
    ],
)
def test_what_the_executor_reads_in_every_event(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = list(_clean(1200))
    doc = json.loads(good[1100])
    doc["event"]["action"] = "dns"
    doc["destination"]["ip"] = "999.1.1.1"
    good[1100] = json.dumps(doc).encode()
    paths = _write(tmp_path, [good])
    query = f"""from logs-endpoint.events.network-* | where {where}
    | stats n = count(), d = count_distinct(destination.ip) by host.name"""
    assert _outcome(query, paths, True, monkeypatch) == _outcome(query, paths, False, monkeypatch)


@needs_scan
def test_the_window_bounds_at_the_millisecond(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events at the window's start, a millisecond either side, and after `now` (no upper
    bound): `>` and `>=` as DuckDB compares them, `now` cut to its millisecond."""
    lines = []
    for offset_ms in (-3_600_001, -3_600_000, -3_599_999, -1, 0, 1, 3_600_000):
        for k, exe in enumerate(("/bin/a", "/bin/b")):
            doc = json.loads(next(_clean(1)))
            ts = NOW + timedelta(milliseconds=offset_ms)
            doc["@timestamp"] = ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            doc["process"]["executable"] = exe
            doc["destination"]["ip"] = f"10.1.{k}.{offset_ms % 250}"
            lines.append(json.dumps(doc).encode())
    paths = _write(tmp_path, [lines])
    counting = Counting()
    monkeypatch.setattr(query_module, "scan_route", counting)
    for op in (">", ">="):
        query = f"""from logs-endpoint.events.network-* | where @timestamp {op} now() - 1 hours
        | stats n = count(), d = count_distinct(destination.ip) by process.executable"""
        for now in (NOW, NOW + timedelta(microseconds=999)):
            scanned = _outcome(query, paths, True, monkeypatch, now)
            assert scanned == _outcome(query, paths, False, monkeypatch, now)
    assert counting.answered == 4


@needs_scan
@pytest.mark.parametrize("collecting", [True, False])
def test_the_collector_is_paused_per_block_and_left_as_it_was(
    collecting: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan pauses the cycle collector while it reads a block: afterwards it is on or off
    as before, whether the route answered or declined inside a block (a wanted key spelled
    with an escape, past the sample)."""
    clean = _write(tmp_path, [list(_clean(50))])
    lines = list(_clean(1200))
    lines[1100] = lines[1100].replace(b'"host": {"name"', b'"host": {"n\\u0061me"')
    assert b"n\\u0061me" in lines[1100]
    (tmp_path / "odd").mkdir()
    odd = _write(tmp_path / "odd", [lines])
    seen: list[tuple[bool, bool]] = []  # (collector on during the block, the block declined)
    feed = batch.StatsScan._feed

    def spy(self: batch.StatsScan, block: Any) -> None:
        try:
            feed(self, block)
        except batch.Declined:
            seen.append((gc.isenabled(), True))
            raise
        seen.append((gc.isenabled(), False))

    monkeypatch.setattr(batch.StatsScan, "_feed", spy)
    counting = Counting()
    monkeypatch.setattr(query_module, "scan_route", counting)
    was = gc.isenabled()
    try:
        (gc.enable if collecting else gc.disable)()
        for paths in (clean, odd):
            run_query(SEED, Dataset.from_files(paths), now=NOW)
            assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()
    assert (counting.asked, counting.answered) == (2, 1)
    assert seen[0] == (False, False)
    assert seen[-1] == (False, True)
