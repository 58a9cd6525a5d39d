"""The sensor when things go wrong: no bpftrace, no root, signals, tracer loss, rotation, HTTP outages.

Most cases run the real `reconwatch sensor` process against a stand-in `bpftrace` (a script put
first on PATH that prints the lines the real script would); those that need the real tracer or
root say so and skip otherwise. SAFETY: all traffic goes to 127.0.0.0/8.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from reconwatch.ecs.host import HostInfo
from reconwatch.sensor.bpf import BpfCollector, encode_buf
from reconwatch.sensor.outputs import FileSink
from reconwatch.sensor.runner import run

CLI = "from reconwatch.cli.main import main; main()"
GONE_PID = 2**22 + 321  # above the default pid_max: never a live process
HOST = HostInfo(name="h", hostname="h", id="m", agent_id="a")

FAKE_BPFTRACE = """\
#!{python}
# Stand-in for bpftrace: prints ready, the lines of $FAKE_BPFTRACE_LINES, then the real script's
# flush tick every 0.1 s until SIGINT (the sensor stops once it has read two ticks after asking).
import os, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
print("R\\tready", flush=True)
with open(os.environ["FAKE_BPFTRACE_LINES"]) as lines:
    sys.stdout.write(lines.read())
sys.stdout.flush()
while True:
    time.sleep(0.1)
    print("P\\t", flush=True)
"""


COMM = encode_buf(b"scan", 16).decode()  # as the script prints it: %rx of buf(comm, 16)


def connect_line(n: int, pid: int = GONE_PID) -> str:
    return f"C\t{n * 1000}\t{pid}\t0\t4\t127.0.0.1\t0\t127.30.{n >> 8 & 255}.{n & 255}\t9\t{COMM}\n"


@pytest.fixture
def fake_bpftrace(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """(environment whose PATH starts with a fake bpftrace, the file of lines it will print)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "bpftrace"
    fake.write_text(FAKE_BPFTRACE.format(python=sys.executable))
    fake.chmod(0o755)
    lines = tmp_path / "lines.txt"
    lines.write_text("")
    # the stand-in is bpftrace: the sensor must not pick its own collector instead
    env = dict(
        os.environ,
        PATH=f"{bindir}:{os.environ.get('PATH', '')}",
        RECONWATCH_SENSOR_TRACER="bpftrace",
    )
    env["FAKE_BPFTRACE_LINES"] = str(lines)
    yield env, lines


def needs_root_sensor() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: the sensor refuses to start otherwise")


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, "sensor", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "sensor running" in line:
            return proc
    proc.wait()
    pytest.fail(f"sensor did not start (exit {proc.returncode})")


def stop(proc: subprocess.Popen[str], sig: signal.Signals = signal.SIGTERM) -> str:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


# --- the environment check -------------------------------------------------------------------


def test_missing_bpftrace_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CLI, "sensor", "--output", str(tmp_path / "e.ndjson")],
        capture_output=True,
        text=True,
        # and no cached build of the own collector, whose toolchain is not on the PATH either
        env=dict(os.environ, PATH=str(empty), RECONWATCH_BPFCORE_CACHE=str(tmp_path / "cache")),
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "bpftrace is not installed" in result.stderr
    if os.geteuid() == 0:  # as root the own collector is tried first
        assert "own eBPF collector unavailable too: clang-14" in result.stderr
    assert "apt-get install -y bpftrace" in result.stderr
    assert not (tmp_path / "e.ndjson").exists()


@pytest.mark.root
def test_non_root_is_refused_with_the_fix(tmp_path: Path) -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv (util-linux) to run the sensor as nobody")
    # A fake bpftrace where nobody can reach it (pytest's tmp dirs are private to root), so the
    # check that fails is the root one whether or not bpftrace is installed.
    bindir = Path(tempfile.mkdtemp(prefix="reconwatch-fake-bpftrace-"))
    try:
        bindir.chmod(0o755)
        fake = bindir / "bpftrace"
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
        as_nobody = [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"]
        result = subprocess.run(
            [
                *as_nobody,
                sys.executable,
                "-c",
                CLI,
                "sensor",
                "--output",
                str(tmp_path / "e.ndjson"),
            ],
            capture_output=True,
            text=True,
            env=dict(os.environ, PATH=f"{bindir}:{os.environ.get('PATH', '')}"),
            check=False,
        )
    finally:
        shutil.rmtree(bindir)
    unreadable = ("Permission denied", "PermissionError", "No module named")
    if "needs root" not in result.stderr and any(u in result.stderr for u in unreadable):
        pytest.skip(f"nobody cannot run this checkout: {result.stderr.strip()[:200]}")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "needs root" in result.stderr and "sudo" in result.stderr


def test_nice_out_of_range_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CLI, "sensor", "--stdout", "--nice", "-21"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2 and "--nice must be between -20 and 19" in result.stderr
    assert "Traceback" not in result.stderr


# --- the tracer's output, end to end through the real CLI ---------------------------------------


@pytest.mark.root
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_flushes_every_event_before_exit(
    tmp_path: Path, fake_bpftrace: tuple[dict[str, str], Path], sig: signal.Signals
) -> None:
    needs_root_sensor()
    env, lines = fake_bpftrace
    lines.write_text("".join(connect_line(n) for n in range(3000)))
    out = tmp_path / "events.ndjson"
    proc = start(["--output", str(out), "--agent-id-file", str(tmp_path / "id")], env)
    err = stop(proc, sig)  # at once: the 3000 lines may still be in the pipe
    assert f"{sig.name}: stopping" in err
    ips = [json.loads(line)["destination"]["ip"] for line in out.open()]
    assert len(ips) == 3000 and len(set(ips)) == 3000
    assert "captured 3000 connection attempts" in err and "3000 events to" in err


def test_lost_events_reported_by_the_tracer_are_counted_and_summarised(
    tmp_path: Path, fake_bpftrace: tuple[dict[str, str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, lines = fake_bpftrace
    monkeypatch.setenv("FAKE_BPFTRACE_LINES", env["FAKE_BPFTRACE_LINES"])
    lines.write_text(connect_line(1) + "\nLost 17 events\n" + connect_line(2) + "Lost 3 events\n")
    collector = BpfCollector(binary=shutil.which("bpftrace", path=env["PATH"]) or "")
    out = tmp_path / "events.ndjson"
    logged: list[str] = []

    def stop_soon() -> None:
        threading.Timer(1.0, collector.stop).start()

    count = run(collector, FileSink(out), HOST, log=logged.append, ready=stop_soon)
    assert count == 2 and len(out.read_text().splitlines()) == 2
    assert collector.stats.lost == 20
    assert any("lost 20 events" in text for text in logged), logged


@pytest.mark.root
def test_output_rotates_by_size_without_losing_events(
    tmp_path: Path, fake_bpftrace: tuple[dict[str, str], Path]
) -> None:
    needs_root_sensor()
    env, lines = fake_bpftrace
    lines.write_text("".join(connect_line(n) for n in range(400)))
    out = tmp_path / "events.ndjson"
    args = ["--output", str(out), "--max-bytes", "50000", "--keep", "100"]
    proc = start([*args, "--agent-id-file", str(tmp_path / "id")], env)
    err = stop(proc)
    files = [out, *tmp_path.glob("events.ndjson.*")]
    assert len(files) >= 5, err
    assert all(f.stat().st_size <= 50000 for f in files)
    ips = {json.loads(line)["destination"]["ip"] for f in files for line in f.open()}
    assert len(ips) == 400
    assert f"({len(files) - 1} rotations)" in err


@pytest.mark.root
def test_keep_bounds_the_rotated_files(
    tmp_path: Path, fake_bpftrace: tuple[dict[str, str], Path]
) -> None:
    needs_root_sensor()
    env, lines = fake_bpftrace
    lines.write_text("".join(connect_line(n) for n in range(400)))
    out = tmp_path / "events.ndjson"
    args = ["--output", str(out), "--max-bytes", "50000", "--keep", "2"]
    stop(start([*args, "--agent-id-file", str(tmp_path / "id")], env))
    assert sorted(p.name for p in tmp_path.glob("events.ndjson*")) == [
        "events.ndjson",
        "events.ndjson.1",
        "events.ndjson.2",
    ]


# --- the HTTP `_bulk` output -------------------------------------------------------------------


class BulkReceiver:
    """A `_bulk` endpoint on 127.0.0.1 that accepts everything and remembers it."""

    def __init__(self, port: int = 0) -> None:
        self.docs: list[dict[str, object]] = []
        docs = self.docs

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).splitlines()
                docs.extend(json.loads(line) for line in body[1::2])
                reply = json.dumps({"errors": False, "items": []}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.root
def test_bulk_spool_survives_a_receiver_that_is_down_then_up(
    tmp_path: Path, fake_bpftrace: tuple[dict[str, str], Path]
) -> None:
    needs_root_sensor()
    env, lines = fake_bpftrace
    port = free_port()  # nothing listens there yet: the receiver is down
    url = f"http://127.0.0.1:{port}/_bulk"
    spool = tmp_path / "spool"
    lines.write_text("".join(connect_line(n) for n in range(250)))
    common = ["--url", url, "--spool", str(spool), "--batch-size", "100"]
    common += ["--agent-id-file", str(tmp_path / "id")]
    err = stop(start(common, env))
    assert "0 events sent" in err and "250 waiting" in err, err
    assert len(list(spool.glob("batch-*.ndjson"))) == 3

    receiver = BulkReceiver(port)  # up again; a new sensor run sends what the spool kept
    try:
        lines.write_text(connect_line(999))
        proc = start(common, env)
        deadline = time.monotonic() + 30
        while len(receiver.docs) < 251 and time.monotonic() < deadline:
            time.sleep(0.1)
        err = stop(proc)
    finally:
        receiver.close()
    ips = sorted(str(d["destination"]["ip"]) for d in receiver.docs)  # type: ignore[index]
    assert len(ips) == 251 and len(set(ips)) == 251, err
    assert list(spool.glob("batch-*.ndjson")) == []


@pytest.mark.root
@pytest.mark.slow
def test_sensor_opens_no_connection_but_its_output(
    tmp_path: Path, fake_bpftrace: tuple[dict[str, str], Path]
) -> None:
    """One real eBPF sensor watches a second sensor (stand-in tracer, --url output) run."""
    needs_root_sensor()
    if shutil.which("bpftrace") is None:
        pytest.skip("bpftrace is not installed (apt-get install -y bpftrace)")
    watched_out = tmp_path / "watch.ndjson"
    watcher = start(
        ["--output", str(watched_out), "--agent-id-file", str(tmp_path / "watch-id")],
        dict(os.environ),
    )
    receiver = BulkReceiver()
    try:
        env, lines = fake_bpftrace
        lines.write_text("".join(connect_line(n) for n in range(50)))
        url = f"http://127.0.0.1:{receiver.port}/_bulk"
        args = ["--url", url, "--spool", str(tmp_path / "spool"), "--batch-size", "10"]
        watched = start([*args, "--agent-id-file", str(tmp_path / "id")], env)
        deadline = time.monotonic() + 30
        while len(receiver.docs) < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        stop(watched)
        time.sleep(1.0)
    finally:
        stop(watcher)
        receiver.close()
    assert len(receiver.docs) == 50
    seen = [json.loads(line) for line in watched_out.open()]
    mine = [d for d in seen if d["process"]["pid"] == watched.pid]
    assert mine, "the watcher saw none of the watched sensor's connections to its receiver"
    destinations = {(d["destination"]["ip"], d["destination"]["port"]) for d in mine}
    assert destinations == {("127.0.0.1", receiver.port)}, destinations


def test_fake_tracer_script_is_valid_python() -> None:
    compile(textwrap.dedent(FAKE_BPFTRACE.format(python=sys.executable)), "fake", "exec")
