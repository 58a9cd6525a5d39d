"""New alerts to the configured sinks: each sink at its own pace, a failing one retried, restarts."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx

from reconwatch.errors import OutputError
from reconwatch.service.app import Limits, build_app, open_service
from reconwatch.service.delivery import Delivery
from reconwatch.service.server import running
from reconwatch.store import Store
from reconwatch.store.alerts import RunRecord

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _clock() -> datetime:
    return NOW


def _store_alerts(store: Store, *ids: str) -> None:
    record = RunRecord("r1", NOW, NOW, NOW, "scheduled", len(ids))
    store.add_run(
        record, [{"kibana.alert.uuid": i, "kibana.alert.rule.rule_id": "r1"} for i in ids]
    )


class Flaky:
    """A sink that fails until told to work, remembering what it took."""

    name = "flaky"

    def __init__(self) -> None:
        self.broken = True
        self.taken: list[str] = []

    def write(self, alerts: Sequence[Mapping[str, object]]) -> None:
        if self.broken:
            raise OutputError("flaky: connection refused")
        self.taken.extend(str(a["kibana.alert.uuid"]) for a in alerts)

    def close(self) -> None:
        return None


def _lines(path: Path) -> list[str]:
    return [json.loads(line)["kibana.alert.uuid"] for line in path.read_text().splitlines()]


def test_a_failing_sink_neither_blocks_the_others_nor_loses_alerts(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", _clock)
    out = tmp_path / "alerts.ndjson"
    file_sink = Delivery.open(store, [str(out)], {}).sinks[str(out)]
    flaky = Flaky()
    delivery = Delivery(store, {"file": file_sink, "flaky": flaky})
    failed: list[str] = []
    delivery.on_failure = failed.append
    _store_alerts(store, "a1", "a2")
    assert delivery.deliver() == 2
    assert _lines(out) == ["a1", "a2"]
    assert failed == ["flaky"] and "connection refused" in delivery.last_error["flaky"]
    _store_alerts(store, "a3")
    flaky.broken = False
    assert delivery.deliver() == 4  # a3 to the file; a1, a2, a3 to the recovered sink
    assert _lines(out) == ["a1", "a2", "a3"]
    assert flaky.taken == ["a1", "a2", "a3"]
    assert "flaky" not in delivery.last_error
    assert delivery.deliver() == 0
    delivery.close()
    store.close()


def test_undelivered_alerts_go_out_after_a_restart_and_files_are_appended(tmp_path: Path) -> None:
    out = tmp_path / "alerts.ndjson"
    store = Store(tmp_path / "data", _clock)
    delivery = Delivery.open(store, [str(out)], {})
    _store_alerts(store, "a1")
    delivery.deliver()
    _store_alerts(store, "a2")  # stored, then the process stops before delivering it
    delivery.close()
    store.close()
    store = Store(tmp_path / "data", _clock)
    delivery = Delivery.open(store, [str(out)], {})
    assert delivery.deliver() == 1
    assert _lines(out) == ["a1", "a2"]
    delivery.close()
    store.close()


def test_service_delivers_a_manual_runs_alerts_and_reports_sink_failures(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", _clock)
    flaky = Flaky()
    delivery = Delivery(store, {"flaky": flaky})
    service = open_service(store, Limits(), delivery=delivery)
    try:
        with running(build_app(service)) as url:
            _store_alerts(store, "a1")
            delivery.deliver()
            health = httpx.get(url + "/api/health").json()
            assert health["status"] == "yellow"
            assert health["sinks"]["flaky"]["failures"] == 1
            metrics = httpx.get(url + "/metrics").text
            assert 'reconwatch_sink_failures_total{sink="flaky"} 1.0' in metrics
            flaky.broken = False
            delivery.deliver()
            assert httpx.get(url + "/api/health").json()["status"] == "green"
            assert flaky.taken == ["a1"]
    finally:
        service.close()
