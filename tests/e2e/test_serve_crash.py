"""kill -9 of the real `reconwatch serve` process mid-ingest, and mid-run and mid-delivery, then a
restart: no acknowledged event lost, no window skipped, no duplicate alert, no alert lost in a sink;
and killed inside the store's write transactions, held there by the test-only pause hook."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import httpx
import pytest

pytestmark = pytest.mark.slow

NET = "logs-endpoint.events.network-default"
EXE = str(Path(sys.executable).with_name("reconwatch"))


def _start(args: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [EXE, "serve", "--bind", "127.0.0.1:0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    for raw in proc.stderr:
        found = re.search(r"listening on (http://\S+)", raw.decode())
        if found:
            # Keep reading stderr so the process never blocks on a full pipe.
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, found.group(1)
    raise AssertionError(f"serve did not start (exit {proc.wait()})")


def _kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    assert proc.wait(60) == 0


def _bulk(first: int, count: int) -> bytes:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    lines = []
    for n in range(first, first + count):
        lines.append(json.dumps({"create": {"_index": NET, "_id": f"e{n}"}}))
        lines.append(json.dumps({"@timestamp": now, "n": n, "message": "x" * 200}))
    return ("\n".join(lines) + "\n").encode()


def _stored_ids(data: Path) -> set[str]:
    con = duckdb.connect(str(data / "reconwatch.duckdb"), read_only=True)
    try:
        return {r[0] for r in con.execute("SELECT id FROM events").fetchall()}
    finally:
        con.close()


def test_kill_mid_ingest_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc, url = _start(["--data-dir", str(data), "--no-builtin-rules"])
    acked: set[str] = set()
    killed = threading.Event()

    def send() -> None:
        n = 0
        with httpx.Client(timeout=30) as client:
            while not killed.is_set():
                try:
                    answer = client.post(
                        f"{url}/_bulk",
                        content=_bulk(n, 500),
                        headers={"Content-Type": "application/x-ndjson"},
                    )
                except httpx.HTTPError:
                    return  # the process died under this request: not acknowledged
                if answer.status_code == 200:
                    for item in answer.json()["items"]:
                        if item["create"]["status"] == 201:
                            acked.add(item["create"]["_id"])
                n += 500

    senders = [threading.Thread(target=send) for _ in range(2)]
    for t in senders:
        t.start()
    while len(acked) < 5000:  # well into ingest, requests in flight
        threading.Event().wait(0.01)
    _kill(proc)
    killed.set()
    for t in senders:
        t.join()
    # The acknowledged events are on disk; a restart opens the store and serves again.
    assert acked <= _stored_ids(data)
    proc, url = _start(["--data-dir", str(data), "--no-builtin-rules"])
    again = httpx.post(
        f"{url}/_bulk", content=_bulk(10**7, 1), headers={"Content-Type": "application/x-ndjson"}
    )
    assert again.status_code == 200 and not again.json()["errors"]
    _stop(proc)
    assert acked | {f"e{10**7}"} <= _stored_ids(data)


class _Hook:
    """A webhook receiver on 127.0.0.1 counting the alert ids it took."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.got = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.taken.append(body["kibana.alert.uuid"])
                hook.got.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hook() -> Iterator[_Hook]:
    h = _Hook()
    yield h
    h.server.shutdown()
    h.server.server_close()


def _scan_body(exe: str) -> bytes:
    at = datetime.now(UTC) - timedelta(minutes=20)
    lines = []
    for i in range(300):
        t = (at + timedelta(seconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines.append(json.dumps({"create": {"_index": NET}}))
        lines.append(
            json.dumps(
                {
                    "@timestamp": t,
                    "event": {"type": ["start"], "action": "connection_attempted"},
                    "host": {"os": {"type": "linux"}, "name": "web-1", "id": "h1"},
                    "agent": {"id": "agent-1"},
                    "process": {"executable": exe},
                    "destination": {"ip": f"10.1.{i // 250}.{i % 250 + 1}", "port": 22},
                }
            )
        )
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("kill_after_alert", [False, True])
def test_kill_mid_run_and_mid_delivery(tmp_path: Path, hook: _Hook, kill_after_alert: bool) -> None:
    data = tmp_path / "data"
    config = tmp_path / "serve.toml"
    config.write_text(f'data_dir = "{data}"\nsinks = ["{hook.url}"]\nrealtime = []\n')
    args = ["--config", str(config)]
    # A scan stored while no rule ran over it.
    proc, url = _start([*args, "--no-builtin-rules"])
    assert httpx.post(f"{url}/_bulk", content=_scan_body("/tmp/scanner")).status_code == 200
    _kill(proc)
    # Started with the rules: they run at once; killed in the run (before the alert reached
    # the sink) or once the sink took it (the delivery may be marked or not).
    proc, url = _start(args)
    if kill_after_alert:
        assert hook.got.wait(120)
    _kill(proc)
    # Restarted: the rules catch up, and the sink is handed what it has not taken.
    proc, url = _start(args)
    assert hook.got.wait(120)
    while True:
        alerts = httpx.get(f"{url}/api/alerts").json()["alerts"]
        runs = httpx.get(f"{url}/api/rules").json()["rules"]
        if (
            alerts
            and all(r["last_run"] for r in runs)
            and set(hook.taken) >= {a["kibana.alert.uuid"] for a in alerts}
        ):
            break
        hook.got.clear()
        hook.got.wait(1)
    _stop(proc)
    con = duckdb.connect(str(data / "reconwatch.duckdb"), read_only=True)
    history = con.execute(
        "SELECT rule_id, run_at, execution_type, alerts FROM rule_runs"
    ).fetchall()
    con.close()
    scanner = [a for a in alerts if a.get("process.executable") == "/tmp/scanner"]
    assert len(scanner) == 1, "no duplicate alert, and none lost"
    assert scanner[0]["kibana.alert.uuid"] in hook.taken, "the sink got it"
    assert all(r["last_run"]["gap_ms"] == 0 for r in runs), "no window skipped"
    # A restart soon after a run does not run the rule again (its next run is not due).
    subnet = [h for h in history if h[0] == scanner[0]["kibana.alert.rule.rule_id"]]
    assert len(subnet) == 1, history


def _paused(signal_file: Path, proc: subprocess.Popen[bytes]) -> dict[str, object]:
    """The test hook's report once the process holds its transaction open (RECONWATCH_TEST_PAUSE)."""
    while not signal_file.exists():
        assert proc.poll() is None, "serve exited before reaching the pause"
        threading.Event().wait(0.01)
    report: dict[str, object] = json.loads(signal_file.read_text())
    assert report["pid"] == proc.pid
    return report


def _count_rows(data: Path, sql: str) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(data / "reconwatch.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_kill_inside_the_event_write_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer is held inside its transaction (after the INSERT, before the COMMIT) by the
    test-only hook, which names the ids it holds, and killed there: the acknowledged events are
    stored, the held ones are not (the kill did land inside the transaction), and after a restart
    the clients' retries store every event exactly once."""
    data = tmp_path / "data"
    signal_file = tmp_path / "paused.json"
    monkeypatch.setenv("RECONWATCH_TEST_PAUSE", f"events@3000:{signal_file}")
    proc, url = _start(["--data-dir", str(data), "--no-builtin-rules"])
    monkeypatch.delenv("RECONWATCH_TEST_PAUSE")
    acked: set[str] = set()
    unacked: list[int] = []  # first ids of the requests never answered
    lock = threading.Lock()
    stop = threading.Event()

    def send(start: int) -> None:
        n = start
        with httpx.Client(timeout=None) as client:
            while not stop.is_set():
                try:
                    answer = client.post(
                        f"{url}/_bulk",
                        content=_bulk(n, 500),
                        headers={"Content-Type": "application/x-ndjson"},
                    )
                except httpx.HTTPError:
                    with lock:
                        unacked.append(n)  # the process died under this request
                    return
                assert answer.status_code in (200, 429)
                if answer.status_code == 429:
                    continue  # retried as the client's helpers retry
                with lock:
                    acked.update(i["create"]["_id"] for i in answer.json()["items"])
                n += 1000

    senders = [threading.Thread(target=send, args=(s,)) for s in (0, 500)]
    for t in senders:
        t.start()
    held = _paused(signal_file, proc)
    assert held["what"] == "events"
    held_ids = set(held["ids"])  # type: ignore[arg-type]
    assert held_ids, held
    _kill(proc)
    stop.set()
    for t in senders:
        t.join()
    stored = _stored_ids(data)
    assert len(acked) >= 3000
    assert acked <= stored, "an acknowledged event was lost"
    assert not held_ids & stored, "the held transaction's events were committed: not mid-write"
    assert not held_ids & acked
    # Restart; the clients send the requests they had no answer for again.
    proc, url = _start(["--data-dir", str(data), "--no-builtin-rules"])
    with httpx.Client(timeout=60) as client:
        for n in unacked:
            answer = client.post(
                f"{url}/_bulk",
                content=_bulk(n, 500),
                headers={"Content-Type": "application/x-ndjson"},
            )
            statuses = {i["create"]["status"] for i in answer.json()["items"]}
            assert statuses <= {201, 409}
    _stop(proc)
    resent = {f"e{n + k}" for n in unacked for k in range(500)}
    assert held_ids <= resent
    ((total, distinct),) = _count_rows(data, "SELECT count(*), count(DISTINCT id) FROM events")
    assert total == distinct, "an event was stored twice"
    assert _stored_ids(data) == acked | resent, "an event was lost"


def test_kill_inside_the_alert_transaction(
    tmp_path: Path, hook: _Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rule run that stores the scan's alert is held inside its transaction (alert and run
    record written, not committed) and killed there: neither is in the store; the restart runs
    the rule again and stores that alert (the same Kibana id) once, and the sink takes it once."""
    data = tmp_path / "data"
    config = tmp_path / "serve.toml"
    config.write_text(f'data_dir = "{data}"\nsinks = ["{hook.url}"]\nrealtime = []\n')
    args = ["--config", str(config)]
    proc, url = _start([*args, "--no-builtin-rules"])
    assert httpx.post(f"{url}/_bulk", content=_scan_body("/tmp/scanner")).status_code == 200
    _stop(proc)
    signal_file = tmp_path / "paused.json"
    monkeypatch.setenv("RECONWATCH_TEST_PAUSE", f"alerts:{signal_file}")
    proc, url = _start(args)
    monkeypatch.delenv("RECONWATCH_TEST_PAUSE")
    held = _paused(signal_file, proc)
    assert held["what"] == "alerts"
    assert len(held["ids"]) == 1  # type: ignore[arg-type]
    _kill(proc)
    assert _count_rows(data, "SELECT id FROM alerts") == [], "the held alert was committed"
    runs = _count_rows(data, "SELECT rule_id, alerts FROM rule_runs WHERE alerts > 0")
    assert runs == [], "the held run record was committed"
    assert hook.taken == []
    proc, url = _start(args)
    for _ in range(120):  # seconds at most; each wake looks again
        if hook.taken:
            break
        hook.got.wait(1)
        hook.got.clear()
    _stop(proc)
    # The run again, at its new start time: a new window, so Kibana's id for the alert is new
    # (the held one never existed outside the killed transaction).
    stored = _count_rows(data, "SELECT id, document FROM alerts")
    assert len(stored) == 1, "no duplicate alert and none lost"
    assert json.loads(str(stored[0][1]))["process.executable"] == "/tmp/scanner"
    assert hook.taken == [stored[0][0]], "the sink took it once"
    rule_id = json.loads(str(stored[0][1]))["kibana.alert.rule.rule_id"]
    runs = _count_rows(data, f"SELECT alerts FROM rule_runs WHERE rule_id = '{rule_id}'")
    assert runs == [(1,)], "the held run is not in the history; the restart's run is, once"
    (events,) = _count_rows(data, "SELECT count(*), count(DISTINCT id) FROM events")
    assert events == (300, 300)
    gaps = _count_rows(data, "SELECT gap_ms FROM rule_runs WHERE gap_ms > 0")
    assert gaps == []


def test_kill_inside_the_real_time_alert_transaction(
    tmp_path: Path, hook: _Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan crossing the subnet rule in real time: the real-time alert's transaction is held
    open and the process killed there; the alert is not in the store. The restart refills the
    rule's window from the store and alerts once; its scheduled run finds the same group and
    updates that alert rather than adding one; the sink takes it (once per revision)."""
    data = tmp_path / "data"
    config = tmp_path / "serve.toml"
    config.write_text(f'data_dir = "{data}"\nsinks = ["{hook.url}"]\n')
    args = ["--config", str(config)]
    proc, url = _start([*args, "--no-builtin-rules"])  # the store exists, no run yet
    _stop(proc)
    signal_file = tmp_path / "paused.json"
    monkeypatch.setenv("RECONWATCH_TEST_PAUSE", f"alerts:{signal_file}")
    proc, url = _start(args)
    monkeypatch.delenv("RECONWATCH_TEST_PAUSE")
    answer = httpx.post(f"{url}/_bulk", content=_scan_body("/tmp/scanner"), timeout=60)
    assert answer.status_code == 200 and not answer.json()["errors"]
    held = _paused(signal_file, proc)
    assert held["what"] == "alerts"
    _kill(proc)
    assert _count_rows(data, "SELECT id FROM alerts") == [], "the held alert was committed"
    assert _count_rows(data, "SELECT count(*) FROM events") == [(300,)], "acknowledged: stored"
    proc, url = _start(args)
    for _ in range(120):  # seconds at most
        runs = httpx.get(f"{url}/api/rules").json()["rules"]
        alerts = httpx.get(f"{url}/api/alerts").json()["alerts"]
        if alerts and all(r["last_run"] for r in runs) and hook.taken:
            break
        hook.got.wait(1)
        hook.got.clear()
    _stop(proc)
    stored = _count_rows(data, "SELECT id, document FROM alerts")
    assert len(stored) == 1, "no duplicate alert and none lost"
    doc = json.loads(str(stored[0][1]))
    assert doc["process.executable"] == "/tmp/scanner"
    assert doc["reconwatch.detection.path"] == "stream", "alerted in real time after the restart"
    assert set(hook.taken) == {stored[0][0]}, "the sink took that alert and no other"
