"""`reconwatch watch`: a scan split across the hour alerts once, in the detect format, from stdin or a file."""

from __future__ import annotations

import json
import re
import select
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconwatch.backends.stream.executor import RealertPolicy
from reconwatch.engine.watch import PATH_FIELD, RuleWatch, lookback_window
from reconwatch.errors import UsageError
from reconwatch.plan import values as v
from reconwatch.plan.documents import flatten
from reconwatch.rules.builtin import load_builtin
from reconwatch.rules.model import Rule

T0 = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)


def scan_lines() -> list[str]:
    lines = []
    for i in range(400):
        ts = T0 + timedelta(minutes=50, seconds=3 * i)
        doc = {
            "@timestamp": v.format_datetime(ts),
            "host": {"os": {"type": "linux"}, "name": "web-1"},
            "event": {"type": "start", "action": "connection_attempted"},
            "process": {"executable": "/usr/bin/nmap"},
            "destination": {"ip": f"10.0.{i // 200}.{i % 200 + 1}"},
            "agent": {"id": "agent-1"},
        }
        lines.append(json.dumps(doc))
    return lines


def _watch(args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    code = "from reconwatch.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, "watch", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_watch_from_stdin_prints_one_alert_with_bad_lines_reported() -> None:
    lines = scan_lines()
    lines.insert(10, "{not json")
    done = _watch(["--rule", "subnet-scanning-seed", "-"], "\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(x) for x in done.stdout.splitlines()]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert[PATH_FIELD] == "stream"
    assert alert["Esql.destination_ip_count_distinct"] == 251
    assert alert["kibana.alert.rule.rule_id"] == "860f2a03-a1cf-48d6-a674-c6d62ae608a1"
    assert alert["@timestamp"] == "2025-07-16T10:02:30.000Z"
    assert "<stdin>:11" in done.stderr and "1 alert(s)" in done.stderr


def test_watch_replays_a_file(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(scan_lines()) + "\n", encoding="utf-8")
    done = _watch(["--rule", "subnet-scanning-seed", str(path), "--stats"])
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1
    assert "groups=1" in done.stderr
    assert "path: micro-batch fast path" in done.stderr and "fast_events=400" in done.stderr


def test_unknown_rule_is_a_usage_error() -> None:
    done = _watch(["--rule", "no-such-rule", "-"])
    assert done.returncode == 2
    assert "no-such-rule" in done.stderr


def test_rule_lookback_is_the_window_without_a_query_time_filter() -> None:
    rule = load_builtin("subnet-scanning")
    window = lookback_window(rule)
    assert window.length_ms == 61 * 60_000
    assert window.time_fields == ("event.ingested", "@timestamp")
    watch = RuleWatch.create(rule)
    assert watch.executor.window == window
    fired = [a for line in scan_lines() for a in watch.push(flatten(json.loads(line)))]
    assert [a["Esql.destination_ip_count_distinct"] for a in fired] == [251]


def _start(args: list[str], stdin: int | None = None) -> subprocess.Popen[str]:
    code = "from reconwatch.cli.main import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "watch", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _next_line(proc: subprocess.Popen[str], limit_s: float = 60.0) -> str:
    """The next stdout line; fails if none comes while the input is still open (a liveness
    bound, not a timing claim)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], limit_s)
    assert ready, "no alert while the input was still open"
    return proc.stdout.readline()


def test_alert_arrives_while_stdin_is_still_open() -> None:
    """Real time: the alert is printed when the crossing line arrives, not at end of input."""
    proc = _start(["--rule", "subnet-scanning-seed", "-"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        proc.stdin.write("\n".join(scan_lines()[:260]) + "\n")
        proc.stdin.flush()
        alert = json.loads(_next_line(proc))
        assert alert["Esql.destination_ip_count_distinct"] == 251
        assert alert["@timestamp"] == "2025-07-16T10:02:30.000Z"
        assert proc.poll() is None  # still reading
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    assert proc.returncode == 0


def test_follow_reads_lines_appended_later(tmp_path: Path) -> None:
    """--follow: lines appended after start (one split across two writes) are read whole."""
    path = tmp_path / "events.ndjson"
    lines = scan_lines()
    path.write_text("\n".join(lines[:100]) + "\n", encoding="utf-8")
    proc = _start(["--rule", "subnet-scanning-seed", str(path), "--follow"])
    try:
        rest = ("\n".join(lines[100:300]) + "\n").encode()
        cut = rest.index(b"destination", len(rest) // 2)  # inside a line
        with path.open("ab") as handle:
            handle.write(rest[:cut])
            handle.flush()  # the watcher may meet end of file mid-line (test_watch_reader
            handle.write(rest[cut:])  # makes sure of it with an injected wait)
        alert = json.loads(_next_line(proc))
        assert alert["Esql.destination_ip_count_distinct"] == 251
        assert alert["@timestamp"] == "2025-07-16T10:02:30.000Z"  # the 251st line: none lost
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.stderr is not None
    assert "Traceback" not in proc.stderr.read()


def test_deeply_nested_line_is_reported_and_the_stream_goes_on(tmp_path: Path) -> None:
    lines = scan_lines()
    lines.insert(5, '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = _watch(["--rule", "subnet-scanning-seed", str(path)])
    assert done.returncode == 0, done.stderr
    assert f"{path}:6:" in done.stderr and "nested deeper than 500 levels" in done.stderr
    assert json.loads(done.stdout)["@timestamp"] == "2025-07-16T10:02:30.000Z"


def test_a_stray_byte_in_a_string_keeps_the_event(tmp_path: Path) -> None:
    """Not UTF-8 inside one value: read with a replacement character, as a text reader would."""
    lines = [line.encode() for line in scan_lines()]
    lines[5] = lines[5].replace(b'"web-1"', b'"web-1\xff"')
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = _watch(["--rule", "subnet-scanning-seed", str(path)])
    assert done.returncode == 0, done.stderr
    alert = json.loads(done.stdout)
    assert alert["@timestamp"] == "2025-07-16T10:02:30.000Z"  # no event lost
    assert sorted(alert["Esql.host_name_values"]) == ["web-1", "web-1\ufffd"]
    assert "0 bad line(s)" in done.stderr


def test_batch_and_stream_keep_the_same_lines_with_stray_bytes(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 (in a value, a key, a cut multi-byte sequence) keep their event in
    `detect` exactly as in `watch`, whichever msgspec release reports them and how."""
    lines = [line.encode() for line in scan_lines()]
    lines[5] = lines[5].replace(b'"web-1"', b'"web-1\xff"')
    lines[6] = lines[6].replace(b'"web-1"', b'"web-1\xc3"')
    lines[7] = lines[7].replace(b'"agent"', b'"agent\xfe"')
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    streamed = _watch(["--rule", "subnet-scanning-seed", str(path)])
    assert streamed.returncode == 0, streamed.stderr
    code = "from reconwatch.cli.main import main; main()"
    run = ["detect", str(path), "--rule", "subnet-scanning-seed", "--now", "2025-07-16T10:10:00Z"]
    batch = subprocess.run(
        [sys.executable, "-c", code, *run, "--format", "ndjson", "--no-evidence"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert batch.returncode == 0, batch.stderr
    (detected,) = [json.loads(x) for x in batch.stdout.splitlines()]
    (alert,) = [json.loads(x) for x in streamed.stdout.splitlines()]
    hosts = ["web-1", "web-1\ufffd"]
    assert sorted(detected["Esql.host_name_values"]) == sorted(alert["Esql.host_name_values"])
    assert sorted(alert["Esql.host_name_values"]) == hosts
    assert detected["Esql.event_count"] == 400
    assert "skipped" not in batch.stderr


def _sweep(start: datetime, count: int, first_ip: int, step_s: float = 0.2) -> list[str]:
    """nmap from web-1 to `count` new addresses, one every `step_s` seconds from `start`."""
    out = []
    for i in range(count):
        n = first_ip + i
        doc = {
            "@timestamp": v.format_datetime(start + timedelta(seconds=step_s * i)),
            "host": {"os": {"type": "linux"}, "name": "web-1"},
            "event": {"type": "start", "action": "connection_attempted"},
            "process": {"executable": "/usr/bin/nmap"},
            "destination": {"ip": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"},
            "agent": {"id": "agent-1"},
        }
        out.append(json.dumps(doc))
    return out


@pytest.mark.slow
def test_a_second_scan_by_the_same_group_an_hour_later_is_a_new_alert(tmp_path: Path) -> None:
    """Simulated fleet over 12 h with two scans by one host 70 minutes apart: detect alerts
    in two runs, and so does watch by default (it used to re-arm only after a whole window
    without matching, and missed the second scan)."""
    from reconwatch.engine.detect import DatasetBackend, Schedule, detect
    from reconwatch.ingest import Dataset
    from reconwatch.rules.builtin import DEFAULT_RULE
    from reconwatch.simulate import Simulation

    start = datetime(2025, 7, 16, tzinfo=UTC)
    sim = Simulation(hosts=12, hours=12, start=start, scans=("subnet", "ipv6"), seed=3)
    lines = [json.dumps(e).encode() for e in sim.events()]
    rule = load_builtin(DEFAULT_RULE)
    watch = RuleWatch.create(rule, evidence=False)
    fired = [a for i in range(0, len(lines), 4096) for a in watch.push_lines(lines[i : i + 4096])]
    path = tmp_path / "fleet.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    # Only the runs around the scans (the others find nothing, and cost seconds).
    runs = Schedule(first=start + timedelta(hours=5), last=start + timedelta(hours=8))
    report = detect([rule], DatasetBackend(Dataset.from_files([path])), runs, evidence=False)
    assert len(report.alerts) == 2
    assert len(fired) == 2
    hosts = {str(a["Esql.host_name_values"]) for a in report.alerts}
    assert {str(a["Esql.host_name_values"]) for a in fired} == hosts
    scans = sorted(p.start for p in sim.planted)
    assert scans[1] - scans[0] > timedelta(hours=1)
    for alert, begins in zip(fired, scans, strict=True):
        assert v.parse_datetime(str(alert["@timestamp"])) - begins < timedelta(minutes=5)


def _short_rule(window: str, interval: str) -> Rule:
    from reconwatch.rules.builtin import DEFAULT_RULE, builtin_text
    from reconwatch.rules.load import load_rule_text

    text = builtin_text(DEFAULT_RULE)
    text = text.replace('from = "now-61m"', f'from = "{window}"')
    text = text.replace('interval = "1h"', f'interval = "{interval}"')
    text = text.replace(
        "@timestamp > now() - 1 hours", f"@timestamp > now() - {window[4:-1]} minutes"
    )
    return load_rule_text(text, "short.toml")


def test_a_group_alerts_at_most_once_per_interval_unless_rearm_is_given() -> None:
    """Window 6 m, interval 10 m (the limit is the window, 6 m): as the first sweep leaves the
    window a fast second one crosses the threshold again 5 m 22 s after the first alert (no
    alert: a group flapping at the threshold), the third 20 minutes after (an alert)."""
    rule = _short_rule("now-6m", "10m")
    base = datetime(2025, 7, 16, 9, tzinfo=UTC)
    lines = (
        _sweep(base, 300, 0)
        + _sweep(base + timedelta(minutes=6, seconds=12), 300, 1000, step_s=0.01)
        + _sweep(base + timedelta(minutes=20), 300, 2000)
    )
    flat = [flatten(json.loads(x)) for x in lines]
    limited = RuleWatch.create(rule, evidence=False)
    times = [a["@timestamp"] for e in flat for a in limited.push(e)]
    assert times == ["2025-07-16T09:00:50.000Z", "2025-07-16T09:20:50.000Z"]
    every = RuleWatch.create(rule, evidence=False, policy=RealertPolicy(rearm_after_ms=0))
    assert len([a for e in flat for a in every.push(e)]) == 3


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (RealertPolicy(growth_factor=0.5), "--realert-growth 0.5: expected a factor greater"),
        (RealertPolicy(growth_factor=float("nan")), "--realert-growth nan"),
        (RealertPolicy(growth_factor=float("inf")), "--realert-growth inf"),
        (RealertPolicy(growth_factor=1.0), "--realert-growth 1.0"),
        (
            RealertPolicy(growth_factor=2, growth_column="nope"),
            "--realert-column nope: rule 'Potential Subnet Scanning",
        ),
        (
            RealertPolicy(growth_factor=2, growth_column="host.name"),
            "--realert-column host.name",
        ),
        (RealertPolicy(growth_column="Esql.event_count"), "only used with --realert-growth"),
    ],
)
def test_growth_realert_that_could_never_fire_is_refused(
    policy: RealertPolicy, message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        RuleWatch.create(load_builtin("subnet-scanning-seed"), policy=policy)


def test_growth_realert_on_a_named_column() -> None:
    watch = RuleWatch.create(
        load_builtin("subnet-scanning-seed"),
        policy=RealertPolicy(growth_factor=2, growth_column="Esql.event_count"),
        evidence=False,
    )
    base = datetime(2025, 7, 16, 9, tzinfo=UTC)
    fired = [a for x in _sweep(base, 600, 0) for a in watch.push(flatten(json.loads(x)))]
    assert [a["reconwatch.stream.repeat"] for a in fired] == [0, 1]
