"""Native detector rules in the service: on schedule over the store, in real time on each committed
batch, exceptions applied, alerts through the store and the sinks, learned state kept across a restart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from conftest import Clock, iso_ms
from reconwatch.rules.builtin import load_builtin
from reconwatch.service.app import build_app
from reconwatch.service.assemble import build
from reconwatch.service.config import ServiceConfig
from reconwatch.service.delivery import SinkSpec
from reconwatch.service.realtime import RealTime
from reconwatch.service.scheduler import Scheduler
from reconwatch.service.server import running
from reconwatch.store import NewEvent, Store
from reconwatch.store import exceptions as exc_store
from reconwatch.store.exceptions import Who

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"
SCANNER = "/tmp/prober"


def _probe(at: datetime, ip: str, ok: bool, exe: str = SCANNER) -> list[dict[str, object]]:
    """A connect() attempt and its outcome, as the sensor ships them (nested ECS)."""
    base = {
        "host": {"name": "web-1", "id": "h-1"},
        "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1], "entity_id": "p-1"},
        "destination": {"ip": ip, "port": 22},
        "network": {"transport": "tcp"},
    }
    attempt = {"@timestamp": iso_ms(at), "event": {"action": "connection_attempted"}, **base}
    result = {
        "@timestamp": iso_ms(at + timedelta(milliseconds=5)),
        "event": {"action": "connection_result", "outcome": "success" if ok else "failure"},
        **base,
    }
    return [attempt, result]


def _events(docs: list[dict[str, object]]) -> list[NewEvent]:
    return [NewEvent("create", NET, None, msgspec.json.encode(d)) for d in docs]


def _failures(at: datetime, first: int, count: int, exe: str = SCANNER) -> list[NewEvent]:
    docs = []
    for i in range(first, first + count):
        docs += _probe(at + timedelta(seconds=i), f"10.2.0.{i + 1}", ok=False, exe=exe)
    return _events(docs)


def test_a_native_rule_runs_on_schedule_over_the_store_once_per_event(tmp_path: Path) -> None:
    """Not real time: the scheduled run hands the detector the events stored since its last
    run (arrival order), the finding is an alert of the window that would have seen it; the
    next run reads only what came since, so nothing is alerted twice."""
    clock = Clock(T0 + timedelta(minutes=1))
    store = Store(tmp_path, clock)
    rule = load_builtin("recon-trw")
    scheduler = Scheduler(store, [rule], clock)
    try:
        store.write(_failures(T0, 0, 3))  # three failed first contacts: a ratio of 64 < 99
        (first,) = scheduler.tick()
        assert first.created == [] and first.record.error is None
        store.write(_failures(T0, 3, 2))  # the fourth decides
        clock.now += rule.interval
        (second,) = scheduler.tick()
        (alert,) = second.created
        assert alert["process.executable"] == SCANNER
        assert alert["reconwatch.trw.failures"] == 4
        assert alert["reconwatch.run.to"] == iso_ms(clock.now)
        assert second.record.gap_ms == 0
        clock.now += rule.interval
        (third,) = scheduler.tick()
        assert third.created == [] and len(store.alerts(rule.rule_id)) == 1
        assert store.detector_state(rule.rule_id) is not None  # saved with the run
    finally:
        store.close()


def test_a_native_rule_in_real_time_alerts_on_the_batch_and_honours_exceptions(
    tmp_path: Path,
) -> None:
    clock = Clock(T0)
    store = Store(tmp_path, clock)
    rule = load_builtin("recon-trw")
    who = Who("analyst", T0)
    store.exceptions(exc_store.create_list, {"list_id": "ok", "name": "ok"}, who)
    entries = [
        {"field": "process.executable", "type": "match", "operator": "included"}
        | {"value": "/usr/bin/allowed"}
    ]
    store.exceptions(exc_store.create_item, "ok", {"name": "i", "entries": entries}, who)
    store.exceptions(exc_store.link, rule.rule_id, ["ok"])
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    try:
        store.write(_failures(T0, 0, 6, exe="/usr/bin/allowed"))  # excepted: never seen
        store.write(_failures(T0, 0, 4))
        realtime.drain()
        (alert,) = store.alerts(rule.rule_id)
        assert alert["process.executable"] == SCANNER
        assert alert["reconwatch.detection.path"] == "native"
        assert realtime.enabled() == [rule.rule_id] and realtime.errors == []
    finally:
        realtime.close()
        store.close()


def test_the_learned_state_survives_a_restart_the_events_do_not_need_to(tmp_path: Path) -> None:
    """Three failed first contacts, then a stop: the walk (ratio 64) is saved in the store.
    The events are then gone (retention), the service restarts, and one more failure decides:
    only a detector restored from the saved state can know the first three."""
    clock = Clock(T0)
    rule = load_builtin("recon-trw")
    store = Store(tmp_path, clock, retention=timedelta(days=1))
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    store.write(_failures(T0, 0, 3))
    realtime.close()  # a clean stop saves the state
    store.close()
    clock.now = T0 + timedelta(days=2)
    store = Store(tmp_path, clock, retention=timedelta(days=1))
    assert store.enforce_retention() == 6 and store.count() == 0
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    try:
        store.write(_failures(clock.now, 3, 1))
        realtime.drain()
        (alert,) = store.alerts(rule.rule_id)
        assert alert["reconwatch.trw.failures"] == 4
    finally:
        realtime.close()
        store.close()


def test_a_crash_replays_the_events_after_the_saved_state_once(tmp_path: Path) -> None:
    """The real-time path saves at most once a minute: after a stop without a save (a crash),
    the restored detector is handed the events stored after its saved one; the alert found
    again has its id, so it is stored once."""
    clock = Clock(T0)
    rule = load_builtin("recon-trw")
    store = Store(tmp_path, clock)
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)  # saved here: nothing seen
    realtime.start()
    store.on_commit = realtime.offer
    store.write(_failures(T0, 0, 4))
    realtime.drain()
    (before,) = store.alerts(rule.rule_id)
    store.on_commit = None
    store.close()  # no realtime.close(): its state is the one saved at enable
    store = Store(tmp_path, clock)
    assert store.detector_state(rule.rule_id)[1] == -1  # type: ignore[index]
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    try:
        (after,) = store.alerts(rule.rule_id)
        assert after["kibana.alert.uuid"] == before["kibana.alert.uuid"]
        assert store.detector_state(rule.rule_id)[1] == 7  # type: ignore[index]
    finally:
        realtime.close()
        store.close()


def test_serve_runs_a_native_rule_from_bulk_to_the_sink(tmp_path: Path) -> None:
    """As a user runs it: `serve --rule recon-trw` with a file sink; _bulk in, the alert in
    GET /api/alerts and in the sink's file, the rule listed as real time."""
    out = tmp_path / "alerts.ndjson"
    config = ServiceConfig(
        data_dir=tmp_path / "data",
        rule=("recon-trw",),
        builtin_rules=False,
        sinks=(SinkSpec(str(out)),),
    )
    service = build(config, Clock(T0))
    service.start_schedule()
    try:
        with running(build_app(service)) as url:
            body = b""
            for event in _failures(T0, 0, 4):
                body += b'{"create": {"_index": "' + NET.encode() + b'"}}\n' + event.source + b"\n"  # type: ignore[operator]
            answer = httpx.post(
                f"{url}/_bulk", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
            assert answer.status_code == 200 and not answer.json()["errors"]
            assert service.realtime is not None
            service.realtime.drain()
            (alert,) = httpx.get(f"{url}/api/alerts").json()["alerts"]
            assert alert["process.executable"] == SCANNER
            page = httpx.get(f"{url}/alerts/{alert['kibana.alert.uuid']}")
            assert page.status_code == 200 and SCANNER in page.text  # the triage UI shows it
            report = httpx.get(f"{url}/alerts/{alert['kibana.alert.uuid']}/report.md")
            assert report.status_code == 200 and SCANNER in report.text
            rules = httpx.get(f"{url}/api/rules").json()
            (listed,) = rules["rules"]
            assert listed["realtime"] is True and rules["failures"] == []
    finally:
        service.close()
    (delivered,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert delivered["kibana.alert.uuid"] == alert["kibana.alert.uuid"]


@pytest.mark.slow  # a 2.5-hour fleet through the store: ~15 s on the shared machine
def test_a_simulated_targeted_scan_alerts_in_the_service_as_in_detect(tmp_path: Path) -> None:
    """The simulator's fleet with a targeted scan and the sensor's outcome events, shipped in
    batches: the real-time TRW rule alerts on the planted scanner and nothing else, as
    `detect` does over the same events (tests/unit/test_native_detectors.py)."""
    from reconwatch.simulate import Simulation

    sim = Simulation(hosts=4, hours=2.5, start=T0, scans=("targeted",), seed=5, outcomes=True)
    clock = Clock(T0 + timedelta(hours=3))
    store = Store(tmp_path, clock)
    rule = load_builtin("recon-trw")
    realtime = RealTime(store, {rule.rule_id: rule})
    realtime.enable(rule.rule_id)
    realtime.start()
    store.on_commit = realtime.offer
    try:
        batch: list[NewEvent] = []
        for event in sim.stream():
            batch.append(NewEvent("create", NET, None, msgspec.json.encode(event)))
            if len(batch) == 1000:
                store.write(batch)
                batch = []
        store.write(batch)
        realtime.drain()
        (planted,) = sim.planted
        (alert,) = store.alerts(rule.rule_id)
        assert alert["host.name"] == planted.host
        assert alert["process.executable"] == planted.executable
        assert alert["reconwatch.trw.attempts"] <= 10
    finally:
        realtime.close()
        store.close()


def test_a_native_rules_alert_suppression_applies_to_its_scheduled_runs(tmp_path: Path) -> None:
    """A native rule file with Kibana's alert_suppression by host: two scanning processes on
    one host in one run are one alert (the other suppressed), as for an ES|QL rule."""
    from reconwatch.rules.builtin import builtin_text
    from reconwatch.rules.load import load_rule_text

    text = builtin_text("recon-trw").replace(
        "[rule.detector]",
        '[rule.alert_suppression]\ngroup_by = ["host.name"]\nmissing_fields_strategy = "suppress"'
        '\n\n[rule.alert_suppression.duration]\nunit = "h"\nvalue = 1\n\n[rule.detector]',
    )
    rule = load_rule_text(text, "suppressed.toml")
    assert rule.native and rule.suppression is not None
    clock = Clock(T0 + timedelta(minutes=1))
    store = Store(tmp_path, clock)
    scheduler = Scheduler(store, [rule], clock)
    try:
        scheduler.tick()  # the first run: nothing stored yet
        store.write(_failures(T0, 0, 4) + _failures(T0, 10, 4, exe="/tmp/other"))
        clock.now += rule.interval
        (outcome,) = scheduler.tick()
        assert len(outcome.created) == 1 and outcome.record.alerts == 1
        (alert,) = store.alerts(rule.rule_id)
        assert alert["kibana.alert.suppression.docs_count"] == 1
    finally:
        store.close()
