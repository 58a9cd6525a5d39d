"""The service's rules: built-ins and a rules directory, manual runs over HTTP, the schedule thread."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from elasticsearch import Elasticsearch, helpers

from conftest import Clock, iso_ms
from reconwatch.rules.builtin import builtin_text
from reconwatch.service.app import Limits, Service, build_app, open_service
from reconwatch.service.rules import load_rules
from reconwatch.service.scheduler import Scheduler
from reconwatch.service.server import running
from reconwatch.store import Store

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
SUBNET = "860f2a03-a1cf-48d6-a674-c6d62ae608a1"
PORT = "6b341d03-1d63-41ac-841a-2009c86959ca"


def _scan_actions(at: datetime, exe: str = "/tmp/scanner") -> list[dict[str, object]]:
    """A sweep shipped again from an earlier pipeline: it carries its own event.ingested (the
    time the rules read by), which the store keeps."""
    return [
        {
            "_index": "logs-endpoint.events.network-default",
            "_source": {
                "@timestamp": iso_ms(at + timedelta(seconds=i % 200)),
                "event": {
                    "type": ["start"],
                    "action": "connection_attempted",
                    "category": ["network"],
                    "ingested": iso_ms(at + timedelta(seconds=i % 200)),
                },
                "host": {"os": {"type": "linux"}, "name": "web-1"},
                "agent": {"id": "agent-1"},
                "process": {"executable": exe, "name": exe.rsplit("/", 1)[-1]},
                "destination": {"ip": f"10.2.{i // 250}.{i % 250 + 1}", "port": 22},
                "source": {"ip": "10.0.0.5"},
            },
        }
        for i in range(300)
    ]


def test_builtins_and_a_directory_with_a_broken_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "broken.toml").write_text(
        '[metadata]\ncreation_date = "2024/01/01"\n[rule]\nname = "x"\n'
    )
    (rules / "not-toml.toml").write_text("this is = = not toml")
    seed = builtin_text("subnet-scanning-seed")
    (rules / "seed.toml").write_text(seed)
    (rules / "seed-again.toml").write_text(seed)
    loaded = load_rules([rules])
    assert sorted(loaded.rules) == sorted([SUBNET, PORT])
    # The directory's version of the subnet rule replaced the built-in one.
    assert loaded.rules[SUBNET].path.endswith("seed-again.toml")
    failures = "\n".join(loaded.failures)
    assert len(loaded.failures) == 3
    assert "broken.toml: rule." in failures
    assert "not-toml.toml" in failures
    assert "seed.toml: rule.rule_id: 860f2a03" in failures and "already loaded" in failures
    only = load_rules([rules], builtin=False)
    assert list(only.rules) == [SUBNET]
    assert load_rules([], builtin=False).rules == {}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Service, str, Clock]]:
    clock = Clock(T0 + timedelta(days=1))
    store = Store(tmp_path / "data", clock)
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "broken.toml").write_text("[rule]\n")
    loaded = load_rules([rules_dir])
    scheduler = Scheduler(store, list(loaded.rules.values()), clock, evidence=True)
    service = open_service(store, Limits(), scheduler=scheduler, rule_failures=loaded.failures)
    with running(build_app(service)) as url:
        yield service, url, clock
    service.close()


def test_manual_run_returns_the_alerts_it_created(served: tuple[Service, str, Clock]) -> None:
    service, url, _ = served
    es = Elasticsearch(url)
    helpers.bulk(es, _scan_actions(T0 + timedelta(hours=3, minutes=5)))
    body = {"start": iso_ms(T0), "end": iso_ms(T0 + timedelta(hours=6))}
    r = httpx.post(f"{url}/api/rules/{SUBNET}/_run", json=body, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert len(out["runs"]) == 6
    assert all(run["execution_type"] == "manual" for run in out["runs"])
    assert [a["process.executable"] for a in out["alerts"]] == ["/tmp/scanner"]
    alert = out["alerts"][0]
    assert alert["kibana.alert.rule.rule_id"] == SUBNET
    assert alert["kibana.alert.rule.execution.type"] == "manual"
    # The same range again: the same alert ids, nothing created.
    again = httpx.post(f"{url}/api/rules/{SUBNET}/_run", json=body, timeout=60).json()
    assert again["alerts"] == []
    assert sum(run["alerts"] for run in again["runs"]) == 1
    assert len(service.store.alerts(SUBNET)) == 1


def test_event_ingested_stamped_at_ingest_is_the_time_rules_read(
    served: tuple[Service, str, Clock],
) -> None:
    _, url, clock = served
    actions = _scan_actions(T0 + timedelta(hours=3, minutes=5))
    for action in actions:
        del action["_source"]["event"]["ingested"]  # type: ignore[index]
    helpers.bulk(Elasticsearch(url), actions)
    # The rule reads by event.ingested (timestamp_override): the events arrived at clock.now,
    # so the hours of their @timestamp find nothing and the hour of their arrival finds them.
    old = {"start": iso_ms(T0), "end": iso_ms(T0 + timedelta(hours=6))}
    assert httpx.post(f"{url}/api/rules/{SUBNET}/_run", json=old, timeout=60).json()["alerts"] == []
    new = {
        "start": iso_ms(clock.now - timedelta(minutes=30)),
        "end": iso_ms(clock.now + timedelta(minutes=30)),
    }
    out = httpx.post(f"{url}/api/rules/{SUBNET}/_run", json=new, timeout=60).json()
    assert [a["process.executable"] for a in out["alerts"]] == ["/tmp/scanner"]


def test_manual_run_errors_have_one_shape(served: tuple[Service, str, Clock]) -> None:
    _, url, _ = served
    cases = [
        ("/api/rules/nope/_run", {"start": iso_ms(T0), "end": iso_ms(T0)}, 404),
        (f"/api/rules/{SUBNET}/_run", {"start": "yesterday", "end": iso_ms(T0)}, 400),
        (f"/api/rules/{SUBNET}/_run", {"start": iso_ms(T0)}, 400),
        (f"/api/rules/{SUBNET}/_run", {"start": iso_ms(T0), "end": iso_ms(T0)}, 400),
    ]
    for path, body, status in cases:
        r = httpx.post(url + path, json=body)
        assert r.status_code == status, (path, body, r.text)
        err = r.json()
        assert err["status"] == status
        assert err["error"]["root_cause"][0]["reason"] == err["error"]["reason"]
    r = httpx.post(f"{url}/api/rules/{SUBNET}/_run", content=b"{not json")
    assert r.status_code == 400 and "not JSON" in r.json()["error"]["reason"]


def test_rules_list_reports_broken_files_and_runs(served: tuple[Service, str, Clock]) -> None:
    service, url, _ = served
    assert service.scheduler is not None
    service.scheduler.tick()
    out = httpx.get(url + "/api/rules").json()
    assert sorted(r["rule_id"] for r in out["rules"]) == sorted([SUBNET, PORT])
    subnet = next(r for r in out["rules"] if r["rule_id"] == SUBNET)
    assert subnet["interval"] == "1h"
    assert subnet["last_run"]["run_at"] == "2026-03-02T00:00:00.000Z"
    assert subnet["next_run"] == "2026-03-02T01:00:00.000Z"
    assert len(out["failures"]) == 1 and "broken.toml" in out["failures"][0]


def test_schedule_thread_runs_due_rules(tmp_path: Path) -> None:
    clock = Clock(T0)
    store = Store(tmp_path, clock)
    loaded = load_rules([])
    scheduler = Scheduler(store, list(loaded.rules.values()), clock, evidence=False)
    service = open_service(store, Limits(), scheduler=scheduler)
    try:
        service.start_schedule()
        assert service.loop is not None
        for _ in range(6000):  # bounded (60 s): the first runs are due at once
            if all(store.runs(rule_id) for rule_id in loaded.rules):
                break
            service.loop._stop.wait(0.01)
        assert all(len(store.runs(rule_id)) == 1 for rule_id in loaded.rules)
    finally:
        service.close()


def test_shared_rules_directory_loads(tmp_path: Path) -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "rules"
    if not shared.is_dir():
        pytest.skip("shared rules not available")
    shutil.copytree(shared, tmp_path / "rules")
    loaded = load_rules([tmp_path / "rules"], builtin=False)
    # Every file either loads or is reported with its file name: none is lost silently.
    files = sorted((tmp_path / "rules").rglob("*.toml"))
    assert len(loaded.rules) + len(loaded.failures) == len(files)
    # One line per unusable file, naming it, a field and the reason.
    for line in loaded.failures:
        path, field, reason = line.split(": ", 2)
        assert Path(path).is_file() and field.startswith("rule.") and reason
