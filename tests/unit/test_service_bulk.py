"""`_bulk` and `GET /` through the official elasticsearch client, unmodified, on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from elasticsearch import AuthenticationException, Elasticsearch, helpers

from reconwatch.service.app import Limits, Service, build_app, open_service
from reconwatch.service.server import running
from reconwatch.store import NewEvent, Store, Written

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
NET = "logs-endpoint.events.network-default"


def _clock() -> datetime:
    return NOW


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = open_service(Store(tmp_path, _clock), Limits(max_body_bytes=64 * 1024))
    yield svc
    svc.close()


@pytest.fixture
def url(service: Service) -> Iterator[str]:
    with running(build_app(service)) as base:
        yield base


def _event(i: int) -> dict[str, Any]:
    return {"@timestamp": f"2026-01-02T11:{i % 60:02d}:00Z", "destination": {"port": i}}


def test_info_answers_the_official_client(url: str) -> None:
    es = Elasticsearch(url)
    info = es.info()
    assert info["tagline"] == "You Know, for Search"
    assert info["version"]["number"].split(".")[0].isdigit()
    assert httpx.get(url + "/").headers["x-elastic-product"] == "Elasticsearch"
    missing = httpx.get(url + "/no/such/thing")
    assert missing.status_code == 404
    assert missing.headers["x-elastic-product"] == "Elasticsearch"
    assert missing.json()["error"]["root_cause"][0]["type"] == "resource_not_found_exception"


def test_helpers_bulk_stores_every_event_in_its_index(url: str, service: Service) -> None:
    es = Elasticsearch(url)
    actions = [{"_index": NET, "_source": _event(i)} for i in range(1500)]
    actions += [
        {"_index": "logs-endpoint.events.process-default", "_source": _event(i)} for i in range(100)
    ]
    ok, errors = helpers.bulk(es, actions, chunk_size=400)
    assert (ok, errors) == (1600, [])
    # Acknowledged means committed: a fresh reader sees every event.
    assert service.store.count(NET) == 1500
    assert service.store.count("logs-endpoint.events.process-default") == 100
    docs = list(
        service.store.documents(
            service.store.matching_indices(["logs-endpoint.events.network-*"]), None, None
        )
    )
    assert len(docs) == 1500
    assert all(d[2]["event"] == {"ingested": "2026-01-02T12:00:00.000Z"} for d in docs)


def test_parallel_bulk_reports_conflicts_per_item(url: str, service: Service) -> None:
    es = Elasticsearch(url)
    actions = [
        {"_op_type": "create", "_index": "idx", "_id": str(i), "_source": _event(i)}
        for i in range(200)
    ]
    results = list(helpers.parallel_bulk(es, actions, thread_count=2, chunk_size=50))
    assert all(ok for ok, _ in results) and len(results) == 200
    again = list(
        helpers.parallel_bulk(es, actions[:10], thread_count=2, chunk_size=5, raise_on_error=False)
    )
    assert [ok for ok, _ in again] == [False] * 10
    item = again[0][1]["create"]
    assert item["status"] == 409
    assert item["error"]["type"] == "version_conflict_engine_exception"
    # index replaces: version 2, result updated
    ok, info = next(
        iter(
            helpers.streaming_bulk(
                es, [{"_op_type": "index", "_index": "idx", "_id": "3", "_source": {"x": 1}}]
            )
        )
    )
    assert ok and info["index"]["result"] == "updated" and info["index"]["_version"] == 2
    assert info["index"]["status"] == 200
    assert service.store.count("idx") == 200
    with pytest.raises(helpers.BulkIndexError):
        helpers.bulk(es, actions[:1])


def test_broken_lines_get_item_errors_and_good_items_are_stored(url: str, service: Service) -> None:
    body = b"\n".join(
        [
            b'{"index":{"_index":"a"}}',
            b'{"@timestamp":"2026-01-02T11:00:00Z","n":1}',
            b'{"index":{"_index":"a"}}',
            b"{broken json",
            b"{not an action",
            b'{"n":"its source"}',
            b'{"create":{}}',  # no index in the line nor the path
            b'{"n":3}',
            b'{"create":{"_index":"a"}}',
            b'{"@timestamp":"not a date"}',
            b'{"delete":{"_index":"a","_id":"1"}}',
            b'{"create":{"_index":"a","_id":"z"}}',
            b'{"@timestamp":"2026-01-02T11:00:01Z","n":2}',
            b'{"index":{"_index":"a"}}',
        ]
    )
    r = httpx.post(
        url + "/_bulk", content=body + b"\n", headers={"content-type": "application/x-ndjson"}
    )
    assert r.status_code == 200
    out = r.json()
    assert out["errors"] is True
    got = [(next(iter(i)), next(iter(i.values()))["status"]) for i in out["items"]]
    assert got == [
        ("index", 201),
        ("index", 400),
        ("index", 400),
        ("create", 400),
        ("create", 400),
        ("delete", 400),
        ("create", 201),
        ("index", 400),
    ]
    types = [next(iter(i.values())).get("error", {}).get("type") for i in out["items"]]
    assert types == [
        None,
        "document_parsing_exception",
        "illegal_argument_exception",
        "action_request_validation_exception",
        "document_parsing_exception",
        "illegal_argument_exception",
        None,
        "action_request_validation_exception",
    ]
    assert "line 5" in out["items"][2]["index"]["error"]["reason"]
    assert sorted(d[2]["n"] for d in service.store.documents(["a"], None, None)) == [1, 2]


def test_index_in_the_path_is_the_default(url: str, service: Service) -> None:
    body = b'{"index":{}}\n{"n":1}\n{"create":{"_index":"other"}}\n{"n":2}\n'
    out = httpx.post(url + "/mine/_bulk", content=body).json()
    assert out["errors"] is False
    assert [next(iter(i.values()))["_index"] for i in out["items"]] == ["mine", "other"]
    assert service.store.indices() == ["mine", "other"]


def test_body_over_the_limit_is_413_and_nothing_stored(url: str, service: Service) -> None:
    body = b'{"index":{"_index":"a"}}\n' + b'{"pad":"' + b"x" * (70 * 1024) + b'"}\n'
    r = httpx.post(url + "/_bulk", content=body)
    assert r.status_code == 413
    assert r.json()["status"] == 413
    # Without a Content-Length (chunked), the stream is cut at the limit too.
    r = httpx.post(url + "/_bulk", content=iter([body[:40_000], body[40_000:]]))
    assert r.status_code == 413
    assert service.store.count() == 0
    assert httpx.post(url + "/_bulk", content=b"\n").status_code == 400


class _GatedStore(Store):
    """A store whose writes wait for the test to open the gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, _clock)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write(self, batch: list[NewEvent]) -> list[Written]:  # type: ignore[override]
        self.entered.set()
        assert self.gate.wait(30)
        return super().write(batch)


def test_full_write_queue_is_429_with_retry_after(tmp_path: Path) -> None:
    store = _GatedStore(tmp_path)
    svc = open_service(store, Limits(queue_batches=1))
    body = b'{"index":{"_index":"a"}}\n{"n":1}\n'
    try:
        with running(build_app(svc)) as url:
            answers: list[int] = []

            def send() -> None:
                answers.append(httpx.post(url + "/_bulk", content=body, timeout=30).status_code)

            first = threading.Thread(target=send)
            first.start()
            assert store.entered.wait(10)  # the writer holds batch 1
            second = threading.Thread(target=send)
            second.start()
            for _ in range(1000):  # batch 2 waits in the queue
                if svc.writer.depth() == 1:
                    break
                second.join(0.01)
            assert svc.writer.depth() == 1
            r = httpx.post(url + "/_bulk", content=body)
            assert r.status_code == 429
            assert r.headers["retry-after"] == "1"
            assert r.json()["error"]["type"] == "es_rejected_execution_exception"
            store.gate.set()
            first.join()
            second.join()
            assert answers == [200, 200]
            assert store.count() == 2
    finally:
        store.gate.set()
        svc.close()


def test_api_key_is_checked_on_every_endpoint(tmp_path: Path) -> None:
    svc = open_service(Store(tmp_path, _clock), Limits(), api_key="s3cret")
    try:
        with running(build_app(svc)) as url:
            body = b'{"index":{"_index":"a"}}\n{"n":1}\n'
            for method, path in [("GET", "/"), ("POST", "/_bulk"), ("POST", "/a/_bulk")]:
                r = httpx.request(method, url + path, content=body)
                assert r.status_code == 401, path
                assert r.json()["error"]["type"] == "security_exception"
            wrong = httpx.post(
                url + "/_bulk", content=body, headers={"authorization": "ApiKey nope"}
            )
            assert wrong.status_code == 401
            assert svc.store.count() == 0
            with pytest.raises(AuthenticationException):
                Elasticsearch(url).info()
            es = Elasticsearch(url, api_key="s3cret")
            assert es.info()["tagline"] == "You Know, for Search"
            assert helpers.bulk(es, [{"_index": "a", "_source": {"n": 1}}]) == (1, [])
            assert svc.store.count() == 1
    finally:
        svc.close()


class _BrokenStore(Store):
    def write(self, batch: list[NewEvent]) -> list[Written]:  # type: ignore[override]
        raise RuntimeError("disk on fire")


def test_an_internal_failure_is_a_500_in_the_error_shape(tmp_path: Path) -> None:
    svc = open_service(_BrokenStore(tmp_path, _clock), Limits())
    try:
        with running(build_app(svc)) as url:
            r = httpx.post(url + "/_bulk", content=b'{"index":{"_index":"a"}}\n{"n":1}\n')
            assert r.status_code == 500
            err = r.json()
            assert err["status"] == 500
            assert "RuntimeError: disk on fire" in err["error"]["reason"]
            # The service goes on answering.
            assert httpx.get(url + "/").status_code == 200
    finally:
        svc.close()


def test_filter_path_answers_only_what_the_shipper_asks_for(url: str, service: Service) -> None:
    """helpers.bulk with the filter_path shippers send: per-item status and errors, in order."""
    es = Elasticsearch(url)
    actions: list[Any] = [
        json.dumps({"@timestamp": "2026-01-02T11:00:00Z", "event": {"ingested": "x"}, "n": i})
        for i in range(300)
    ]
    actions[7] = "{broken"
    spec = "errors,items.*.status,items.*.error"
    ok, errors = helpers.bulk(es, actions, index=NET, raise_on_error=False, filter_path=spec)
    assert ok == 299
    assert isinstance(errors, list) and len(errors) == 1
    assert errors[0]["index"]["status"] == 400
    assert errors[0]["index"]["error"]["type"] == "document_parsing_exception"
    assert set(errors[0]["index"]) == {"status", "error"}
    assert service.store.count(NET) == 299
    r = httpx.post(
        url + "/_bulk?filter_path=took",
        content=b'{"index":{"_index":"a"}}\n{"n":1}\n',
        headers={"content-type": "application/x-ndjson"},
    )
    assert set(r.json()) == {"took"}
