"""Rule runs read the store's table where it is (DuckDB SQL), and agree with the documents' path."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from conftest import Clock
from reconwatch.query import run_query
from reconwatch.service.storequery import run_on_store
from reconwatch.store import NewEvent, Store
from reconwatch.store.window import StoredWindow, window_dataset

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"
PATTERNS = ("logs-endpoint.events.network-*",)
START = datetime(2026, 1, 2, 11, 0, tzinfo=UTC)


def _raw(doc: dict[str, object], index: str = NET, id_: str | None = None) -> NewEvent:
    return NewEvent("create", index, id_, msgspec.json.encode(doc))


EVENTS = [
    {
        "@timestamp": "2026-01-02T11:10:00.000Z",
        "host": {"name": "a", "ip": ["10.0.0.2", "10.0.0.1"]},
        "destination": {"ip": "10.0.0.9", "port": 22},
        "event": {"type": ["start"], "action": "connection_attempted"},
        "custom": {"score": 3},
    },
    {
        "@timestamp": "2026-01-02T11:20:00.000Z",
        "host.name": "b",  # dotted spelling
        "destination": {"ip": "10.0.0.10", "port": 80},
        "event": {"type": "start", "action": "connection_attempted"},
        "custom": {"score": 4},
    },
    {
        "@timestamp": "2026-01-02T11:30:00.000Z",
        "host": {"name": "a"},
        "destination": {"ip": "::ffff:10.0.0.11", "port": 443},
        "event": {"type": ["start", "connection"], "action": "connection_attempted"},
    },
    # Outside the window: never read.
    {"@timestamp": "2026-01-02T09:00:00.000Z", "host": {"name": "old"}},
]

QUERIES = [
    (
        "FROM logs-endpoint.events.network-* | STATS n = count(*), ips = count_distinct(destination.ip)"
        " BY host.name | SORT host.name"
    ),
    (
        "FROM logs-endpoint.events.network-* METADATA _id, _index, _version"
        ' | WHERE event.type == "start" | KEEP _id, _index, _version, host.name, destination.port'
        " | SORT destination.port"
    ),
    (
        'FROM logs-endpoint.events.network-* | MV_EXPAND host.ip | WHERE host.ip == "10.0.0.1"'
        " | KEEP host.ip, host.name"
    ),
    "FROM logs-endpoint.events.network-* | EVAL s = custom.score * 2 | KEEP s | SORT s",
    "FROM logs-endpoint.events.network-* | STATS c = count(*)",
]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", Clock(NOW))
    s.write([_raw(e, id_=f"e{i}") for i, e in enumerate(EVENTS)])
    yield s  # type: ignore[misc]
    s.close()


@pytest.mark.parametrize("query", QUERIES)
def test_store_sql_matches_the_documents_path(
    store: Store, query: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The documents' path: a connection without the store's table reads them in Python.
    expected = run_query(query, window_dataset(store, PATTERNS, START, NOW), now=NOW)
    loads: list[str] = []
    real_load = StoredWindow.load

    def counted(self: StoredWindow) -> tuple[list[str], list[object]]:
        loads.append(self.index)
        return real_load(self)

    monkeypatch.setattr(StoredWindow, "load", counted)
    got = run_on_store(store, query, window_dataset(store, PATTERNS, START, NOW), NOW)
    assert [c.name for c in got.columns] == [c.name for c in expected.columns]
    assert [c.type for c in got.columns] == [c.type for c in expected.columns]
    assert sorted(map(repr, got.rows)) == sorted(map(repr, expected.rows))
    assert got.warnings == expected.warnings
    assert got.rows, "the query must find something to compare"
    assert loads == [], "the store's SQL read the events; no document was decoded in Python"


def test_event_outside_the_ecs_types_sends_the_run_to_the_exact_reader(store: Store) -> None:
    # destination.port is a long in ECS: Elasticsearch refuses "ssh" at index time; the
    # validating reader drops that event (its report says so), the SQL path must not count it.
    store.write([_raw({"@timestamp": "2026-01-02T11:40:00.000Z", "destination": {"port": "ssh"}})])
    query = "FROM logs-endpoint.events.network-* | STATS c = count(*)"
    expected = run_query(query, window_dataset(store, PATTERNS, START, NOW), now=NOW)
    got = run_on_store(store, query, window_dataset(store, PATTERNS, START, NOW), NOW)
    assert got.rows == expected.rows == [(3,)]


def test_scheduled_run_reads_the_table(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from reconwatch.rules.builtin import load_builtin
    from reconwatch.service.scheduler import Scheduler

    def refuse(self: StoredWindow) -> tuple[list[str], list[object]]:
        raise AssertionError("a scheduled run decoded the window's documents")

    monkeypatch.setattr(StoredWindow, "load", refuse)
    scheduler = Scheduler(store, [load_builtin("subnet-scanning")], Clock(NOW), evidence=False)
    outcomes = scheduler.tick()
    assert outcomes and all(o.record.error is None for o in outcomes)
