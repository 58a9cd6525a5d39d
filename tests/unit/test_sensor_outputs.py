"""Sensor outputs: NDJSON rotation, `_bulk` bodies, and the HTTP spool surviving a receiver outage."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconwatch.ecs.host import HostInfo
from reconwatch.ecs.network import Connection, EcsEncoder, iso_time, to_ecs
from reconwatch.errors import SensorError
from reconwatch.sensor.host import load_agent_id
from reconwatch.sensor.outputs import FileSink, HttpSink, bulk_body, encode

HOST = HostInfo(name="h", hostname="h", id="m", agent_id="a")


def doc(n: int) -> dict[str, object]:
    conn = Connection(
        timestamp=1.7e9 + n,
        action="connection_attempted",
        pid=1,
        dst_ip="127.0.0.1",
        dst_port=n,
        family=4,
    )
    return to_ecs(conn, HOST, ingested=1.7e9)


def test_ecs_document_shape() -> None:
    d = doc(9)
    assert d["@timestamp"] == "2023-11-14T22:13:29.000Z"
    assert d["event"]["type"] == ["start"] and d["event"]["category"] == ["network"]  # type: ignore[index]
    assert d["tags"] == ["executable_unknown"]
    assert d["agent"] == {"id": "a", "type": "reconwatch-sensor", "version": "0.1.0"}
    assert d["host"]["os"]["type"] == "linux"  # type: ignore[index]


def test_agent_id_is_created_once_and_persisted(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "agent-id"
    first = load_agent_id(path)
    assert str(uuid.UUID(first)) == first
    assert load_agent_id(path) == first
    path.write_text("junk")
    with pytest.raises(SensorError, match="does not hold a UUID"):
        load_agent_id(path)


def test_file_rotation_keeps_every_event(tmp_path: Path) -> None:
    out = tmp_path / "events.ndjson"
    sink = FileSink(out, max_bytes=4000, keep=100)
    for n in range(40):
        sink.write(doc(n))
    sink.close()
    files = [out, *sorted(tmp_path.glob("events.ndjson.*"))]
    assert sink.rotations >= 3 and len(files) == sink.rotations + 1
    ports = sorted(json.loads(line)["destination"]["port"] for f in files for line in f.open())
    assert ports == list(range(40))
    assert all(f.stat().st_size <= 4000 for f in files)


def test_bulk_body_uses_create_actions() -> None:
    body = bulk_body([b'{"a":1}', b'{"a":2}']).decode().splitlines()
    assert json.loads(body[0]) == {"create": {"_index": "logs-endpoint.events.network-default"}}
    assert body[1] == '{"a":1}' and len(body) == 4


class Receiver:
    """A `_bulk` endpoint on 127.0.0.1 that can be down (503) and reject one document."""

    def __init__(self) -> None:
        self.up = False
        self.docs: list[dict[str, object]] = []
        # set gate to hold the next request until released: (request arrived, release it)
        self.gate: tuple[threading.Event, threading.Event] | None = None
        self.received = threading.Event()  # set once a request has delivered documents
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode().splitlines()
                gate, receiver.gate = receiver.gate, None
                if gate is not None:
                    gate[0].set()
                    assert gate[1].wait(30)
                if not receiver.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                items = []
                for action, source in zip(body[::2], body[1::2], strict=True):
                    assert "create" in json.loads(action)
                    document = json.loads(source)
                    bad = document["destination"]["port"] == 13
                    if not bad:
                        receiver.docs.append(document)
                        receiver.received.set()
                    items.append({"create": {"status": 400 if bad else 201}})
                reply = json.dumps({"errors": True, "items": items}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/_bulk"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_http_sink_spools_while_down_and_delivers_later(tmp_path: Path, receiver: Receiver) -> None:
    sink = HttpSink(
        receiver.url, tmp_path / "spool", batch_size=10, flush_interval=0.1, max_backoff=0.2
    )
    for n in range(25):
        sink.write(doc(n))
    sink.flush()
    sink.attempt_failed.wait(timeout=60)  # a liveness bound: the sender tried and failed
    assert receiver.docs == [] and sink.retries > 0
    assert len(list((tmp_path / "spool").glob("batch-*"))) == 3
    receiver.up = True
    sink.close(deadline=10)
    assert sorted(d["destination"]["port"] for d in receiver.docs) == [
        n for n in range(25) if n != 13
    ]  # type: ignore[index]
    assert sink.sent == 24 and sink.rejected == 1
    assert list((tmp_path / "spool").glob("batch-*")) == []


def test_http_spool_survives_a_restart_and_is_bounded(tmp_path: Path, receiver: Receiver) -> None:
    spool = tmp_path / "spool"
    sink = HttpSink(receiver.url, spool, batch_size=5, max_spool_bytes=12000, max_backoff=0.1)
    for n in range(30):
        sink.write(doc(n + 100))
    sink.close(deadline=0.5)
    # stopped for good: a sender still running could deliver a batch that `again` sends too
    assert not sink.sending
    assert sink.dropped > 0  # oldest batches went when the bound was reached
    kept = 30 - sink.dropped
    receiver.up = True
    again = HttpSink(receiver.url, spool, batch_size=5, max_backoff=0.1)
    again.close(deadline=10)
    assert len(receiver.docs) == kept and again.sent == kept


CONNECTIONS = [
    Connection(1.7e9 + 0.0005, "connection_attempted", 7, "127.0.1.9", 9, 4),
    Connection(
        1.7e9 + 1.9999996,
        "connection_accepted",
        8,
        "::1",
        40000,
        6,
        name="sshd",
        executable="/usr/sbin/sshd",
        args=["sshd", "-D"],
        ppid=1,
        uid=0,
        user_name="root",
        transport="tcp",
        src_ip="::1",
        src_port=22,
        process_start=1.6e9,
    ),
    Connection(1.7e9, "connection_attempted", 9, "127.0.0.53", 53, 4, name='q"\\', uid=65534),
    Connection(1.7e9, "connection_attempted", 9, "127.0.0.53", 53, 4, transport="udp", uid=1),
]


@pytest.mark.parametrize("conn", CONNECTIONS)
def test_cached_encoder_matches_to_ecs_byte_for_byte(conn: Connection) -> None:
    encoder = EcsEncoder(HOST)
    for ingested in (1.7e9 + 3.25, 1.7e9 + 3.9996):
        expected = encode(to_ecs(conn, HOST, ingested))
        assert encoder.encode(conn, ingested) == expected
        assert encoder.encode(conn, ingested) == expected  # again, from the caches


def test_cached_encoder_notices_a_new_exec_of_the_same_pid() -> None:
    encoder = EcsEncoder(HOST)
    first = Connection(1.7e9, "connection_attempted", 5, "127.0.0.2", 9, 4, args=["a", "1"])
    again = Connection(1.7e9, "connection_attempted", 5, "127.0.0.2", 9, 4, args=["a", "2"])
    encoder.encode(first, 1.7e9)
    assert json.loads(encoder.encode(again, 1.7e9))["process"]["args"] == ["a", "2"]


@given(st.floats(min_value=0, max_value=4.1e9, allow_nan=False))
def test_iso_time_agrees_with_datetime(epoch: float) -> None:
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    assert iso_time(epoch) == expected


def test_http_sender_survives_a_batch_vanishing_from_the_spool(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race of the issue, made certain: the sender lists the spool, then its first batch is
    gone before it is read (FileNotFoundError). The thread used to die there and delivery
    stopped silently; now it is counted, reported, and the other batches still go out."""
    listed = HttpSink._batches
    raced: list[str] = []

    def racing(self: HttpSink) -> list[Path]:
        batches = listed(self)
        if batches and not raced and threading.current_thread().name == "bulk-sender":
            raced.append(batches[0].name)
            batches[0].unlink()  # what a concurrent drop did between listing and reading
        return batches

    monkeypatch.setattr(HttpSink, "_batches", racing)
    receiver.up = True
    errors: list[str] = []
    sink = HttpSink(
        receiver.url, tmp_path / "spool", batch_size=10, max_backoff=0.1, on_error=errors.append
    )
    for n in range(30):
        sink.write(doc(n + 200))
    sink.close(deadline=10)
    assert raced and not sink._thread.is_alive()
    assert sink.spool_errors == 1 and sink.sender_errors == 0
    assert errors == [f"_bulk output: spool batch {raced[0]} vanished before it was sent"]
    assert sink.sent == 20 and len(receiver.docs) == 20  # the two batches still there
    assert "1 spool errors" in sink.report() and "vanished" in sink.report()


def test_http_sender_survives_an_unexpected_error(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_send = HttpSink._send
    calls: list[int] = []

    def flaky(self: HttpSink, batch: Path, body: bytes) -> bool:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real_send(self, batch, body)

    monkeypatch.setattr(HttpSink, "_send", flaky)
    receiver.up = True
    errors: list[str] = []
    sink = HttpSink(receiver.url, tmp_path / "spool", max_backoff=0.01, on_error=errors.append)
    for n in range(5):
        sink.write(doc(n + 300))
    sink.flush()
    assert receiver.received.wait(30)  # delivered by the retry after the error
    sink.close(deadline=10)
    assert sink.sender_errors == 1 and errors == ["_bulk output: sender error RuntimeError: boom"]
    assert sink.sent == 5 and len(receiver.docs) == 5  # retried after the error
    assert "1 sender errors" in sink.report()


def test_spool_bound_never_drops_the_batch_being_sent(tmp_path: Path, receiver: Receiver) -> None:
    """Dropping the batch in flight would count it lost and then sent."""
    arrived, release = threading.Event(), threading.Event()
    receiver.up = True
    receiver.gate = (arrived, release)
    spool = tmp_path / "spool"
    sink = HttpSink(receiver.url, spool, batch_size=10, max_backoff=0.1)
    for n in range(10):
        sink.write(doc(n))  # the 10th seals batch 1, which the sender POSTs and the receiver holds
    assert arrived.wait(30)
    batch_size = next(spool.glob("batch-*")).stat().st_size
    sink.max_spool_bytes = int(batch_size * 2.5)  # two batches fit, three do not
    for n in range(10, 30):
        sink.write(doc(n))
    assert sink.dropped == 10  # batch 2 went; batch 1 (in flight) and batch 3 stayed
    release.set()
    sink.close(deadline=10)
    ports = sorted(d["destination"]["port"] for d in receiver.docs)  # type: ignore[index]
    assert ports == [n for n in range(10) if n != 13] + [n for n in range(20, 30)]
    assert sink.sent + sink.rejected + sink.dropped == 30
