"""The service's network sinks against local servers on 127.0.0.1: webhook (retry, backoff,
dead letter), syslog RFC 5424 over UDP and TCP, Elasticsearch _bulk (the service itself)."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconwatch.service.app import Limits, build_app, open_service
from reconwatch.service.config import load_config
from reconwatch.service.delivery import Delivery, SinkSpec
from reconwatch.service.server import running
from reconwatch.service.sinks import EsBulkSink, SyslogSink, WebhookSink
from reconwatch.store import Store
from reconwatch.store.alerts import RunRecord

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _clock() -> datetime:
    return NOW


def _store_alerts(store: Store, *ids: str) -> None:
    record = RunRecord("r1", NOW, NOW, NOW, "scheduled", len(ids))
    store.add_run(
        record,
        [
            {
                "kibana.alert.uuid": i,
                "kibana.alert.rule.rule_id": "r1",
                "kibana.alert.severity": "high",
            }
            for i in ids
        ],
    )


class _Hook:
    """A webhook receiver on 127.0.0.1: answers 500 while `failing`, remembers what it took."""

    def __init__(self) -> None:
        self.failing = 0
        self.bodies: list[dict[str, object]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if hook.failing:
                    hook.failing -= 1
                    self.send_response(500)
                else:
                    hook.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[_Hook]:
    h = _Hook()
    yield h
    h.close()


class _Time:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_webhook_retries_with_backoff_then_delivers(tmp_path: Path, hook: _Hook) -> None:
    store = Store(tmp_path, _clock)
    _store_alerts(store, "a1", "a2")
    hook.failing = 1
    mono = _Time()
    delivery = Delivery(store, {hook.url: WebhookSink(hook.url)}, monotonic=mono)
    delivery.kick()  # not started: delivers now; the first POST fails
    assert delivery.failures[hook.url] == 1 and "HTTP 500" in delivery.last_error[hook.url]
    state = delivery._states[hook.url]
    assert state.retry_at == 101.0  # 1 s after the first failure
    # The thread's way: not before the backoff ...
    assert delivery._deliver_one(hook.url, force=False) == 0
    mono.now = 101.5
    assert delivery._deliver_one(hook.url, force=False) == 2
    assert [b["kibana.alert.uuid"] for b in hook.bodies] == ["a1", "a2"]
    assert delivery.deliver() == 0  # nothing twice
    delivery.close()
    store.close()


def test_webhook_dead_letters_after_max_attempts(tmp_path: Path, hook: _Hook) -> None:
    store = Store(tmp_path, _clock)
    _store_alerts(store, "a1")
    hook.failing = 10**6
    dead = tmp_path / "dead.ndjson"
    spec = SinkSpec(hook.url, max_attempts=3, dead_letter=dead)
    mono = _Time()
    delivery = Delivery(store, {hook.url: WebhookSink(hook.url)}, {hook.url: spec}, mono)
    waits = []
    for _attempt in range(2):
        assert delivery.deliver() == 0
        waits.append(delivery._states[hook.url].retry_at - mono.now)
        mono.now += waits[-1]
    assert waits == [1.0, 2.0]  # doubling after each failure in a row
    assert not dead.exists() and store.undelivered(hook.url)
    delivery.deliver()  # the third failure in a row: to the dead-letter file
    assert [json.loads(x)["kibana.alert.uuid"] for x in dead.read_text().splitlines()] == ["a1"]
    assert store.undelivered(hook.url) == [] and delivery.dead_lettered(hook.url) == 1
    delivery.close()
    store.close()


def test_syslog_udp_and_tcp_send_rfc5424(tmp_path: Path) -> None:
    store = Store(tmp_path, _clock)
    _store_alerts(store, "a1")
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    tcp.settimeout(5)
    targets = [
        f"syslog+udp://127.0.0.1:{udp.getsockname()[1]}",
        f"syslog+tcp://127.0.0.1:{tcp.getsockname()[1]}",
    ]
    delivery = Delivery(store, {t: SyslogSink(t) for t in targets})
    assert delivery.deliver() == 2
    datagram = udp.recv(65536)
    conn, _ = tcp.accept()
    conn.settimeout(5)
    framed = b""
    while b" " not in framed or len(framed.split(b" ", 1)[1]) < int(framed.split(b" ", 1)[0]):
        framed += conn.recv(65536)
    length, message = framed.split(b" ", 1)
    assert int(length) == len(message)
    for raw in (datagram, message):
        # <PRI>VERSION TIMESTAMP HOST APP PROCID MSGID SD MSG; local0 (16) * 8 + error (3).
        head = re.match(rb"<131>1 \S+Z \S+ reconwatch - alert - ", raw)
        assert head is not None, raw[:80]
        assert json.loads(raw[head.end() :])["kibana.alert.uuid"] == "a1"
    conn.close()
    delivery.close()
    udp.close()
    tcp.close()
    store.close()


def test_es_bulk_sink_indexes_alerts_once_into_the_service(tmp_path: Path) -> None:
    target_store = Store(tmp_path / "target", _clock)
    service = open_service(target_store, Limits())
    store = Store(tmp_path / "source", _clock)
    _store_alerts(store, "a1", "a2")
    with running(build_app(service)) as url:
        sink = EsBulkSink(f"es+{url}/my-alerts")
        delivery = Delivery(store, {sink.name: sink})
        assert delivery.deliver() == 2
        sink.write(store.alerts())  # delivered again (a crash before marking): 409, no copy
        assert target_store.count("my-alerts") == 2
        delivery.close()
    service.close()
    store.close()


def test_a_hanging_sink_holds_no_other(tmp_path: Path) -> None:
    store = Store(tmp_path, _clock)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never answers: the webhook waits for its timeout
    hanging = f"http://127.0.0.1:{silent.getsockname()[1]}/"
    out = tmp_path / "alerts.ndjson"
    delivery = Delivery.open(store, [hanging, str(out)], {})
    delivery.start()
    _store_alerts(store, "a1")
    delivery.kick()
    done = threading.Event()
    for _ in range(500):
        if out.exists() and "a1" in out.read_text():
            done.set()
            break
        done.wait(0.01)
    assert done.is_set(), "the file sink waited for the hanging webhook"
    delivery._stop.set()
    silent.close()
    delivery.close()
    store.close()


def test_sinks_config_tables(tmp_path: Path) -> None:
    config = tmp_path / "serve.toml"
    config.write_text(
        'sinks = ["-", { target = "http://127.0.0.1:9/x", max_attempts = 5, '
        'dead_letter = "dead.ndjson" }]\n'
    )
    sinks = load_config(config).sinks
    assert sinks[0] == SinkSpec("-")
    assert sinks[1] == SinkSpec("http://127.0.0.1:9/x", 5, tmp_path / "dead.ndjson")
    config.write_text('sinks = [{ target = "-", retries = 5 }]\n')
    with pytest.raises(Exception, match=r"sinks\.retries: unknown key"):
        load_config(config)


def test_es_bulk_sink_replaces_an_updated_alert_under_its_id(tmp_path: Path) -> None:
    """A later run's revision of an alert goes out again and replaces the first (`index`
    under the same id), so the receiving index holds one document, the newest."""
    target_store = Store(tmp_path / "target", _clock)
    service = open_service(target_store, Limits())
    store = Store(tmp_path / "source", _clock)
    _store_alerts(store, "a1")
    with running(build_app(service)) as url:
        sink = EsBulkSink(f"es+{url}/my-alerts")
        delivery = Delivery(store, {sink.name: sink})
        assert delivery.deliver() == 1
        doc = store.alerts()[0]
        store.add_run(
            RunRecord("r1", NOW, NOW, NOW, "scheduled", 1), [], [("a1", {**doc, "count": 7})]
        )
        assert delivery.deliver() == 1
        assert delivery.deliver() == 0
        assert target_store.count("my-alerts") == 1
        (stored,) = [s for _, _, s in target_store.documents(["my-alerts"], None, None, None)]
        assert stored["count"] == 7 and stored["reconwatch.alert.revision"] == 1
        delivery.close()
    service.close()
    store.close()
