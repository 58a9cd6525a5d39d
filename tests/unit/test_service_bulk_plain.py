"""The `_bulk` paths for a shipper's body (bulk._parse_uniform, events._plan_plain) give exactly
what the line-by-line and event-by-event paths give, and hand every other body to them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from reconwatch.service import bulk
from reconwatch.store import NewEvent
from reconwatch.store import events as store_events

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"
DOC = b'{"@timestamp":"2026-01-02T11:00:00.5Z","event":{"ingested":"2026-01-02T11:00:01Z"}}'


def _body(*lines: bytes) -> bytes:
    return b"".join(line + b"\n" for line in lines)


ACTION = b'{"create":{"_index":"' + NET.encode() + b'"}}'


@pytest.mark.parametrize(
    "body",
    [
        _body(ACTION, DOC, ACTION, b'{"n":1}'),
        _body(b'{"index":{}}', DOC, b'{"index":{"_index":"other"}}', b"[1,2]"),
        _body(b'{"index":{"op_type":"create"}}', b"not json", ACTION, DOC),
        _body(ACTION, DOC)[:-1],  # no final newline
    ],
)
def test_uniform_bodies_parse_as_line_by_line(body: bytes) -> None:
    assert bulk._parse_uniform(body, "dflt") is not None
    # The line-by-line reading drops a CR before each newline: the same body, read that way.
    assert bulk.parse(body, "dflt") == bulk.parse(body.replace(b"\n", b"\r\n"), "dflt")


@pytest.mark.parametrize(
    "body",
    [
        _body(ACTION, DOC, b"", ACTION, DOC),  # a blank line
        _body(ACTION, DOC, b"   ", ACTION, DOC),
        _body(ACTION, DOC, ACTION),  # an action without its source
        _body(b'{"create":{"_index":"i","_id":"1"}}', DOC),  # a chosen id
        _body(b'{"delete":{"_index":"i","_id":"1"}}', ACTION, DOC),
        _body(b'{"index":{}}', DOC),  # no index at all
        _body(b"{broken", DOC),
        _body(*itertools.chain(*((b'{"index":{"_index":"i%d"}}' % i, DOC) for i in range(40)))),
    ],
)
def test_other_bodies_are_read_line_by_line(body: bytes) -> None:
    assert bulk._parse_uniform(body, None) is None
    items = bulk.parse(body, None)
    assert items == bulk.parse(body.replace(b"\n", b"\r\n"), None)


def _plans(
    sources: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> tuple[object, object, object, object]:
    """plan_batch's (results, rows) by the plain path and by the event-by-event path."""
    batch = [NewEvent("create", NET, None, s) for s in sources]
    ids = itertools.count()
    monkeypatch.setattr(store_events, "new_ids", lambda n: [f"id{next(ids)}" for _ in range(n)])
    plain = store_events.plan_batch(batch, {}, NOW, 10)
    ids = itertools.count()
    monkeypatch.setattr(store_events, "_plan_plain", lambda *args: None)
    general = store_events.plan_batch(batch, {}, NOW, 10)
    return plain[0], general[0], plain[1].rows, general[1].rows


@pytest.mark.parametrize(
    "sources",
    [
        [DOC, DOC.replace(b".5Z", b".123456Z"), DOC.replace(b".5Z", b"Z")],
        [DOC, b'{"event":{"ingested":"2026-01-02T11:00:01.25Z"},"a":[1]}'],  # no @timestamp
        [b'{"@timestamp":null,"event":{"ingested":"2026-01-02T11:00:01Z","kind":"x"}}', DOC],
    ],
)
def test_plain_batches_plan_as_event_by_event(
    sources: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert store_events._plan_plain([NewEvent("create", NET, None, s) for s in sources], NOW, 0)
    plain, general, plain_rows, general_rows = _plans(sources, monkeypatch)
    assert plain == general
    assert plain_rows == general_rows


@pytest.mark.parametrize(
    "odd",
    [
        b'{"@timestamp":"2026-01-02T11:00:00Z"}',  # event.ingested to be stamped
        b'{"@timestamp":"2026-01-02T11:00:00+01:00","event":{"ingested":"2026-01-02T11:00:01Z"}}',
        b'{"@timestamp":1767351600000,"event":{"ingested":"2026-01-02T11:00:01Z"}}',
        b'{"@timestamp":"2026-13-02T11:00:00Z","event":{"ingested":"2026-01-02T11:00:01Z"}}',
        b'{"@timestamp":"2026-01-02T11:00:60Z","event":{"ingested":"2026-01-02T11:00:01Z"}}',
        b'{"event":{"ingested":"2026-01-02T11:00:01Z\\n2026-01-02T11:00:01Z"}}',
        b'{"event":{"ingested":null}}',
        b'{"event":"text"}',
        b'{"event.ingested":"2026-01-02T11:00:01Z"}',
        b'{"a":"\xff","event":{"ingested":"2026-01-02T11:00:01Z"}}',
        b'{"a":1',
        b"[1]",
    ],
)
def test_other_batches_plan_event_by_event(odd: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    sources = [DOC, odd, DOC]
    assert (
        store_events._plan_plain([NewEvent("create", NET, None, s) for s in sources], NOW, 0)
        is None
    )
    plain, general, _, _ = _plans(sources, monkeypatch)
    assert plain == general


def test_a_date_that_is_none_is_its_items_error() -> None:
    """Month 13 or second 60 match the common spelling's pattern: the item is refused (400),
    the batch's other events are planned (it used to fail the whole request with a 500)."""
    for bad in (b"2026-13-02T11:00:00Z", b"2026-01-02T11:00:60Z"):
        batch = [
            NewEvent("create", NET, None, b'{"@timestamp":"' + bad + b'"}'),
            NewEvent("create", NET, None, DOC),
        ]
        out, pending = store_events.plan_batch(batch, {}, NOW, 0)
        assert out[0].status == 400 and out[0].error_type == "document_parsing_exception"
        assert "failed to parse field [@timestamp]" in (out[0].reason or "")
        assert out[1].status == 201
        assert len(pending.rows) == 1
