"""The triage API: exceptions (CRUD, Kibana import, from an alert) applied to the next runs,
rule enable/disable and real time, bulk status with who and when, guide checklists."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import Clock, iso_ms
from reconwatch.rules.builtin import builtin_text
from reconwatch.service.app import Limits, Service, build_app, open_service
from reconwatch.service.realtime import RealTime
from reconwatch.service.rules import load_rules
from reconwatch.service.scheduler import Scheduler
from reconwatch.service.server import running
from reconwatch.store import NewEvent, Store

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SUBNET = "860f2a03-a1cf-48d6-a674-c6d62ae608a1"
PORTS = "6b341d03-1d63-41ac-841a-2009c86959ca"
NET = "logs-endpoint.events.network-default"


def scan(at: datetime, exe: str, agent: str = "agent-1", net: int = 3) -> list[NewEvent]:
    """260 connection attempts to distinct addresses within 200 s: one subnet-scan alert."""
    out = []
    for i in range(260):
        t = iso_ms(at + timedelta(seconds=i % 200))
        out.append(
            NewEvent(
                "create",
                NET,
                None,
                {
                    "@timestamp": t,
                    "event": {"type": ["start"], "action": "connection_attempted", "ingested": t},
                    "host": {"os": {"type": "linux"}, "name": "web-1"},
                    "agent": {"id": agent},
                    "process": {"executable": exe, "pid": 42},
                    "destination": {"ip": f"10.{net}.{i // 250}.{i % 250 + 1}", "port": 22},
                },
            )
        )
    return out


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, str, Clock]]:
    clock = Clock(T0 + timedelta(days=1))
    store = Store(tmp_path, clock)
    scheduler = Scheduler(store, list(load_rules([]).rules.values()), clock, evidence=False)
    service = open_service(store, Limits(), scheduler=scheduler)
    with running(build_app(service)) as url:
        yield service, url, clock
    service.close()


def run(url: str, start: datetime, end: datetime, rule: str = SUBNET) -> list[dict[str, object]]:
    body = {"start": iso_ms(start), "end": iso_ms(end)}
    answer = httpx.post(f"{url}/api/rules/{rule}/_run", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    alerts: list[dict[str, object]] = answer.json()["alerts"]
    return alerts


def test_exception_lists_and_items_crud(served: tuple[Service, str, Clock]) -> None:
    _, url, _ = served
    made = httpx.post(
        f"{url}/api/exceptions", json={"list_id": "ops", "name": "Ops", "user": "ann"}
    )
    assert made.status_code == 200 and made.json()["created_by"] == "ann"
    again = httpx.post(f"{url}/api/exceptions", json={"list_id": "ops", "name": "x", "user": "a"})
    assert again.status_code == 409
    entry = {"field": "process.executable", "type": "match", "operator": "included", "value": "/x"}
    item = httpx.post(
        f"{url}/api/exceptions/ops/items",
        json={"item_id": "i1", "name": "x", "entries": [entry], "user": "bob"},
    )
    assert item.status_code == 200 and item.json()["entries"] == [entry]
    bad = httpx.post(
        f"{url}/api/exceptions/ops/items",
        json={"name": "y", "entries": [{"field": "a", "type": "match"}], "user": "bob"},
    )
    assert bad.status_code == 400 and "entries[0].value" in bad.json()["error"]["reason"]
    changed = httpx.put(
        f"{url}/api/exceptions/ops/items/i1",
        json={"name": "renamed", "comments": [{"comment": "why"}], "user": "cy"},
    )
    assert changed.json()["name"] == "renamed" and changed.json()["updated_by"] == "cy"
    assert changed.json()["comments"][0]["created_by"] == "cy"
    # an item is found only under its own list, by every method
    elsewhere = f"{url}/api/exceptions/other/items/i1"
    for answer in (
        httpx.get(elsewhere),
        httpx.put(elsewhere, json={"name": "x", "user": "cy"}),
        httpx.delete(elsewhere),
    ):
        assert answer.status_code == 404
        assert 'item id: "i1" does not exist' in answer.json()["error"]["reason"]
    listed = httpx.get(f"{url}/api/exceptions").json()["data"]
    assert [(x["list_id"], x["item_count"]) for x in listed] == [("ops", 1)]
    assert httpx.put(f"{url}/api/exceptions/ops", json={"name": "Ops 2", "user": "d"}).json()[
        "name"
    ] == ("Ops 2")
    assert httpx.delete(f"{url}/api/exceptions/ops/items/i1").status_code == 200
    assert httpx.get(f"{url}/api/exceptions/ops/items/i1").status_code == 404
    assert httpx.delete(f"{url}/api/exceptions/ops").status_code == 200
    missing = httpx.get(f"{url}/api/exceptions/ops")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == (
        "resource_not_found_exception"
    )


KIBANA_EXPORT = "\n".join(
    json.dumps(x)
    for x in [
        {
            "list_id": "scanners",
            "name": "Approved scanners",
            "description": "vulnerability scanners",
            "type": "detection",
            "namespace_type": "single",
            "tags": [],
            "version": 1,
        },
        {
            "item_id": "nessus",
            "list_id": "scanners",
            "name": "nessus agent",
            "type": "simple",
            "namespace_type": "single",
            "comments": [],
            "entries": [
                {
                    "field": "process.executable",
                    "operator": "included",
                    "type": "match_any",
                    "value": ["/opt/nessus/sbin/nessusd", "/tmp/a"],
                }
            ],
        },
        {
            "exported_exception_list_count": 1,
            "exported_exception_list_item_count": 1,
            "missing_exception_list_item_count": 0,
            "missing_exception_list_items": [],
            "missing_exception_lists": [],
            "missing_exception_lists_count": 0,
        },
    ]
)


def test_kibana_import_applies_to_the_linked_rule(served: tuple[Service, str, Clock]) -> None:
    service, url, _ = served
    service.store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/a"))
    service.store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/b", net=4))
    answer = httpx.post(
        f"{url}/api/exceptions/_import?rule_id={SUBNET}&user=ann",
        content=KIBANA_EXPORT + "\nnot json\n",
    )
    body = answer.json()
    assert body["success_count_exception_lists"] == 1
    assert body["success_count_exception_list_items"] == 1
    assert [e["error"]["message"] for e in body["errors"]] == [
        "line 4: not JSON: JSON is malformed: invalid character (byte 4)"
    ]
    rules = {r["rule_id"]: r for r in httpx.get(f"{url}/api/rules").json()["rules"]}
    assert rules[SUBNET]["exceptions_list"] == ["scanners"]
    alerts = run(url, T0, T0 + timedelta(hours=2))
    assert [a["process.executable"] for a in alerts] == ["/tmp/b"]
    assert alerts[0]["kibana.alert.rule.exceptions_list"] == [
        {"id": "scanners", "list_id": "scanners", "type": "detection", "namespace_type": "single"}
    ]
    again = httpx.post(f"{url}/api/exceptions/_import", content=KIBANA_EXPORT).json()
    assert [e["error"]["status_code"] for e in again["errors"]] == [409, 409]
    over = httpx.post(f"{url}/api/exceptions/_import?overwrite=true", content=KIBANA_EXPORT)
    assert over.json()["success"] is True


def test_expired_item_is_not_applied(served: tuple[Service, str, Clock]) -> None:
    service, url, clock = served
    service.store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/a"))
    entry = {
        "field": "process.executable",
        "type": "match",
        "operator": "included",
        "value": "/tmp/a",
    }
    httpx.post(f"{url}/api/exceptions", json={"list_id": "l", "name": "l", "user": "a"})
    httpx.post(
        f"{url}/api/exceptions/l/items",
        json={"name": "old", "entries": [entry], "user": "a", "expire_time": iso_ms(clock.now)},
    )
    assert (
        httpx.patch(f"{url}/api/rules/{SUBNET}", json={"exceptions_list": ["l"]}).status_code == 200
    )
    assert len(run(url, T0, T0 + timedelta(hours=2))) == 1
    # A value-list entry (Kibana's "is in list") is refused by name, not as an unknown type.
    listed = {"field": "source.ip", "type": "list", "operator": "included", "list": {"id": "x"}}
    refused = httpx.post(
        f"{url}/api/exceptions/l/items", json={"name": "v", "entries": [listed], "user": "a"}
    )
    assert refused.status_code == 400 and "value-list entries" in refused.text


def test_exception_from_alert_closes_matching_and_next_run_is_quiet(
    served: tuple[Service, str, Clock],
) -> None:
    service, url, _ = served
    service.store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/a"))
    service.store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/b", net=4))
    first = {a["process.executable"]: a for a in run(url, T0, T0 + timedelta(hours=2))}
    alert_id = first["/tmp/a"]["kibana.alert.uuid"]
    entries = [
        {"field": "process.executable", "type": "match", "operator": "included", "value": "/tmp/a"},
        {"field": "agent.id", "type": "match", "operator": "included", "value": "agent-1"},
    ]
    made = httpx.post(
        f"{url}/api/alerts/{alert_id}/_exception",
        json={"entries": entries, "user": "ann", "close_matching": True},
    ).json()
    assert made["list_id"] == f"{SUBNET}-default" and made["closed"] == [alert_id]
    closed = httpx.get(f"{url}/api/alerts/{alert_id}").json()
    assert closed["kibana.alert.workflow_status"] == "closed"
    assert closed["kibana.alert.workflow_user"] == "ann"
    other = httpx.get(f"{url}/api/alerts/{first['/tmp/b']['kibana.alert.uuid']}").json()
    assert other["kibana.alert.workflow_status"] == "open"
    # The same scan again, later: the exception keeps /tmp/a out, /tmp/b alerts again.
    service.store.write(scan(T0 + timedelta(hours=3, minutes=5), "/tmp/a"))
    service.store.write(scan(T0 + timedelta(hours=3, minutes=5), "/tmp/b", net=4))
    later = run(url, T0 + timedelta(hours=3), T0 + timedelta(hours=4))
    assert [a["process.executable"] for a in later] == ["/tmp/b"]
    # A shared list instead: it must exist, and is linked to the rule.
    other_id = first["/tmp/b"]["kibana.alert.uuid"]
    to = {"entries": entries[:1], "user": "ann", "list_id": "shared"}
    refused = httpx.post(f"{url}/api/alerts/{other_id}/_exception", json=to)
    assert refused.status_code == 400 and "does not exist" in refused.json()["error"]["reason"]
    httpx.post(f"{url}/api/exceptions", json={"list_id": "shared", "name": "s", "user": "a"})
    made = httpx.post(f"{url}/api/alerts/{other_id}/_exception", json=to).json()
    assert made["list_id"] == "shared" and made["closed"] == []
    rules = {r["rule_id"]: r for r in httpx.get(f"{url}/api/rules").json()["rules"]}
    assert rules[SUBNET]["exceptions_list"] == [f"{SUBNET}-default", "shared"]
    missing = httpx.post(
        f"{url}/api/alerts/nope/_exception", json={"entries": entries, "user": "a"}
    )
    assert missing.status_code == 404


def test_disabled_rule_skips_scheduled_runs_and_restarts_without_a_gap(
    served: tuple[Service, str, Clock],
) -> None:
    service, url, clock = served
    scheduler = service.scheduler
    assert scheduler is not None
    scheduler.tick()
    off = httpx.patch(f"{url}/api/rules/{SUBNET}", json={"enabled": False, "realtime": False})
    assert off.json() == {
        "rule_id": SUBNET,
        "enabled": False,
        "realtime": False,
        "exceptions_list": [],
    }
    clock.now += timedelta(hours=5)
    ran = {o.record.rule_id for o in scheduler.tick()}
    assert ran == {PORTS}
    httpx.patch(f"{url}/api/rules/{SUBNET}", json={"enabled": True})
    back = [o.record for o in scheduler.tick() if o.record.rule_id == SUBNET]
    assert [(r.execution_type, r.gap_ms) for r in back] == [("scheduled", 0)]
    listed = {r["rule_id"]: r for r in httpx.get(f"{url}/api/rules").json()["rules"]}
    assert listed[SUBNET]["enabled"] is True and listed[SUBNET]["realtime"] is False
    assert listed[PORTS]["realtime"] is True  # built-in scan rules are real time by default
    bad = httpx.patch(f"{url}/api/rules/{SUBNET}", json={"enabled": "yes"})
    assert bad.status_code == 400
    assert httpx.patch(f"{url}/api/rules/nope", json={"enabled": True}).status_code == 404


def test_bulk_status_and_guide_steps_keep_who_and_when(
    served: tuple[Service, str, Clock],
) -> None:
    service, url, clock = served
    service.store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/a"))
    service.store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/b", net=4))
    ids = [str(a["kibana.alert.uuid"]) for a in run(url, T0, T0 + timedelta(hours=2))]
    answer = httpx.post(
        f"{url}/api/alerts/_status",
        json={"ids": [*ids, "nope"], "status": "acknowledged", "user": "ann"},
    ).json()
    assert sorted(answer["updated"]) == sorted(ids) and answer["not_found"] == ["nope"]
    listed = httpx.get(f"{url}/api/alerts?status=acknowledged").json()
    assert listed["total"] == 2 and listed["counts"] == {"open": 0, "acknowledged": 2, "closed": 0}
    assert {a["kibana.alert.workflow_user"] for a in listed["alerts"]} == {"ann"}
    assert {a["kibana.alert.workflow_status_updated_at"] for a in listed["alerts"]} == {
        iso_ms(clock.now)
    }
    step = httpx.post(
        f"{url}/api/alerts/{ids[0]}/guide", json={"step": 2, "done": True, "user": "bob"}
    ).json()
    assert step["steps"] == {"2": {"done": True, "by": "bob", "at": iso_ms(clock.now)}}
    assert httpx.get(f"{url}/api/alerts/{ids[1]}/guide").json() == {"steps": {}}
    # The subnet rule's guide has 5 investigation steps: a 6th (its response list) is no step.
    beyond = httpx.post(
        f"{url}/api/alerts/{ids[0]}/guide", json={"step": 5, "done": True, "user": "bob"}
    )
    assert beyond.status_code == 400 and "[step] must be below 5" in beyond.text
    bad = httpx.post(f"{url}/api/alerts/_status", json={"ids": ids, "status": "gone", "user": "a"})
    assert bad.status_code == 400


def test_a_rule_files_exceptions_list_is_applied(tmp_path: Path) -> None:
    """A rule file's own `exceptions_list` (Kibana's rule field) names lists of the store."""
    text = builtin_text("subnet-scanning").replace(
        "[rule]\n",
        '[rule]\nexceptions_list = [{id = "ops", list_id = "ops", type = "detection",'
        ' namespace_type = "single"}]\n',
        1,
    )
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "subnet.toml").write_text(text, "utf-8")
    clock = Clock(T0 + timedelta(days=1))
    store = Store(tmp_path / "store", clock)
    loaded = load_rules([rules_dir], builtin=False)
    assert not loaded.failures
    scheduler = Scheduler(store, list(loaded.rules.values()), clock, evidence=False)
    service = open_service(store, Limits(), scheduler=scheduler)
    with running(build_app(service)) as url:
        store.write(scan(T0 + timedelta(hours=1, minutes=5), "/tmp/a"))
        assert len(run(url, T0, T0 + timedelta(hours=2))) == 1  # no list "ops" yet: no exception
        entry = {"field": "agent.id", "type": "match", "operator": "included", "value": "agent-1"}
        httpx.post(f"{url}/api/exceptions", json={"list_id": "ops", "name": "ops", "user": "a"})
        httpx.post(
            f"{url}/api/exceptions/ops/items", json={"name": "i", "entries": [entry], "user": "a"}
        )
        store.write(scan(T0 + timedelta(hours=3, minutes=5), "/tmp/a"))
        assert run(url, T0 + timedelta(hours=3), T0 + timedelta(hours=4)) == []
        listed = httpx.get(f"{url}/api/rules").json()["rules"][0]
        assert listed["exceptions_list"] == ["ops"]
    service.close()


def test_real_time_applies_exceptions_and_stops_with_a_disabled_rule(tmp_path: Path) -> None:
    """The real-time watch drops the events an exception item matches, as the scheduled run's
    query does; a disabled rule is not watched, and is watched again once enabled."""
    clock = Clock(T0 + timedelta(hours=1))
    store = Store(tmp_path, clock)
    rules = load_rules([]).rules
    scheduler = Scheduler(store, list(rules.values()), clock, evidence=False)
    realtime = RealTime(store, rules)
    realtime.enable(SUBNET)
    realtime.start()
    store.on_commit = realtime.offer
    service = open_service(store, Limits(), scheduler=scheduler, realtime=realtime)
    with running(build_app(service)) as url:
        entry = {
            "field": "process.executable",
            "type": "match",
            "operator": "included",
            "value": "/tmp/a",
        }
        httpx.post(f"{url}/api/exceptions", json={"list_id": "l", "name": "l", "user": "a"})
        httpx.post(
            f"{url}/api/exceptions/l/items", json={"name": "a", "entries": [entry], "user": "a"}
        )
        httpx.patch(f"{url}/api/rules/{SUBNET}", json={"exceptions_list": ["l"]})
        store.write(scan(T0 + timedelta(minutes=5), "/tmp/a"))
        store.write(scan(T0 + timedelta(minutes=5), "/tmp/b", net=4))
        realtime.drain()
        assert [a["process.executable"] for a in store.alerts(SUBNET)] == ["/tmp/b"]
        off = httpx.patch(f"{url}/api/rules/{SUBNET}", json={"enabled": False}).json()
        assert off["enabled"] is False and SUBNET not in realtime.enabled()
        on = httpx.patch(f"{url}/api/rules/{SUBNET}", json={"enabled": True}).json()
        assert on["enabled"] is True and on["realtime"] is True
    service.close()
