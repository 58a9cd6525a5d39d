"""The service store: Elasticsearch's id/version rules, event.ingested, windows, retention, reopen."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from conftest import Clock
from reconwatch.query import run_query
from reconwatch.store import NewEvent, Store, default_data_dir
from reconwatch.store.db import window_sql
from reconwatch.store.window import window_dataset

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data", Clock(NOW))
    yield s  # type: ignore[misc]
    s.close()


def _ev(
    ts: str | int | None,
    index: str = NET,
    op: str = "create",
    id_: str | None = None,
    **extra: object,
) -> NewEvent:
    source: dict[str, object] = dict(extra)
    if ts is not None:
        source["@timestamp"] = ts
    return NewEvent(op, index, id_, source)


def test_default_data_dir_follows_xdg() -> None:
    assert default_data_dir({"XDG_DATA_HOME": "/srv/xdg", "HOME": "/h"}) == Path(
        "/srv/xdg/reconwatch"
    )
    assert default_data_dir({"XDG_DATA_HOME": "relative", "HOME": "/h"}) == Path(
        "/h/.local/share/reconwatch"
    )
    assert default_data_dir({"HOME": "/h"}) == Path("/h/.local/share/reconwatch")


def test_create_index_versions_and_conflicts(store: Store) -> None:
    out = store.write(
        [
            _ev("2026-01-02T11:00:00Z", id_="a"),
            _ev("2026-01-02T11:00:00Z", id_="a"),  # create on an existing id: 409
            _ev("2026-01-02T11:00:01Z", op="index", id_="a", n=2),  # index replaces it
            _ev("2026-01-02T11:00:02Z"),
        ]
    )
    assert [(w.status, w.result, w.version) for w in out] == [
        (201, "created", 1),
        (409, None, None),
        (200, "updated", 2),
        (201, "created", 1),
    ]
    assert out[1].error_type == "version_conflict_engine_exception"
    assert "current version [1]" in (out[1].reason or "")
    assert len(out[3].id) == 20 and out[3].id != "a"
    # The replaced version is gone, in the same batch and across batches.
    again = store.write([_ev("2026-01-02T11:00:03Z", op="index", id_="a", n=3)])
    assert (again[0].status, again[0].version) == (200, 3)
    docs = {d[1]: d[2] for d in store.documents([NET], None, None)}
    assert docs["a"]["n"] == 3 and len(docs) == 2
    assert store.write([_ev(None, id_="a")])[0].status == 409


def test_event_ingested_stamped_only_where_missing(store: Store) -> None:
    store.write(
        [
            _ev("2026-01-02T11:00:00Z", id_="1"),
            _ev("2026-01-02T11:00:00Z", id_="2", event={"ingested": "2020-01-01T00:00:00.000Z"}),
            _ev("2026-01-02T11:00:00Z", id_="3", event={"kind": "event"}),
        ]
    )
    docs = {d[1]: d[2] for d in store.documents([NET], None, None)}
    assert docs["1"]["event"] == {"ingested": "2026-01-02T12:00:00.000Z"}
    assert docs["2"]["event"] == {"ingested": "2020-01-01T00:00:00.000Z"}
    assert docs["3"]["event"] == {"kind": "event", "ingested": "2026-01-02T12:00:00.000Z"}


def test_bad_timestamp_is_that_items_error(store: Store) -> None:
    out = store.write([_ev("yesterday"), _ev(1767355200000), _ev(True)])
    assert [w.status for w in out] == [400, 201, 400]
    assert out[0].error_type == "document_parsing_exception"
    assert "[@timestamp]" in (out[0].reason or "")
    assert store.count() == 1


def test_window_reads_only_its_time_range_and_indices(store: Store) -> None:
    base = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    store.write([_ev((base + timedelta(minutes=m)).isoformat(), n=m) for m in range(120)])
    store.write([_ev(base.isoformat(), index="logs-endpoint.events.process-default")])
    store.write([_ev(base.isoformat(), index="other")])
    chosen = store.matching_indices(["logs-endpoint.events.network-*"])
    assert chosen == [NET]
    got = [
        d[2]["n"]
        for d in store.documents(chosen, base + timedelta(minutes=30), base + timedelta(minutes=40))
    ]
    # Both bounds inclusive: a superset of any rule window, which the engine filters exactly.
    assert got == list(range(30, 41))
    assert store.matching_indices(["logs-*", "-logs-endpoint.events.process-*"]) == [NET]
    assert store.matching_indices(["logs-*,other"]) == sorted(
        [NET, "logs-endpoint.events.process-default", "other"]
    )


def test_window_read_skips_row_groups_outside_its_range(store: Store) -> None:
    # Events arrive roughly in time order, so each row group holds a narrow ts range and the
    # window's filter skips the others (DuckDB's zone maps). Rows are made in SQL for speed.
    cur = store.cursor()
    cur.execute(
        "INSERT INTO events (seq, idx, id, version, ts, ingested, source, arrived) "
        "SELECT i, ?, i::VARCHAR, 1, TIMESTAMP '2026-01-01' + to_seconds(i),"
        " TIMESTAMP '2026-01-01', '{}', TIMESTAMP '2026-01-01' FROM range(500000) t(i)",
        [NET],
    )
    cur.execute("PRAGMA enable_profiling = 'json'")
    sql, args = window_sql(
        [NET], datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 5, 1, tzinfo=UTC)
    )
    profile = json.loads(cur.execute("EXPLAIN ANALYZE " + sql, args).fetchall()[0][1])
    cur.close()
    query = profile["query"]
    assert query["total_row_groups_to_scan"] >= 4
    assert query["total_row_groups_scanned"] <= 2
    got = list(
        store.documents(
            [NET], datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 5, 1, tzinfo=UTC)
        )
    )
    assert len(got) == 3601


def test_reopen_keeps_events_ids_and_sequence(tmp_path: Path) -> None:
    s = Store(tmp_path, Clock(NOW))
    s.write([_ev("2026-01-02T11:00:00Z", id_="k")])
    s.close()
    s = Store(tmp_path, Clock(NOW))
    out = s.write([_ev("2026-01-02T11:00:00Z", id_="k"), _ev("2026-01-02T11:00:00Z")])
    assert out[0].status == 409
    assert out[1].seq_no == 1
    assert s.indices() == [NET]
    s.close()


def test_retention_deletes_by_arrival_while_ingest_goes_on(tmp_path: Path) -> None:
    clock = Clock(NOW - timedelta(days=10))
    s = Store(tmp_path, clock, retention=timedelta(days=7))
    # Arrived 10 .. 1 days before NOW, one a day; their @timestamp is much older still (a
    # replayed sample): retention goes by arrival, as ILM goes by an index's age.
    for d in range(10, 0, -1):
        clock.now = NOW - timedelta(days=d)
        s.write([_ev("2020-01-01T00:00:00Z", id_=f"d{d}")])
    s.write([_ev(None, id_="undated")])  # arrives at NOW - 1 day too
    clock.now = NOW
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            for i in range(20):
                s.write([_ev(clock.now.isoformat(), n=i)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    writer = threading.Thread(target=ingest)
    writer.start()
    deleted = s.enforce_retention()
    writer.join()
    assert not errors
    # Arrived more than 7 days before NOW: days 10, 9, 8 (day 7 is exactly at the cutoff).
    assert deleted == 3
    left = {d[1] for d in s.documents([NET], None, None)}
    assert {"d1", "d7", "undated"} <= left and "d8" not in left
    assert s.count() == 7 + 1 + 20
    # A deleted client id can be created again.
    assert s.write([_ev(clock.now.isoformat(), id_="d9")])[0].status == 201
    s.close()


def test_window_dataset_keeps_stored_index_and_id(store: Store) -> None:
    store.write(
        [
            _ev("2026-01-02T11:00:00Z", id_="net-1", n=1),
            _ev("2026-01-02T11:00:00Z", index="logs-endpoint.events.process-default", id_="p-1"),
            _ev("2026-01-02T11:30:00Z", index="logs-endpoint.events.network-other", n=2),
            _ev("2026-01-01T11:00:00Z", id_="too-old"),
        ]
    )
    ds = window_dataset(
        store,
        ("logs-endpoint.events.network-*",),
        datetime(2026, 1, 2, 10, 0, tzinfo=UTC),
        datetime(2026, 1, 2, 12, 0, tzinfo=UTC),
    )
    result = run_query(
        "FROM logs-endpoint.events.network-* METADATA _id, _index | KEEP _index, _id, n | SORT n",
        ds,
        now=NOW,
    )
    rows = result.as_dicts()
    assert [(r["_index"], r["n"]) for r in rows] == [
        (NET, 1),
        ("logs-endpoint.events.network-other", 2),
    ]
    assert rows[0]["_id"] == "net-1" and len(str(rows[1]["_id"])) == 20
    # timestamp_override = event.ingested reads by arrival (NOW), not by @timestamp.
    by_arrival = window_dataset(
        store,
        ("logs-endpoint.events.network-*",),
        NOW - timedelta(minutes=1),
        NOW,
        "event.ingested",
    )
    ids = run_query("FROM logs-* METADATA _id | KEEP _id", by_arrival, now=NOW).as_dicts()
    assert len(ids) == 3


def _stored_source(store: Store, doc_id: str) -> dict[str, object]:
    return {d[1]: d[2] for d in store.documents([NET], None, None)}[doc_id]


@pytest.mark.parametrize(
    ("text", "event"),
    [
        (b'{"@timestamp":"2026-01-02T11:00:00Z"}', {"ingested": "2026-01-02T12:00:00.000Z"}),
        (b"{ }", {"ingested": "2026-01-02T12:00:00.000Z"}),
        (
            b'{"event":{"action":"x"},"n":1}',
            {"ingested": "2026-01-02T12:00:00.000Z", "action": "x"},
        ),
        (b'{"event":{}}', {"ingested": "2026-01-02T12:00:00.000Z"}),
        # A nested object's "event" comes first: the top-level one must get the stamp.
        (
            b'{"a":{"event":{"k":1}},"event":{"kind":"event"}}',
            {"ingested": "2026-01-02T12:00:00.000Z", "kind": "event"},
        ),
        (
            b'{"event" : {"kind":"event"}}',
            {"ingested": "2026-01-02T12:00:00.000Z", "kind": "event"},
        ),
        (b'{"event":{"ingested":"2026-01-01T00:00:00Z"}}', {"ingested": "2026-01-01T00:00:00Z"}),
        (b'{"event":"text"}', "text"),
    ],
)
def test_text_sources_are_stored_as_sent_with_event_ingested(
    store: Store, text: bytes, event: object
) -> None:
    out = store.write([NewEvent("create", NET, "t", text)])
    assert out[0].status == 201, out[0]
    doc = _stored_source(store, "t")
    assert doc["event"] == event
    if b'"n"' in text:
        assert doc["n"] == 1
    if b'"a"' in text:
        assert doc["a"] == {"event": {"k": 1}}


def test_text_source_keeps_dotted_ingested_and_reads_the_column(store: Store) -> None:
    store.write(
        [
            NewEvent(
                "create",
                NET,
                "d",
                b'{"@timestamp":1767351600000,"event.ingested":"2026-01-01T10:00:00Z"}',
            )
        ]
    )
    doc = _stored_source(store, "d")
    assert doc == {"@timestamp": 1767351600000, "event.ingested": "2026-01-01T10:00:00Z"}
    cur = store.cursor()
    row = cur.execute("SELECT ts, ingested FROM events WHERE id = 'd'").fetchone()
    cur.close()
    assert row is not None
    stored = (row[0].replace(tzinfo=UTC), row[1].replace(tzinfo=UTC))
    assert stored == (
        datetime(2026, 1, 2, 11, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"a":"\xff"}', "invalid UTF-8"),
        (b"[1,2]", "not a JSON object"),
        (b'{"a":1', "failed to parse"),
        (b'{"@timestamp":"yesterday"}', "failed to parse field [@timestamp]"),
        (b'{"@timestamp":true}', "failed to parse field [@timestamp]"),
    ],
)
def test_bad_text_source_fails_its_item_only(store: Store, text: bytes, reason: str) -> None:
    out = store.write(
        [NewEvent("create", NET, "bad", text), NewEvent("create", NET, "good", b'{"n":1}')]
    )
    assert out[0].status == 400 and out[0].error_type == "document_parsing_exception"
    assert reason in (out[0].reason or "")
    assert out[1].status == 201
    assert store.count() == 1
