"""`reconwatch watch` as a user runs it: several rules, refused options, signals with a summary,
following a file across the sensor's rotations (alerting as `detect` does on the same files), a
file that appears later, checkpoints, audit logs, and unrecognised inputs named."""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconwatch.cli.main import main
from reconwatch.plan import values as v
from reconwatch.sensor.outputs import FileSink

T0 = datetime(2025, 7, 16, 9, 0, tzinfo=UTC)
CODE = "from reconwatch.cli.main import main; main()"


def sweep(hosts: int = 300, start: datetime = T0, step_s: float = 3.0) -> list[dict[str, object]]:
    """nmap on web-1 reaching `hosts` addresses, one every `step_s` seconds."""
    return [
        {
            "@timestamp": v.format_datetime(start + timedelta(seconds=step_s * i)),
            "host": {"os": {"type": "linux"}, "name": "web-1"},
            "event": {"type": "start", "action": "connection_attempted"},
            "process": {"executable": "/usr/bin/nmap"},
            "destination": {"ip": f"10.0.{i // 200}.{i % 200 + 1}"},
            "agent": {"id": "agent-1"},
        }
        for i in range(hosts)
    ]


def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CODE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CODE, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def next_alert(proc: subprocess.Popen[str], limit_s: float = 90.0) -> dict[str, object]:
    """The next alert line; fails if none comes within the bound (liveness, not timing)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], limit_s)
    assert ready, "no alert while the watch was running"
    line = proc.stdout.readline()
    assert line, "the watch ended without an alert"
    return dict(json.loads(line))


@contextlib.contextmanager
def explained(proc: subprocess.Popen[str], folder: Path) -> Iterator[None]:
    """A failed check inside fails with what the watch said (it is stopped) and the files it
    followed, with their sizes and identities: a missed alert or a stuck read must say why."""
    try:
        yield
    except AssertionError as exc:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=90)
        except (subprocess.TimeoutExpired, ValueError) as why:
            err = f"(no account: {why})"
        files = [
            f"{p.name} ino={p.stat().st_ino} size={p.stat().st_size} mtime={p.stat().st_mtime_ns}"
            for p in sorted(folder.iterdir())
        ]
        msg = f"{exc}; the watch said:\n{err}\nfiles:\n" + "\n".join(files)
        raise AssertionError(msg) from None


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def wait_for_stderr(proc: subprocess.Popen[str], text: str, limit_s: float = 90.0) -> str:
    """Stderr lines until one holds `text` (the watch says it is waiting, rotated, ...)."""
    assert proc.stderr is not None
    seen = ""
    while text not in seen:
        ready, _, _ = select.select([proc.stderr], [], [], limit_s)
        assert ready, f"the watch never said {text!r}; it said {seen!r}"
        line = proc.stderr.readline()
        assert line, f"the watch ended without saying {text!r}: {seen!r}"
        seen += line
    return seen


def caught_up(checkpoint: Path, path: Path, limit_s: float = 90.0) -> None:
    """Until the watch's checkpoint says it read `path` to its end (it saves when idle). A
    liveness wait on a condition, not a timing claim."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            saved = json.loads(checkpoint.read_text())["files"][str(path)]
        except (OSError, ValueError, KeyError):
            saved = None
        st = path.stat()
        if saved and (saved["ino"], saved["offset"]) == (st.st_ino, st.st_size):
            return
        time.sleep(0.05)
    raise AssertionError(f"the watch never caught up with {path}")


def ndjson(docs: list[dict[str, object]]) -> str:
    return "".join(json.dumps(d) + "\n" for d in docs)


def test_every_rule_given_runs_and_tags_its_alerts(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text(ndjson(sweep()))
    done = run("watch", "-r", "subnet-scanning-seed", "-r", "subnet-scanning", str(path))
    assert done.returncode == 0, done.stderr
    alerts = [json.loads(x) for x in done.stdout.splitlines()]
    assert (
        sorted(a["kibana.alert.rule.name"] for a in alerts)
        == ["Potential Subnet Scanning Activity from Compromised Host"] * 2
    )
    assert len({a["kibana.alert.rule.severity"] for a in alerts}) == 2  # seed low, upstream medium
    assert "2 alert(s) of 2 rules from 300 event(s)" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--realert-growth", "0.5", "-"], "--realert-growth 0.5: expected a factor greater"),
        (["--realert-growth", "nan", "-"], "--realert-growth nan"),
        (["--realert-growth", "2", "--realert-column", "nope", "-"], "--realert-column nope"),
        (["--checkpoint", "c.json", "-"], "--checkpoint goes with --follow"),
        (["--follow", "events.ndjson.gz"], "a compressed file cannot be followed"),
        (["--input-format", "evtx", "-"], "--input-format 'evtx': choose one of"),
        (["--input-format", "pcap", "-"], "--input-format pcap: stdin is read line by line"),
        (["missing.ndjson"], "no such file: missing.ndjson"),
        (["--follow", "/"], "--follow: a directory, not an event file: /"),
    ],
)
def test_options_that_cannot_work_are_refused(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In process: each is refused before any input is read."""
    try:
        main(["watch", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err


def test_unrecognised_input_is_named_and_the_others_are_read(tmp_path: Path) -> None:
    zst = tmp_path / "sweep.ndjson.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 60)
    good = tmp_path / "events.ndjson"
    good.write_text(ndjson(sweep()))
    done = run("watch", str(zst), str(good))
    assert done.returncode == 0, done.stderr
    assert f"unrecognised format: {zst} looks like zstd-compressed data" in done.stderr
    assert len(done.stdout.splitlines()) == 1


def test_a_watch_that_read_no_usable_input_fails(tmp_path: Path) -> None:
    """A zstd file alone, or a file of bad lines alone: named, and exit 2, not a clean-looking 0."""
    pcap = tmp_path / "sweep.ndjson.zst"
    pcap.write_bytes(b"\x28\xb5\x2f\xfd" + b"\x00" * 60)
    bad = tmp_path / "bad.ndjson"
    bad.write_text('not json\n{"a":\n')
    for path, skipped in ((pcap, 1), (bad, 2)):
        done = run("watch", str(path))
        assert done.returncode == 2, done.stderr
        assert done.stderr.splitlines()[-1] == (
            f"error: {path}: no events read: {skipped} bad line(s) or unrecognised input(s) (above)"
        )
        assert "Traceback" not in done.stderr and done.stdout == ""
    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    assert run("watch", str(empty)).returncode == 0  # nothing to read is not a failure


def test_sigterm_on_a_pipe_prints_the_summary() -> None:
    proc = start("watch", "-")
    assert proc.stdin is not None
    proc.stdin.write(ndjson(sweep()[:260]))
    proc.stdin.flush()
    alert = next_alert(proc)
    assert alert["Esql.destination_ip_count_distinct"] == 251
    _, err = stop(proc)  # stdin still open: the watch was waiting for input
    assert "1 alert(s) from 260 event(s)" in err


def test_a_reader_that_goes_away_ends_the_watch_quietly(tmp_path: Path) -> None:
    """`watch ... | head -1`: the alerts' pipe is closed before the first alert is written. The
    watch leaves as other Unix tools do, without a traceback and without blaming its input."""
    events = tmp_path / "events.ndjson"
    events.write_text(ndjson(sweep()))
    proc = subprocess.Popen(
        [sys.executable, "-c", CODE, "watch", str(events)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before any alert
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 1
    assert err == ""


def test_follow_waits_for_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "later.ndjson"
    proc = start("watch", "--follow", str(path))
    try:
        wait_for_stderr(proc, "no such file yet; waiting for it")
        path.write_text(ndjson(sweep()))
        assert next_alert(proc)["@timestamp"] == "2025-07-16T09:12:30.000Z"
    finally:
        _, err = stop(proc, signal.SIGINT)
    assert "1 alert(s) from 300 event(s)" in err


# It failed in two CI runs (no alert within 90 s, both passes). Found: the follower could
# skip a whole rotated file, or read a later one in its place, when the sink rotated again
# between its directory scan and its open (fixed in ingest/follow.py, with a property test).
# One more miss was seen in ~100 loaded runs after the fix and is not explained, so a miss now
# fails with the watch's own account and the files it followed.
@pytest.mark.slow
def test_a_sweep_across_the_sensors_rotations_alerts_as_detect_does(tmp_path: Path) -> None:
    """The issue's case: a 300-host sweep written by the sensor's file output while it rotates
    the file several times. watch --follow alerts (it used to say nothing), the same group and
    count as detect over the rotated files; a restart from the checkpoint alerts nothing again
    (it rebuilds its window from the rotated files and reads no new event)."""
    path = tmp_path / "events.ndjson"
    checkpoint = tmp_path / "watch.checkpoint"
    docs = sweep() + sweep(40, T0 + timedelta(minutes=30))  # more events after the alert
    proc = start("watch", "--follow", str(path), "--checkpoint", str(checkpoint))
    with explained(proc, tmp_path):
        wait_for_stderr(proc, "waiting for it")
        sink = FileSink(path, max_bytes=25_000, keep=20)
        sink.write(docs[0])
        sink.flush()
        wait_for_stderr(proc, "appeared")  # open: from here on no rotation is missed
        for doc in docs[1:]:  # as fast as it can: several rotations between two polls
            sink.write(doc)
        sink.close()
        assert sink.rotations >= 3
        alert = next_alert(proc)
        caught_up(checkpoint, path)
        _, err = stop(proc)
    assert f"1 alert(s) from {len(docs)} event(s)" in err
    rotated = sorted(tmp_path.glob("events.ndjson.*"), key=lambda p: -int(p.suffix[1:]))
    detect = run(
        "detect", *map(str, [*rotated, path]), "--now", "2025-07-16T10:00:00Z", "-f", "ndjson"
    )
    assert detect.returncode == 0, detect.stderr
    batch = [json.loads(x) for x in detect.stdout.splitlines()]
    assert len(batch) == 1
    for key in ("Esql.host_name_values", "Esql.agent_id_values", "kibana.alert.rule.rule_id"):
        assert alert[key] == batch[0][key]
    assert alert["Esql.destination_ip_count_distinct"] == 251  # at the crossing
    assert batch[0]["Esql.destination_ip_count_distinct"] == 300  # over the run's window
    # Restarted from the checkpoint: nothing read again, nothing alerted again.
    again = start("watch", "--follow", str(path), "--checkpoint", str(checkpoint))
    with explained(again, tmp_path):
        said = wait_for_stderr(again, "window rebuilt from")
        out, err = stop(again)
    err = said + err
    # The whole sweep is inside the rule's hour: read again across the rotated files.
    assert out == "" and f"0 alert(s) from 0 event(s) (and {len(docs)} read again" in err


def _audit_connect(stamp: float, serial: int, ip: str) -> str:
    head = f"msg=audit({stamp:.3f}:{serial}):"
    saddr = "02000016" + ipaddress.IPv4Address(ip).packed.hex().upper() + "0" * 16
    return (
        f"type=SYSCALL {head} arch=c000003e syscall=42 success=no exit=-115 a0=3 a1=7ffd1 a2=10 "
        "a3=0 items=0 ppid=1000 pid=4242 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 "
        'sgid=0 fsgid=0 tty=pts0 ses=1 comm="nmap" exe="/usr/bin/nmap" key=(null)\n'
        f"type=SOCKADDR {head} saddr={saddr}\n"
        f"type=EOE {head} \n"
    )


def test_follow_an_audit_log(tmp_path: Path) -> None:
    """Audit logs are a line format: followed and decoded record by record."""
    base = T0.timestamp()
    records = [
        _audit_connect(base + i, i + 1, f"10.9.{i // 200}.{i % 200 + 1}") for i in range(300)
    ]
    path = tmp_path / "audit.log"
    path.write_text("".join(records[:10]))
    proc = start("watch", "--follow", str(path))
    try:
        with path.open("a") as fh:
            fh.write("".join(records[10:]))
        alert = next_alert(proc)
        assert alert["Esql.destination_ip_count_distinct"] == 251
        assert alert["Esql.host_name_values"] == "audit.log"
    finally:
        stop(proc)


def test_a_restart_from_the_checkpoint_rebuilds_the_window(tmp_path: Path) -> None:
    """Stopped after 150 addresses of a 300-address sweep, restarted after the rest was
    written: the alert comes at the 251st address, as without the restart (the lines still in
    the window are read again, alerting nothing themselves)."""
    path = tmp_path / "events.ndjson"
    checkpoint = tmp_path / "watch.checkpoint"
    docs = sweep()
    path.write_text(ndjson(docs[:150]))
    first = start("watch", "--follow", str(path), "--checkpoint", str(checkpoint))
    try:
        caught_up(checkpoint, path)
    finally:
        out, err = stop(first)
    assert out == "" and "0 alert(s) from 150 event(s)" in err
    with path.open("a") as fh:
        fh.write(ndjson(docs[150:]))
    again = start("watch", "--follow", str(path), "--checkpoint", str(checkpoint))
    try:
        alert = next_alert(again)
        caught_up(checkpoint, path)
    finally:
        _, err = stop(again)
    assert alert["Esql.destination_ip_count_distinct"] == 251
    assert alert["@timestamp"] == "2025-07-16T09:12:30.000Z"  # the 251st address
    assert "window rebuilt from 150 line(s)" in err
    assert "1 alert(s) from 150 event(s) (and 150 read again to rebuild the window)" in err


@pytest.mark.parametrize("kind", ["gzip", "json", "parquet"])
def test_other_formats_replay_through_the_registry(tmp_path: Path, kind: str) -> None:
    docs = sweep()
    path = tmp_path / "events"  # no telling suffix: recognised by content
    if kind == "gzip":
        path.write_bytes(gzip.compress(ndjson(docs).encode()))
    elif kind == "json":
        path.write_text(json.dumps(docs))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(docs), path)
    done = run("watch", str(path))
    assert done.returncode == 0, done.stderr
    (alert,) = [json.loads(x) for x in done.stdout.splitlines()]
    assert alert["@timestamp"] == "2025-07-16T09:12:30.000Z"


def test_follow_a_named_pipe(tmp_path: Path) -> None:
    """A FIFO is followed as a stream: not sniffed ahead (that would take its first bytes), no
    offsets, no rotation."""
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    proc = start("watch", "--follow", str(fifo))
    try:
        wait_for_stderr(proc, f"following {fifo} as ndjson")
        with fifo.open("w") as fh:  # waits for the watch to open its end
            fh.write(ndjson(sweep()))
        assert next_alert(proc)["@timestamp"] == "2025-07-16T09:12:30.000Z"
    finally:
        _, err = stop(proc)
    assert "1 alert(s) from 300 event(s)" in err
