"""engine/feed.py in process, driven by a scripted stopper (no sleeps): following with a
checkpoint, stopping, and a restart whose rebuilt window alerts where an unbroken run would."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from reconwatch.engine import feed
from reconwatch.engine.watch import RuleWatch
from reconwatch.ingest.follow import Checkpoint
from reconwatch.ingest.report import IngestReport
from reconwatch.plan import values as v
from reconwatch.rules.builtin import load_builtin

T = TypeVar("T")
T0 = datetime(2025, 7, 16, 9, tzinfo=UTC)


class Script:
    """Each wait runs the next step; when none is left the feed stops."""

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self.steps = steps
        self.stopped = False
        self.waits = 0

    def guard(self, items: Iterable[T]) -> Iterator[T]:
        for item in items:
            if self.stopped:
                return
            yield item

    def sleep(self, seconds: float) -> None:
        assert seconds == feed.FOLLOW_POLL_S
        self.waits += 1
        if self.steps:
            self.steps.pop(0)()
        else:
            self.stopped = True


def lines(count: int, first: int = 0) -> str:
    out = []
    for i in range(first, first + count):
        doc = {
            "@timestamp": v.format_datetime(T0 + timedelta(seconds=3 * i)),
            "host": {"os": {"type": "linux"}, "name": "web-1"},
            "event": {"type": "start", "action": "connection_attempted"},
            "process": {"executable": "/usr/bin/nmap"},
            "destination": {"ip": f"10.0.{i // 200}.{i % 200 + 1}"},
            "agent": {"id": "agent-1"},
        }
        out.append(json.dumps(doc) + "\n")
    return "".join(out)


def run_once(
    path: Path, checkpoint: Checkpoint, steps: list[Callable[[], None]]
) -> list[dict[str, object]]:
    alerts: list[dict[str, object]] = []
    watches = [RuleWatch.create(load_builtin("subnet-scanning-seed"), evidence=False)]
    run = feed.Feed(watches, IngestReport(), alerts.extend, Script(steps))
    notices: list[str] = []
    feed.follow(run, [str(path)], None, checkpoint, notices.append)
    return alerts


def test_a_restart_rebuilds_the_window_and_alerts_once(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    checkpoint = Checkpoint(tmp_path / "watch.checkpoint")
    path.write_text(lines(100))

    def more() -> None:
        with path.open("a") as fh:
            fh.write(lines(50, 100))

    assert run_once(path, checkpoint, [more]) == []
    saved = checkpoint.load()[str(path)]
    assert (saved.line, saved.offset) == (150, path.stat().st_size)
    assert checkpoint.load("replay")[str(path)].offset == 0  # all 150 still in the window
    with path.open("a") as fh:
        fh.write(lines(150, 150))
    (alert,) = run_once(path, checkpoint, [])
    assert alert["Esql.destination_ip_count_distinct"] == 251
    assert alert["@timestamp"] == "2025-07-16T09:12:30.000Z"
    # A third run reads nothing new and alerts nothing again.
    assert run_once(path, checkpoint, []) == []


def test_replay_start_moves_with_the_window(tmp_path: Path) -> None:
    """Reads older than the window are dropped from the replay: after 2 hours of events the
    replay starts within the last hour's reads, not at the file's start."""
    path = tmp_path / "events.ndjson"
    checkpoint = Checkpoint(tmp_path / "watch.checkpoint")
    path.write_text("")
    chunks = [lines(100, 100 * k) for k in range(24)]  # 24 x 5 minutes

    def writer(chunk: str) -> Callable[[], None]:
        def step() -> None:
            with path.open("a") as fh:
                fh.write(chunk)

        return step

    run_once(path, checkpoint, [writer(c) for c in chunks])
    replay = checkpoint.load("replay")[str(path)]
    size = path.stat().st_size
    assert 0 < replay.offset < size
    assert replay.line >= 24 * 100 - 13 * 100  # no more than the last ~65 minutes of reads


def test_checkpoint_saves_follow_the_injected_clock(tmp_path: Path) -> None:
    """Saved when idle at most once per CHECKPOINT_EVERY_S of the given clock, and at the end."""
    path = tmp_path / "events.ndjson"
    checkpoint = Checkpoint(tmp_path / "watch.checkpoint")
    path.write_text(lines(10))
    now = [100.0]
    seen: list[int] = []

    def step(advance: float) -> Callable[[], None]:
        def run() -> None:
            saved = checkpoint.load().get(str(path))
            seen.append(saved.line if saved else 0)
            with path.open("a") as fh:
                fh.write(lines(1, 10 + len(seen)))
            now[0] += advance

        return run

    watches = [RuleWatch.create(load_builtin("subnet-scanning-seed"), evidence=False)]
    run = feed.Feed(
        watches, IngestReport(), lambda _a: None, Script([step(0.1), step(2.0), step(0.1)])
    )
    feed.follow(run, [str(path)], None, checkpoint, lambda _t: None, clock=lambda: now[0])
    # Before the 1st wait: saved (the first save); 2nd: 0.1 s later, not saved again;
    # 3rd: 2.1 s later, saved.
    assert seen == [10, 10, 12]
    assert checkpoint.load()[str(path)].line == 13  # the last save, when stopping


def test_a_followed_zeek_log_alerts_as_it_grows(tmp_path: Path) -> None:
    """A Zeek conn.log (TSV, header first) is followed line by line through its format's
    decoder: a port scan appended after the start alerts the network-level rule."""
    header = (
        "#separator \\x09\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\t"
        "conn_state\thistory\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tstring\n"
    )
    start = T0.timestamp()

    def rows(first: int, count: int) -> str:
        return "".join(
            f"{start + i:.6f}\tC{i}\t198.51.100.7\t{40000 + i}\t10.1.2.3\t{1000 + i}\ttcp\tREJ\tSr\n"
            for i in range(first, first + count)
        )

    path = tmp_path / "conn.log"
    path.write_text(header + rows(0, 5))

    def more() -> None:
        with path.open("a") as fh:
            fh.write(rows(5, 15))

    alerts: list[dict[str, object]] = []
    watches = [RuleWatch.create(load_builtin("recon-net-port-scan"), evidence=False)]
    report = IngestReport()
    run = feed.Feed(watches, report, alerts.extend, Script([more]))
    feed.follow(run, [str(path)], None, None, lambda _text: None)
    run.flush_decoders()
    assert not report.errors
    (alert,) = alerts
    assert (alert["source.ip"], alert["destination.ip"]) == ("198.51.100.7", "10.1.2.3")
    assert alert["Esql.port_failed_count"] == 15
