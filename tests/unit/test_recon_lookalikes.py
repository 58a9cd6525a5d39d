"""Small pinned look-alikes of the recon pack's streaming rules: what made the labelled benchmark's false alerts, each with the scan the fix must still find."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconwatch.cli.main import main
from reconwatch.engine.watch import RuleWatch
from reconwatch.plan.documents import flatten
from reconwatch.plan.values import format_datetime
from reconwatch.rules.builtin import load_builtin

START = datetime(2026, 1, 1, tzinfo=UTC)
MONITOR = "/usr/share/agent/components/heartbeat"
NMAP = "/usr/bin/nmap"
# A monitor polling 120 endpoints of one /24 every 10 minutes, nine in ten of them down (a
# subnet being retired): in attempts and outcomes alike its first cycle is a sweep.
ENDPOINTS = [f"10.77.0.{n}" for n in range(10, 130)]


def _event(
    at: datetime, exe: str, ip: str, action: str, outcome: str = "unknown"
) -> dict[str, object]:
    return {
        "@timestamp": format_datetime(at),
        "event": {"action": action, "outcome": outcome, "type": ["start"], "category": ["network"]},
        "host": {"id": "h1", "name": "monitoring-000", "os": {"type": "linux"}},
        "agent": {"id": "a1"},
        "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1], "entity_id": "e1"},
        "destination": {"ip": ip, "port": 443},
        "network": {"transport": "tcp"},
    }


def _probe(at: datetime, exe: str, ip: str, up: bool) -> list[dict[str, object]]:
    """An attempt and the sensor's outcome of it."""
    outcome = "success" if up else "failure"
    return [
        _event(at, exe, ip, "connection_attempted"),
        _event(at, exe, ip, "connection_result", outcome),
    ]


def _monitor(begin: datetime, cycles: int) -> list[dict[str, object]]:
    events = []
    for cycle in range(cycles):
        for i, ip in enumerate(ENDPOINTS):
            at = begin + timedelta(minutes=10 * cycle, seconds=i * 4)
            events += _probe(at, MONITOR, ip, up=i % 10 == 0)
    return events


def _sweep(begin: datetime) -> list[dict[str, object]]:
    """nmap reaching 120 addresses of another /24 once each in 4 minutes, nine in ten silent."""
    return [
        e
        for i in range(120)
        for e in _probe(begin + timedelta(seconds=2 * i), NMAP, f"10.78.0.{i + 1}", up=i % 10 == 0)
    ]


def _ordered(events: list[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(events, key=lambda e: str(e["@timestamp"]))


HISTORY = _monitor(START - timedelta(minutes=40), 4)
LIVE = _ordered(_monitor(START, 3) + _sweep(START + timedelta(minutes=12)))


def _alerted(rule: str, primed: bool) -> set[str]:
    watch = RuleWatch.create(load_builtin(rule), evidence=False)
    if primed:
        watch.prime(flatten(e) for e in HISTORY)
    return {str(a["process.executable"]) for e in LIVE for a in watch.push(flatten(e))}


@pytest.mark.parametrize("rule", ["recon-sweep", "recon-targeted-subnet"])
def test_a_periodic_monitor_of_mostly_down_endpoints_is_quiet_once_the_window_holds_its_past(
    rule: str,
) -> None:
    """The benchmark's Elastic Agent heartbeat (its endpoints mostly down): a stream that
    starts without its past sees the first poll cycle as a sweep; with the history's last
    window-length in the window each endpoint has been polled in several 10-minute slots
    (periodic, no sweep). The real sweep in the same stream is found either way."""
    assert _alerted(rule, primed=False) == {MONITOR, NMAP}
    assert _alerted(rule, primed=True) == {NMAP}


def test_watch_history_fills_the_streaming_rules_windows(tmp_path: Path) -> None:
    """`watch --history` primes the ES|QL rules as it teaches the native detectors."""
    history, live, out = tmp_path / "h.ndjson", tmp_path / "l.ndjson", tmp_path / "a.ndjson"
    history.write_text("".join(json.dumps(e) + "\n" for e in HISTORY))
    live.write_text("".join(json.dumps(e) + "\n" for e in LIVE))
    for extra, expected in (([], {MONITOR, NMAP}), (["--history", str(history)], {NMAP})):
        with pytest.raises(SystemExit) as done:
            main(["watch", "-r", "recon-sweep", *extra, str(live), "-f", "ndjson", "-o", str(out)])
        assert not done.value.code
        alerts = [json.loads(line) for line in out.read_text().splitlines()]
        assert {a["process.executable"] for a in alerts} == expected, extra


APP = "/usr/local/bin/app-server"


def _fan_out(refused: set[int], pending_last: bool) -> list[dict[str, object]]:
    """An app server reaching 42 peers of its /24 once each in an hour (the benchmark's 24 h
    false alerts): refused attempts as a 2 % benign refusal rate makes them, and the crossing
    attempt's own result still in flight when the rule decides."""
    events: list[dict[str, object]] = []
    for i in range(42):
        at = START + timedelta(seconds=80 * i)
        ip = f"10.20.10.{10 + i}"
        events.append(_event(at, APP, ip, "connection_attempted"))
        if not (pending_last and i == 41):
            outcome = "failure" if i in refused else "success"
            events.append(_event(at, APP, ip, "connection_result", outcome))
    return events


def _targeted(answered: int) -> list[dict[str, object]]:
    """nmap probing 40 addresses of one /24 in two minutes, `answered` of them up."""
    begin = START + timedelta(minutes=5)
    return [
        e
        for i in range(40)
        for e in _probe(begin + timedelta(seconds=3 * i), NMAP, f"10.45.7.{10 + i}", i < answered)
    ]


def _targeted_alerts(events: list[dict[str, object]]) -> set[str]:
    watch = RuleWatch.create(load_builtin("recon-targeted-subnet"), evidence=False)
    return {str(a["process.executable"]) for e in events for a in watch.push(flatten(e))}


@pytest.mark.parametrize("refused", [set(), {3, 17, 29, 35}, {3, 11, 17, 23, 29, 35, 40}])
def test_an_app_servers_fan_out_with_a_few_refusals_is_no_targeted_scan(refused: set[int]) -> None:
    """Four or seven of 42 peers refused and the crossing attempt's result pending: 83-90 %
    answered at the crossing, under the 90 % that once marked a fan-out; under half answered
    is a scan's mark (a planted targeted scan is 10 % answered)."""
    assert _targeted_alerts(_fan_out(refused, pending_last=True)) == set()
    assert _targeted_alerts(_fan_out(refused, pending_last=False)) == set()


@pytest.mark.parametrize(("answered", "alerts"), [(0, True), (4, True), (19, True), (20, False)])
def test_a_targeted_scan_alerts_while_under_half_its_addresses_answer(
    answered: int, alerts: bool
) -> None:
    assert _targeted_alerts(_targeted(answered)) == ({NMAP} if alerts else set())
