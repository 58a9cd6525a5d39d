"""The service's API: alerts (list, get, status), /_query through the official client, health, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from elasticsearch import BadRequestError, Elasticsearch, helpers

from conftest import Clock, iso_ms
from reconwatch.service.app import Limits, Service, build_app, open_service
from reconwatch.service.rules import load_rules
from reconwatch.service.scheduler import Scheduler
from reconwatch.service.server import running
from reconwatch.store import Store

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SUBNET = "860f2a03-a1cf-48d6-a674-c6d62ae608a1"
NET = "logs-endpoint.events.network-default"


def _scan(at: datetime, exe: str) -> list[dict[str, object]]:
    return [
        {
            "_index": NET,
            "_source": {
                "@timestamp": iso_ms(at + timedelta(seconds=i % 200)),
                "event": {
                    "type": ["start"],
                    "action": "connection_attempted",
                    "ingested": iso_ms(at + timedelta(seconds=i % 200)),
                },
                "host": {"os": {"type": "linux"}, "name": "web-1"},
                "agent": {"id": "agent-1"},
                "process": {"executable": exe},
                "destination": {"ip": f"10.3.{i // 250}.{i % 250 + 1}", "port": 22},
            },
        }
        for i in range(260)
    ]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, str, Clock]]:
    clock = Clock(T0 + timedelta(days=1))
    store = Store(tmp_path, clock)
    scheduler = Scheduler(store, list(load_rules([]).rules.values()), clock, evidence=False)
    service = open_service(store, Limits(), scheduler=scheduler)
    with running(build_app(service)) as url:
        yield service, url, clock
    service.close()


def _alerts(url: str) -> list[dict[str, object]]:
    es = Elasticsearch(url)
    helpers.bulk(es, _scan(T0 + timedelta(hours=1, minutes=5), "/tmp/a"))
    helpers.bulk(es, _scan(T0 + timedelta(hours=2, minutes=5), "/tmp/b"))
    body = {"start": iso_ms(T0), "end": iso_ms(T0 + timedelta(hours=3))}
    created: list[dict[str, object]] = httpx.post(
        f"{url}/api/rules/{SUBNET}/_run", json=body, timeout=60
    ).json()["alerts"]
    return created


def test_alerts_list_get_and_status(served: tuple[Service, str, Clock]) -> None:
    _, url, clock = served
    created = _alerts(url)
    assert [a["process.executable"] for a in created] == ["/tmp/a", "/tmp/b"]
    first = str(created[0]["kibana.alert.uuid"])
    listed = httpx.get(url + "/api/alerts").json()
    assert listed["total"] == 2
    assert [a["kibana.alert.workflow_status"] for a in listed["alerts"]] == ["open", "open"]
    got = httpx.get(f"{url}/api/alerts/{first}").json()
    assert got["kibana.alert.uuid"] == first and got["process.executable"] == "/tmp/a"
    clock.now += timedelta(minutes=7)
    r = httpx.post(
        f"{url}/api/alerts/{first}/_status", json={"status": "acknowledged", "user": "alice"}
    )
    assert r.status_code == 200
    doc = r.json()
    assert doc["kibana.alert.workflow_status"] == "acknowledged"
    assert doc["kibana.alert.workflow_user"] == "alice"
    assert doc["kibana.alert.workflow_status_updated_at"] == "2026-03-02T00:07:00.000Z"
    acked = httpx.get(url + "/api/alerts", params={"status": "acknowledged"}).json()
    assert [a["kibana.alert.uuid"] for a in acked["alerts"]] == [first]
    assert httpx.get(url + "/api/alerts", params={"status": "open"}).json()["total"] == 1
    assert httpx.get(url + "/api/alerts", params={"rule_id": "other"}).json()["total"] == 0
    page = httpx.get(url + "/api/alerts", params={"size": "1", "from": "1"}).json()
    assert page["total"] == 2 and len(page["alerts"]) == 1
    assert page["alerts"][0]["process.executable"] == "/tmp/b"
    # A repeated run does not reopen or duplicate it.
    body = {"start": iso_ms(T0), "end": iso_ms(T0 + timedelta(hours=3))}
    httpx.post(f"{url}/api/rules/{SUBNET}/_run", json=body, timeout=60)
    assert (
        httpx.get(f"{url}/api/alerts/{first}").json()["kibana.alert.workflow_status"]
        == "acknowledged"
    )
    assert httpx.get(url + "/api/alerts").json()["total"] == 2


def test_alert_errors_have_one_shape(served: tuple[Service, str, Clock]) -> None:
    _, url, _ = served
    cases = [
        ("GET", "/api/alerts/none", None, 404),
        ("POST", "/api/alerts/none/_status", {"status": "closed", "user": "bob"}, 404),
        ("POST", "/api/alerts/none/_status", {"status": "gone", "user": "bob"}, 400),
        ("POST", "/api/alerts/none/_status", {"status": "closed"}, 400),
        ("GET", "/api/alerts?status=weird", None, 400),
        ("GET", "/api/alerts?size=-1", None, 400),
        ("GET", "/api/alerts?since=soon", None, 400),
    ]
    for method, path, body, status in cases:
        r = httpx.request(method, url + path, json=body)
        assert r.status_code == status, (path, r.text)
        err = r.json()
        assert (
            err["status"] == status
            and err["error"]["root_cause"][0]["type"] == err["error"]["type"]
        )


def test_esql_query_through_the_official_client(served: tuple[Service, str, Clock]) -> None:
    _, url, _ = served
    es = Elasticsearch(url)
    helpers.bulk(es, _scan(T0, "/tmp/a"))
    helpers.bulk(es, [{"_index": "other", "_source": {"@timestamp": iso_ms(T0), "n": 1}}])
    out = es.esql.query(
        query="FROM logs-endpoint.events.network-* | STATS c = COUNT(*), ips = COUNT_DISTINCT(destination.ip), "
        "last = MAX(@timestamp) BY process.executable"
    )
    assert [c["name"] for c in out["columns"]] == ["c", "ips", "last", "process.executable"]
    assert [c["type"] for c in out["columns"]] == ["long", "long", "date", "keyword"]
    assert out["values"] == [[260, 260, "2026-03-01T00:03:19.000Z", "/tmp/a"]]
    assert es.esql.query(query="FROM other | KEEP n")["values"] == [[1]]
    assert es.esql.query(query="ROW a = 1 + 1")["values"] == [[2]]
    with pytest.raises(BadRequestError) as unknown:
        es.esql.query(query="FROM other | KEEP nope")
    assert unknown.value.error == "verification_exception"
    assert "line 1:19" in str(unknown.value.info)
    with pytest.raises(BadRequestError) as broken:
        es.esql.query(query="FROM other | WHERE (")
    assert broken.value.error == "parsing_exception"
    r = httpx.post(url + "/_query", json={"nope": 1})
    assert r.status_code == 400 and r.json()["error"]["type"] == "parsing_exception"


def test_health_and_metrics(served: tuple[Service, str, Clock]) -> None:
    service, url, _ = served
    body = b'{"index":{"_index":"a"}}\n{"n":1}\n{"index":{"_index":"a"}}\n{bad\n'
    assert httpx.post(url + "/_bulk", content=body).json()["errors"] is True
    assert service.scheduler is not None
    service.scheduler.tick()
    health = httpx.get(url + "/api/health").json()
    assert health["status"] == "green"
    assert health["events"] == 1 and health["rules"] == 2
    assert health["write_queue"] == {"depth": 0, "limit": 64}
    text = httpx.get(url + "/metrics").text
    assert "reconwatch_events_ingested_total 1.0" in text
    assert "reconwatch_events_rejected_total 1.0" in text
    assert "reconwatch_write_queue_depth 0.0" in text
    assert (
        f'reconwatch_rule_run_duration_seconds_count{{execution_type="scheduled",rule_id="{SUBNET}"}} 1.0'
        in text
    )
