"""Real-time rules in the service: an alert as the crossing batch is committed, and the next
scheduled run updates it in place instead of adding a second one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from conftest import Clock, iso_ms
from reconwatch.rules.builtin import load_builtin
from reconwatch.service.realtime import RealTime, enabled_rules
from reconwatch.service.scheduler import Scheduler
from reconwatch.store import NewEvent, Store

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"


def _scan(at: datetime, first: int, count: int, exe: str = "/tmp/scanner") -> list[NewEvent]:
    out = []
    for i in range(first, first + count):
        t = at + timedelta(milliseconds=200 * i)
        doc = {
            "@timestamp": iso_ms(t),
            "event": {"type": ["start"], "action": "connection_attempted"},
            "host": {"os": {"type": "linux"}, "name": "web-1", "id": "h-1"},
            "agent": {"id": "agent-1"},
            "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1]},
            "source": {"ip": "10.0.0.5"},
            "destination": {"ip": f"10.1.{i // 250}.{i % 250 + 1}", "port": 22},
        }
        out.append(NewEvent("create", NET, None, msgspec.json.encode(doc)))
    return out


@pytest.fixture
def parts(tmp_path: Path):  # type: ignore[no-untyped-def]
    clock = Clock(T0)
    store = Store(tmp_path, clock)
    rule = load_builtin("subnet-scanning")
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    scheduler = Scheduler(store, [rule], clock, evidence=False)
    scheduler.realtime_groups = realtime.groups
    yield clock, store, rule, realtime, scheduler
    realtime.close()
    store.close()


def test_the_crossing_batch_alerts_and_the_scheduled_run_updates_it(parts) -> None:  # type: ignore[no-untyped-def]
    clock, store, rule, realtime, scheduler = parts
    store.write(_scan(T0, 0, 200))
    realtime.drain()
    assert store.alerts(rule.rule_id) == []  # under the threshold
    store.write(_scan(T0, 200, 120))  # the crossing batch
    realtime.drain()
    alerts = store.alerts(rule.rule_id)
    assert len(alerts) == 1
    streamed = alerts[0]
    assert streamed["reconwatch.detection.path"] == "stream"
    assert streamed["process.executable"] == "/tmp/scanner"
    # More of the same scan: the group already alerted, no second real-time alert.
    store.write(_scan(T0, 320, 80))
    realtime.drain()
    assert len(store.alerts(rule.rule_id)) == 1
    # The next scheduled run finds the group again: it updates the alert in place.
    clock.now = T0 + timedelta(minutes=5)
    outcomes = scheduler.tick()
    assert [o.created for o in outcomes] == [[]]
    assert outcomes[0].updated == [streamed["kibana.alert.uuid"]]
    assert outcomes[0].record.alerts == 1
    (after,) = store.alerts(rule.rule_id)
    assert after["kibana.alert.uuid"] == streamed["kibana.alert.uuid"]
    assert after["reconwatch.detection.updated_by"] == "scheduled"
    assert after["kibana.alert.last_detected"] == "2026-03-01T10:05:00.000Z"
    assert streamed["Esql.destination_ip_count_distinct"] == 251  # at the crossing
    assert after["Esql.destination_ip_count_distinct"] == 400  # the whole scan
    # A repeated run of the same window adds nothing either.
    scheduler.run_manual(rule.rule_id, T0 - timedelta(hours=1), T0 + timedelta(minutes=5))
    assert len(store.alerts(rule.rule_id)) == 1


def test_a_restarted_watch_refills_its_window_from_the_store(parts, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _clock, store, rule, realtime, _scheduler = parts
    store.write(_scan(T0, 0, 200))  # before the restart: under the threshold
    realtime.drain()
    fresh = RealTime(store, {rule.rule_id: rule})
    fresh.enable(rule.rule_id)  # the window is read back from the store
    fresh.start()
    store.on_commit = fresh.offer
    store.write(_scan(T0, 200, 100))
    fresh.drain()
    fresh.close()
    assert len(store.alerts(rule.rule_id)) == 1


def test_a_refill_does_not_alert_again_on_a_group_a_run_alerted_on(tmp_path: Path) -> None:
    # `serve --demo` and a restart: the events are stored and a manual run alerts before the
    # real-time rules start; their refill finds the same crossing and must add no alert.
    clock = Clock(T0 + timedelta(minutes=5))
    store = Store(tmp_path, clock)
    rule = load_builtin("subnet-scanning")
    store.write(_scan(T0, 0, 400))
    scheduler = Scheduler(store, [rule], clock, evidence=False)
    outcomes = scheduler.run_manual(rule.rule_id, T0, T0 + timedelta(hours=1))
    assert sum(len(o.created) for o in outcomes) == 1
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)  # the refill reads the crossing back from the store
    scheduler.realtime_groups = realtime.groups
    realtime.start()
    realtime.close()
    (alert,) = store.alerts(rule.rule_id)
    assert alert.get("reconwatch.detection.path") != "stream"
    # A later crossing of the same group, past the run's window, is a new real-time alert.
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    later = T0 + timedelta(hours=3)
    clock.now = later
    store.write(_scan(later, 0, 300))
    realtime.drain()
    realtime.close()
    paths = sorted(str(a.get("reconwatch.detection.path")) for a in store.alerts(rule.rule_id))
    assert paths.count("stream") == 1 and len(paths) == 2
    store.close()


def test_only_aggregating_rules_run_in_real_time_and_the_default_is_the_builtins(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path, Clock(T0))
    rule = load_builtin("subnet-scanning")
    assert enabled_rules(["a", rule.rule_id], {rule.rule_id}, None) == [rule.rule_id]
    assert enabled_rules(["a", "b"], set(), ["*"]) == ["a", "b"]
    assert enabled_rules(["a", "b"], {"a"}, []) == []
    realtime = RealTime(store, {rule.rule_id: rule})
    with pytest.raises(Exception, match="no rule with rule_id"):
        realtime.enable("nope")
    store.close()


def test_the_scheduled_update_refreshes_the_evidence_with_ports_and_the_crossing(
    tmp_path: Path,
) -> None:
    """The real-time alert keeps the stream's evidence only until the next scheduled run: that
    run's evidence (every address, the ports the subnet rule does not count, the crossing
    point found in one pass over the group's events) replaces it."""
    # Ingest stamps finer than the alert's millisecond times, as a real clock's are.
    clock = Clock(T0 + timedelta(microseconds=123_456))
    store = Store(tmp_path, clock)
    rule = load_builtin("subnet-scanning")
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    scheduler = Scheduler(store, [rule], clock, evidence=True)
    scheduler.realtime_groups = realtime.groups
    try:
        store.write(_scan(T0, 0, 320))
        realtime.drain()
        (streamed,) = store.alerts(rule.rule_id)
        assert streamed["reconwatch.evidence"]["destination"]["distinct_ips"] == 251  # at firing
        assert "destination_ports" not in streamed["reconwatch.evidence"]
        # Found right after the alert was stored: the 251st distinct address (i = 250) came
        # 250 * 200 ms after T0 (the stream's trigger time is the batch's ingest time).
        assert streamed["reconwatch.stream.trigger_time"] == "2026-03-01T10:00:00.123Z"
        assert streamed["reconwatch.evidence"]["crossing"]["at"] == "2026-03-01T10:00:50.000Z"
        store.write(_scan(T0, 320, 80))
        realtime.drain()
        clock.now = T0 + timedelta(minutes=5)
        scheduler.tick()
        (after,) = store.alerts(rule.rule_id)
        evidence = after["reconwatch.evidence"]
        assert evidence["destination"]["distinct_ips"] == 400
        assert evidence["destination_ports"] == {
            "distinct": 1,
            "top": [{"port": 22, "events": 400}],
        }
        # > 250 distinct addresses: the 251st (i = 250) came 250 * 200 ms after T0.
        assert evidence["crossing"]["at"] == "2026-03-01T10:00:50.000Z"
    finally:
        realtime.close()
        store.close()


class _Taken:
    """A sink that keeps every document it is handed, in order."""

    name = "taken"

    def __init__(self) -> None:
        self.docs: list[dict[str, object]] = []

    def write(self, alerts) -> None:  # type: ignore[no-untyped-def]
        self.docs.extend(dict(a) for a in alerts)

    def close(self) -> None:
        return None


def test_sinks_get_the_complete_real_time_alert_then_each_update_once(tmp_path: Path) -> None:
    """The sinks take a real-time alert only with its crossing point in its evidence (it is
    stored at once, held from them meanwhile); a later scheduled run that changes it hands the
    new revision to them again under the same id; a run that changes nothing does not."""
    from reconwatch.service.delivery import Delivery

    clock = Clock(T0 + timedelta(microseconds=123_456))
    store = Store(tmp_path, clock)
    rule = load_builtin("subnet-scanning")
    taken = _Taken()
    delivery = Delivery(store, {"taken": taken})
    realtime = RealTime(store, {rule.rule_id: rule}, on_alerts=lambda _n: delivery.deliver())
    held: list[float] = []
    realtime.on_held = held.append
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    scheduler = Scheduler(store, [rule], clock, evidence=True)
    scheduler.realtime_groups = realtime.groups
    try:
        store.write(_scan(T0, 0, 320))
        realtime.drain()
        (first,) = taken.docs
        assert first["reconwatch.evidence"]["crossing"]["at"] == "2026-03-01T10:00:50.000Z"
        assert "reconwatch.alert.revision" not in first
        assert len(held) == 1  # measured: how long the sinks waited for the crossing point
        store.write(_scan(T0, 320, 80))
        realtime.drain()
        clock.now = T0 + timedelta(minutes=5)
        scheduler.tick()
        assert delivery.deliver() == 1
        second = taken.docs[1]
        assert second["kibana.alert.uuid"] == first["kibana.alert.uuid"]
        assert second["reconwatch.alert.revision"] == 1
        assert second["Esql.destination_ip_count_distinct"] == 400
        assert second["reconwatch.detection.updated_by"] == "scheduled"
        assert store.get_alert(str(first["kibana.alert.uuid"]))["reconwatch.alert.revision"] == 1
        # The same window again: only its last_detected would change, nothing is sent.
        scheduler.run_manual(rule.rule_id, T0 - timedelta(minutes=5), T0 + timedelta(minutes=5))
        assert delivery.deliver() == 0
        assert len(taken.docs) == 2
    finally:
        realtime.close()
        delivery.close()
        store.close()


def test_a_held_alert_waits_for_release_and_a_restart_releases_it(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = Store(tmp_path, clock)
    alert = {"kibana.alert.uuid": "a1", "kibana.alert.rule.rule_id": "r", "reconwatch.evidence": {}}
    store.add_group_alerts([alert], [("[]", T0)], held=True)
    assert store.undelivered("s") == []
    assert [a["kibana.alert.uuid"] for a in store.alerts()] == ["a1"]  # the API shows it
    store.close()
    store = Store(tmp_path, clock)  # the process that held it stopped
    assert [i for i, _ in store.undelivered("s")] == ["a1"]
    store.add_group_alerts([{**alert, "kibana.alert.uuid": "a2"}], [("[]", T0)], held=True)
    store.release_alert("a2", "crossing", {"at": "x"})
    pending = dict(store.undelivered("s"))
    assert pending["a2"]["reconwatch.evidence"] == {"crossing": {"at": "x"}}
    store.close()


def test_the_crossing_point_alone_agrees_with_the_whole_evidence(tmp_path: Path) -> None:
    """The real-time path asks only for the crossing point (@timestamp and the counted columns
    of the group's events): the same answer as the whole evidence's `crossing`."""
    from reconwatch.engine.run import RuleExecutor
    from reconwatch.engine.schedule import window_at
    from reconwatch.service.storequery import StoreBackend
    from reconwatch.store.window import window_dataset

    clock = Clock(T0 + timedelta(minutes=2))
    store = Store(tmp_path, clock)
    rule = load_builtin("subnet-scanning")
    try:
        store.write(_scan(T0, 0, 320) + _scan(T0, 0, 100, exe="/usr/bin/other"))
        window = window_at(rule, clock.now)
        dataset = window_dataset(
            store, ("logs-endpoint.events.network-*",), window.start, window.end, None
        )
        executor = RuleExecutor(rule, StoreBackend(store, dataset))
        (alert,) = executor.run(window).alerts
        conditions = executor.source_conditions(window)
        point = executor.finder.crossing_point(alert, conditions, window)
        whole = executor.finder.collect(alert, conditions, window, aggregating=True)
        assert point == whole["crossing"]
        assert point is not None and point["at"] == "2026-03-01T10:00:50.000Z"
    finally:
        store.close()
