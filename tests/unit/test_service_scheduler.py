"""Scheduled rule runs over the store with Kibana's semantics, days of schedule on a stepped clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import Clock, iso_ms
from reconwatch.rules.builtin import load_builtin
from reconwatch.service.scheduler import Scheduler, catch_up
from reconwatch.store import NewEvent, Store

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"


def scan(
    at: datetime, targets: int = 300, exe: str = "/tmp/scanner", index: str = NET
) -> list[NewEvent]:
    """A subnet sweep from one host: `targets` distinct destination IPs within a few minutes."""
    out = []
    for i in range(targets):
        t = at + timedelta(seconds=i % 240)
        source = {
            "@timestamp": iso_ms(t),
            "event": {"type": ["start"], "action": "connection_attempted", "ingested": iso_ms(t)},
            "host": {"os": {"type": "linux"}, "name": "web-1"},
            "agent": {"id": "agent-1"},
            "process": {"executable": exe},
            "destination": {"ip": f"10.1.{i // 250}.{i % 250 + 1}", "port": 22},
        }
        out.append(NewEvent("create", index, None, source))
    return out


@pytest.mark.slow
def test_two_days_of_hourly_runs_alert_once_per_scan(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = Store(tmp_path, clock)
    store.write(scan(T0 + timedelta(hours=5, minutes=10)))
    store.write(scan(T0 + timedelta(hours=30, minutes=2), exe="/usr/bin/nmap"))
    store.write(scan(T0 + timedelta(hours=40), targets=100, exe="/bin/few"))  # under the threshold
    store.write(scan(T0 + timedelta(hours=41), index="other-index", exe="/bin/elsewhere"))
    rule = load_builtin("subnet-scanning-seed")
    scheduler = Scheduler(store, [rule], clock, evidence=False)
    created = []
    for hour in range(49):
        clock.now = T0 + timedelta(hours=hour)
        for outcome in scheduler.tick():
            created.extend(outcome.created)
        # Not due again until one interval later.
        clock.now += timedelta(minutes=30)
        assert scheduler.tick() == []
    execs = sorted(a["process.executable"] for a in created)  # type: ignore[type-var]
    assert execs == ["/tmp/scanner", "/usr/bin/nmap"]
    runs = store.runs(rule.rule_id)
    assert len(runs) == 49
    assert all(r.gap_ms == 0 and r.error is None for r in runs)
    assert [r.alerts for r in runs if r.alerts] == [1, 1]
    assert len(store.alerts(rule.rule_id)) == 2
    alert = store.alerts()[0]
    assert alert["kibana.alert.rule.execution.type"] == "scheduled"
    assert alert["kibana.alert.workflow_status"] == "open"
    store.close()


def test_a_gap_is_caught_up_four_intervals_and_the_rest_reported(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = Store(tmp_path, clock)
    # Covered by the catch-up runs (the last 4 intervals before the late run) ...
    store.write(scan(T0 + timedelta(hours=5, minutes=20)))
    # ... and before them: in the gap nothing covers.
    store.write(scan(T0 + timedelta(hours=2, minutes=20), exe="/usr/bin/nmap"))
    rule = load_builtin("subnet-scanning-seed")
    scheduler = Scheduler(store, [rule], clock, evidence=False)
    scheduler.tick()  # T0
    clock.now = T0 + timedelta(hours=1)
    scheduler.tick()
    clock.now = T0 + timedelta(hours=9)  # 8 hours late: gap = 8h - 61m = 6h59m
    outcomes = scheduler.tick()
    assert [o.record.run_at for o in outcomes] == [T0 + timedelta(hours=h) for h in (5, 6, 7, 8, 9)]
    created = [a["process.executable"] for o in outcomes for a in o.created]
    assert created == ["/tmp/scanner"]
    last = outcomes[-1].record
    assert last.gap_ms == (2 * 3600 + 59 * 60) * 1000
    assert "2h59m (10740000ms) were not queried" in last.warnings[0]
    # A manual run fills the gap; repeating it creates no duplicate.
    filled = scheduler.run_manual(rule.rule_id, T0 + timedelta(hours=1), T0 + timedelta(hours=4))
    assert [a["process.executable"] for o in filled for a in o.created] == ["/usr/bin/nmap"]
    again = scheduler.run_manual(rule.rule_id, T0 + timedelta(hours=1), T0 + timedelta(hours=4))
    assert [o.created for o in again] == [[], [], []]
    assert sum(o.record.alerts for o in again) == 1  # found again, already stored
    assert len(store.alerts()) == 2
    store.close()


def test_a_restarted_scheduler_catches_up_from_the_stored_history(tmp_path: Path) -> None:
    clock = Clock(T0)
    rule = load_builtin("subnet-scanning-seed")
    store = Store(tmp_path, clock)
    Scheduler(store, [rule], clock, evidence=False).tick()
    store.close()
    clock.now = T0 + timedelta(hours=3)
    store = Store(tmp_path, clock)
    scheduler = Scheduler(store, [rule], clock, evidence=False)
    outcomes = scheduler.tick()
    # gap = 3h - 61m = 1h59m: two catch-up windows, nothing left over.
    assert [o.record.run_at for o in outcomes] == [T0 + timedelta(hours=h) for h in (1, 2, 3)]
    assert outcomes[-1].record.gap_ms == 0
    store.close()


def test_catch_up_windows_shift_by_one_interval() -> None:
    rule = load_builtin("subnet-scanning-seed")
    windows, left = catch_up(rule, T0 + timedelta(hours=3), T0 + timedelta(hours=1, minutes=30))
    # gap = 1h30m - 61m = 29m: one catch-up window
    assert [(w.start, w.end) for w in windows] == [
        (T0 + timedelta(minutes=59), T0 + timedelta(hours=2)),
        (T0 + timedelta(hours=1, minutes=59), T0 + timedelta(hours=3)),
    ]
    assert left == timedelta(0)
